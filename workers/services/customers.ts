/**
 * Customers of a user data store: the payment-provider customers an identifier is, what their subscriptions and
 * one-time purchases are (kept from the provider's webhooks, workers/payments/apply.ts) and the products an operator
 * set by hand. The decision path reads all of it in one D1 round trip through a short per-isolate cache, so the steady
 * state does no D1 query; which products are granted right now is computed at the decision's clock
 * (workers/payments/lifecycle.ts), so a period end or a grace period expires on time from the cached record.
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { nowIso } from "../lib/ids";
import { entitledProductIds, type PurchaseState, type StoredPurchase, type StoredSubscription, type SubscriptionLifecycleState } from "../payments/lifecycle";

export interface Customer {
  identifier: string;
  /** The provider customer its checkouts and billing portal use (the latest linked one, or the one an operator set). */
  stripeCustomerId: string | null;
  /** Products an operator granted by hand (admin API), on top of what payments grant. */
  stripeProductIds: string[];
  updatedAt: string;
}

export interface CustomerSubscription extends StoredSubscription {
  id: string;
  customerId: string;
  /** The provider's own status (`active`, `past_due`, …). */
  status: string;
  cancelAtPeriodEnd: boolean;
}

export interface CustomerPurchase extends StoredPurchase {
  paymentId: string;
  customerId: string | null;
}

/** A customer with everything payments know of it: what decisions read. */
export interface CustomerRecord extends Customer {
  /** Every provider customer linked to the identity. */
  paymentCustomerIds: string[];
  subscriptions: CustomerSubscription[];
  purchases: CustomerPurchase[];
}

/** The products the record grants at `now` (ms): those set by hand and those its payments grant. */
export function productsOf(record: CustomerRecord, now: number): string[] {
  const paid = entitledProductIds(record.subscriptions, record.purchases, now);
  if (record.stripeProductIds.length === 0) return paid;
  return [...new Set([...record.stripeProductIds, ...paid])].sort();
}

/** The provider customer ids of the record (the linked ones and the one an operator set), for `customerIdentifiers`. */
export function paymentCustomerIdsOf(record: CustomerRecord): string[] {
  const ids = new Set(record.paymentCustomerIds);
  if (record.stripeCustomerId) ids.add(record.stripeCustomerId);
  return [...ids].sort();
}

interface CustomerRow {
  identifier: string;
  stripe_customer_id: string | null;
  stripe_product_ids: string;
  updated_at: string;
}

const toCustomer = (row: CustomerRow): Customer => ({
  identifier: row.identifier,
  stripeCustomerId: row.stripe_customer_id,
  stripeProductIds: JSON.parse(row.stripe_product_ids) as string[],
  updatedAt: row.updated_at,
});

const CUSTOMER_TTL_MS = 10_000;
/** An identifier without a customer row is cached too, as `{ customer: null }` (lru-cache holds no null values). */
/**
 * Bounded by an estimate of the bytes it holds (customers differ in how many products they have), not by a count: an
 * lru-cache with only `maxSize` also grows its slots as it fills instead of allocating them up front.
 */
const customerCache = new LRUCache<string, { customer: CustomerRecord | null }>({
  maxSize: 4 * 1024 * 1024,
  sizeCalculation: ({ customer }, key) => 2 * key.length + (customer ? 2 * JSON.stringify(customer).length : 0) + 128,
  ttl: CUSTOMER_TTL_MS,
  ...EXPIRE_ON_READ,
});
const cacheKey = (organizationId: string, store: string, identifier: string) => `${organizationId}\u0000${store}\u0000${identifier}`;

export async function getCustomer(db: D1Database, organizationId: string, store: string, identifier: string): Promise<Customer | null> {
  const row = await db
    .prepare("SELECT identifier, stripe_customer_id, stripe_product_ids, updated_at FROM customers WHERE organization_id = ? AND store = ? AND identifier = ?")
    .bind(organizationId, store, identifier)
    .first<CustomerRow>();
  return row ? toCustomer(row) : null;
}

interface SubscriptionRow {
  subscription_id: string;
  customer_id: string;
  state: SubscriptionLifecycleState;
  status: string;
  product_ids: string;
  current_period_end: string | null;
  cancel_at_period_end: number;
  state_since: string;
  grace_hours: number;
  revoked_at: string | null;
}

interface PurchaseRow {
  payment_id: string;
  customer_id: string | null;
  product_ids: string;
  state: PurchaseState;
}

const LINKED = "SELECT customer_id FROM payment_customers WHERE organization_id = ?1 AND store = ?2 AND identifier = ?3";

/**
 * The customer with its payments, in one D1 round trip (a batch of reads); null when the identity is no customer:
 * no customer record and no linked provider customer.
 */
