/**
 * Customers of a user data store: which Stripe products an identifier holds. The Stripe sync writes here; the
 * decision path reads through a short per-isolate cache so the steady state does no D1 query.
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { nowIso } from "../lib/ids";

export interface Customer {
  identifier: string;
  stripeCustomerId: string | null;
  stripeProductIds: string[];
  updatedAt: string;
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
const customerCache = new LRUCache<string, { customer: Customer | null }>({
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

export async function getCustomerCached(db: D1Database, organizationId: string, store: string, identifier: string): Promise<Customer | null> {
  const key = cacheKey(organizationId, store, identifier);
  const cached = customerCache.get(key);
  if (cached) return cached.customer;
  const customer = await getCustomer(db, organizationId, store, identifier);
  customerCache.set(key, { customer });
  return customer;
}

export async function upsertCustomer(
  db: D1Database,
  organizationId: string,
  store: string,
  input: { identifier: string; stripeCustomerId?: string | null; stripeProductIds: string[] },
): Promise<Customer> {
  const updatedAt = nowIso();
  const products = [...new Set(input.stripeProductIds)];
  await db
    .prepare(
      `INSERT INTO customers (organization_id, store, identifier, stripe_customer_id, stripe_product_ids, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (organization_id, store, identifier) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id,
         stripe_product_ids = excluded.stripe_product_ids, updated_at = excluded.updated_at`,
    )
    .bind(organizationId, store, input.identifier, input.stripeCustomerId ?? null, JSON.stringify(products), updatedAt)
    .run();
  customerCache.delete(cacheKey(organizationId, store, input.identifier));
  return { identifier: input.identifier, stripeCustomerId: input.stripeCustomerId ?? null, stripeProductIds: products, updatedAt };
}

export async function deleteCustomer(db: D1Database, organizationId: string, store: string, identifier: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM customers WHERE organization_id = ? AND store = ? AND identifier = ?").bind(organizationId, store, identifier).run();
  customerCache.delete(cacheKey(organizationId, store, identifier));
  return result.meta.changes > 0;
}

export async function listCustomers(db: D1Database, organizationId: string, store: string, limit = 100): Promise<Customer[]> {
  const { results } = await db
    .prepare("SELECT identifier, stripe_customer_id, stripe_product_ids, updated_at FROM customers WHERE organization_id = ? AND store = ? ORDER BY identifier LIMIT ?")
    .bind(organizationId, store, limit)
    .all<CustomerRow>();
  return results.map(toCustomer);
}