export async function getCustomerRecord(db: D1Database, organizationId: string, store: string, identifier: string): Promise<CustomerRecord | null> {
  const [customers, links, subscriptions, purchases] = await db.batch([
    db
      .prepare("SELECT identifier, stripe_customer_id, stripe_product_ids, updated_at FROM customers WHERE organization_id = ?1 AND store = ?2 AND identifier = ?3")
      .bind(organizationId, store, identifier),
    db.prepare(`${LINKED} ORDER BY customer_id`).bind(organizationId, store, identifier),
    db
      .prepare(
        `SELECT subscription_id, customer_id, state, status, product_ids, current_period_end, cancel_at_period_end, state_since, grace_hours, revoked_at
         FROM payment_subscriptions WHERE organization_id = ?1 AND store = ?2 AND customer_id IN (${LINKED}) ORDER BY subscription_id`,
      )
      .bind(organizationId, store, identifier),
    db
      .prepare(`SELECT payment_id, customer_id, product_ids, state FROM payment_purchases WHERE organization_id = ?1 AND store = ?2 AND customer_id IN (${LINKED}) ORDER BY payment_id`)
      .bind(organizationId, store, identifier),
  ]);
  const row = (customers!.results as CustomerRow[])[0];
  const paymentCustomerIds = (links!.results as { customer_id: string }[]).map((link) => link.customer_id);
  if (!row && paymentCustomerIds.length === 0) return null;
  return {
    ...(row ? toCustomer(row) : { identifier, stripeCustomerId: null, stripeProductIds: [], updatedAt: nowIso() }),
    paymentCustomerIds,
    subscriptions: (subscriptions!.results as SubscriptionRow[]).map((subscription) => ({
      id: subscription.subscription_id,
      customerId: subscription.customer_id,
      state: subscription.state,
      status: subscription.status,
      productIds: JSON.parse(subscription.product_ids) as string[],
      currentPeriodEnd: subscription.current_period_end,
      cancelAtPeriodEnd: subscription.cancel_at_period_end === 1,
      stateSince: subscription.state_since,
      graceHours: subscription.grace_hours,
      revokedAt: subscription.revoked_at,
    })),
    purchases: (purchases!.results as PurchaseRow[]).map((purchase) => ({
      paymentId: purchase.payment_id,
      customerId: purchase.customer_id,
      state: purchase.state,
      productIds: JSON.parse(purchase.product_ids) as string[],
    })),
  };
}

export async function getCustomerCached(db: D1Database, organizationId: string, store: string, identifier: string): Promise<CustomerRecord | null> {
  const key = cacheKey(organizationId, store, identifier);
  const cached = customerCache.get(key);
  if (cached) return cached.customer;
  const customer = await getCustomerRecord(db, organizationId, store, identifier);
  customerCache.set(key, { customer });
  return customer;
}

/** Drops this isolate's cached record of the identities (their payments changed); other isolates expire theirs. */
export function forgetCachedCustomers(organizationId: string, store: string, identifiers: readonly string[]): void {
  for (const identifier of identifiers) customerCache.delete(cacheKey(organizationId, store, identifier));
  if (identifiers.length > 0) anonymousBuyersCache.delete(`${organizationId}\u0000${store}`);
}

/**
 * Anonymous visitors buy through offers (workers/offers/checkout.ts) without ever signing in. Their payments live in a
 * partition of the store of their own — `{store}~anonymous` in the payment tables and in the provider scope tag — so
 * an anonymous "alice" and the signed-in Alice never share a purchase, and nothing else (admin customers, syncs,
 * lookups) reads or writes that partition by accident: no signed-in identifier can name it.
 */
export const ANONYMOUS_PARTITION_SUFFIX = "~anonymous";
export const anonymousStore = (store: string): string => `${store}${ANONYMOUS_PARTITION_SUFFIX}`;
export const isAnonymousStore = (store: string): boolean => store.endsWith(ANONYMOUS_PARTITION_SUFFIX);

/**
 * Verified agents' operators (decision/agentIdentity.ts) live in a partition of their own too — `{store}~agents` — in
 * the meter objects and the customer records: no visitor or user identifier can name an operator's data.
 */
export const AGENT_PARTITION_SUFFIX = "~agents";
export const agentStore = (store: string): string => `${store}${AGENT_PARTITION_SUFFIX}`;
export const isAgentStore = (store: string): boolean => store.endsWith(AGENT_PARTITION_SUFFIX);

/**
 * Whether an anonymous visitor may have bought in the store, per isolate. Most anonymous visitors never buy, and each
 * new one would otherwise cost a D1 round trip (a per-identity negative cache only helps a visitor's later requests):
 * one read per store lists who did — up to MAX_LISTED_ANONYMOUS_BUYERS identifiers; past that every visitor is looked
 * up — and answers every visitor until it expires. It is kept as long as a customer record (CUSTOMER_TTL_MS), so an
 * anonymous purchase shows in other isolates within the same delay as any payment does.
 */
const anonymousBuyersCache = new LRUCache<string, { buyers: ReadonlySet<string> | "many" }>({ max: 10_000, ttl: CUSTOMER_TTL_MS, ...EXPIRE_ON_READ });
const MAX_LISTED_ANONYMOUS_BUYERS = 1_000;

export async function mayBeAnonymousBuyer(db: D1Database, organizationId: string, store: string, identifier: string): Promise<boolean> {
  const partition = anonymousStore(store);
  const key = `${organizationId}\u0000${partition}`;
  let cached = anonymousBuyersCache.get(key);
  if (!cached) {
    const { results } = await db
      .prepare(
        `SELECT identifier FROM payment_customers WHERE organization_id = ?1 AND store = ?2
         UNION SELECT identifier FROM customers WHERE organization_id = ?1 AND store = ?2
         LIMIT ${MAX_LISTED_ANONYMOUS_BUYERS + 1}`,
      )
      .bind(organizationId, partition)
      .all<{ identifier: string }>();
    cached = { buyers: results.length > MAX_LISTED_ANONYMOUS_BUYERS ? "many" : new Set(results.map((row) => row.identifier)) };
    anonymousBuyersCache.set(key, cached);
  }
  return cached.buyers === "many" || cached.buyers.has(identifier);
}

/** The identities the provider customers are linked to in the store. */
export async function identifiersOfPaymentCustomers(db: D1Database, organizationId: string, store: string, customerIds: readonly string[]): Promise<Map<string, string>> {
  if (customerIds.length === 0) return new Map();
  const { results } = await db
    .prepare(
      `SELECT customer_id, identifier FROM payment_customers WHERE organization_id = ? AND store = ? AND customer_id IN (SELECT value FROM json_each(?))`,
    )
    .bind(organizationId, store, JSON.stringify(customerIds))
    .all<{ customer_id: string; identifier: string }>();
  return new Map(results.map((row) => [row.customer_id, row.identifier]));
}

export async function upsertCustomer(
  db: D1Database,
  organizationId: string,
  store: string,
  input: { identifier: string; stripeCustomerId?: string | null; stripeProductIds: string[] },
): Promise<Customer> {
  const updatedAt = nowIso();
  const products = [...new Set(input.stripeProductIds)];
  const statements = [
    db
      .prepare(
        `INSERT INTO customers (organization_id, store, identifier, stripe_customer_id, stripe_product_ids, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (organization_id, store, identifier) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id,
           stripe_product_ids = excluded.stripe_product_ids, updated_at = excluded.updated_at`,
      )
      .bind(organizationId, store, input.identifier, input.stripeCustomerId ?? null, JSON.stringify(products), updatedAt),
  ];
  // An operator's link is the last word: it moves the provider customer to this identity, and metadata of later
  // webhooks does not move it back.
  if (input.stripeCustomerId) {
    statements.push(
      // No other identity keeps it as its own: its checkouts and portal would be this customer's.
      db
        .prepare("UPDATE customers SET stripe_customer_id = NULL, updated_at = ? WHERE organization_id = ? AND store = ? AND stripe_customer_id = ? AND identifier <> ?")
        .bind(updatedAt, organizationId, store, input.stripeCustomerId, input.identifier),
      db
        .prepare(
          `INSERT INTO payment_customers (organization_id, store, provider, customer_id, identifier, linked_by, updated_at) VALUES (?, ?, 'stripe', ?, ?, 'admin', ?)
           ON CONFLICT (organization_id, store, provider, customer_id) DO UPDATE SET identifier = excluded.identifier, linked_by = 'admin', updated_at = excluded.updated_at`,
        )
        .bind(organizationId, store, input.stripeCustomerId, input.identifier, updatedAt),
    );
  }
  const previous = input.stripeCustomerId ? await identifiersOfPaymentCustomers(db, organizationId, store, [input.stripeCustomerId]) : new Map<string, string>();
  await db.batch(statements);
  forgetCachedCustomers(organizationId, store, [input.identifier, ...previous.values()]);
  return { identifier: input.identifier, stripeCustomerId: input.stripeCustomerId ?? null, stripeProductIds: products, updatedAt };
}

export async function deleteCustomer(db: D1Database, organizationId: string, store: string, identifier: string): Promise<boolean> {
  // Its links go too: a deleted customer's payments no longer grant the identity anything.
  const [customer, links] = await db.batch([
    db.prepare("DELETE FROM customers WHERE organization_id = ? AND store = ? AND identifier = ?").bind(organizationId, store, identifier),
    db.prepare("DELETE FROM payment_customers WHERE organization_id = ? AND store = ? AND identifier = ?").bind(organizationId, store, identifier),
  ]);
  customerCache.delete(cacheKey(organizationId, store, identifier));
  return customer!.meta.changes + links!.meta.changes > 0;
}

export async function listCustomers(db: D1Database, organizationId: string, store: string, limit = 100): Promise<Customer[]> {
  const { results } = await db
    .prepare("SELECT identifier, stripe_customer_id, stripe_product_ids, updated_at FROM customers WHERE organization_id = ? AND store = ? ORDER BY identifier LIMIT ?")
    .bind(organizationId, store, limit)
    .all<CustomerRow>();
  return results.map(toCustomer);
}
