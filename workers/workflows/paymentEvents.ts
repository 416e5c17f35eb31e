/**
 * The payments queue's consumer: applies each verified webhook event to the store's payment state
 * (payments/apply.ts: exactly once, newest state wins), then dispatches the lifecycle transitions it made — each is
 * recorded as a `payment` event, and every identity whose payments changed gets a `plans.changed` trigger — and finally
 * marks them dispatched. A message that fails (Stripe or D1 unavailable) is retried with a growing delay; a retry of
 * an applied event changes nothing and dispatches only what the first attempt left undispatched, so triggers are
 * delivered at least once (their payload names the transitions, for actions that must not act twice).
 */
import { createMeterClient, meterDeadlineOf } from "../../durable-objects/meter/client";
import type { CreditResult, GrantCreditsInput } from "../../durable-objects/meter/MeterObject";
import type { PreparedSnapshot } from "../engine/prepare";
import { sha256Hex } from "../lib/crypto";
import { applyPaymentEvent, markTransitionsDispatched, type PaymentEventMessage, type PaymentTransition } from "../payments/apply";
import { createStripeGateway } from "../payments/stripe";
import { type CustomerRecord, forgetCachedCustomers, getCustomerRecord, identifiersOfPaymentCustomers, productsOf } from "../services/customers";
import { insertEvents, type EventInput } from "../services/events";
import { stripeCredentials } from "../services/paymentConnections";
import { preparedSnapshotFor } from "../services/snapshots";
import { getEnvironment, storeOf, type Environment } from "../services/tenancy";
import { retryDelaySeconds } from "./actions";
import { enqueueTriggers, listensTo } from "./triggers";

export const PAYMENT_QUEUE = "edge-monetization-payments";
/** `max_retries` of the payments queue's consumer (wrangler.toml): with the growing delay, about ten minutes. */
export const PAYMENT_MAX_RETRIES = 12;

export async function handlePaymentBatch(batch: MessageBatch<PaymentEventMessage>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    try {
      await processPaymentEvent(env, message.body);
      message.ack();
    } catch (error) {
      const lastAttempt = message.attempts > PAYMENT_MAX_RETRIES;
      const line = JSON.stringify({
        event: lastAttempt ? "payment_event_dropped" : "payment_event_retried",
        environmentId: message.body.environmentId,
        eventId: message.body.event.id,
        type: message.body.event.rawType,
        attempts: message.attempts,
        error: error instanceof Error ? error.message : String(error),
      });
      // Dropped after the last retry: the provider's state is still right, and a customer sync restores it.
      if (lastAttempt) console.error(line);
      else console.warn(line);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

/** Applies one event and dispatches its transitions. Throws when a dependency failed (the message is retried). */
export async function processPaymentEvent(env: Env, message: PaymentEventMessage): Promise<void> {
  const environment = await getEnvironment(env.DB, message.environmentId);
  // The environment or its connection went away after the webhook was accepted: nothing to apply it to.
  if (!environment || environment.organizationId !== message.organizationId) return;
  const credentials = await stripeCredentials(env.DB, env.SECRETS_KEY, environment.id);
  if (!credentials) return;
  const gateway = createStripeGateway({ secretKey: credentials.secretKey, webhookSecret: credentials.webhookSecret, apiBase: env.STRIPE_API_BASE });
  const store = storeOf(environment);
  const applied = await applyPaymentEvent(env.DB, gateway, credentials.policy, { ...message, store });

  const customerIds = new Set([...applied.customerIds, ...applied.transitions.flatMap((transition) => (transition.customerId ? [transition.customerId] : []))]);
  const identifiers = await identifiersOfPaymentCustomers(env.DB, environment.organizationId, store, [...customerIds]);
  forgetCachedCustomers(environment.organizationId, store, [...identifiers.values()]);
  if (applied.transitions.length === 0) return;
  await dispatchTransitions(env, environment, message, applied.transitions, identifiers);
  await markTransitionsDispatched(env.DB, applied.transitions.map((transition) => transition.id));
}

async function dispatchTransitions(
  env: Env,
  environment: Environment,
  message: PaymentEventMessage,
  transitions: PaymentTransition[],
  identifiers: Map<string, string>,
): Promise<void> {
  const store = storeOf(environment);
  const prepared = environment.deployedVersionId ? await deployedSnapshot(env.DB, environment.deployedVersionId) : null;
  const meter = createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS));
  const identifierOf = (transition: PaymentTransition) => (transition.customerId ? identifiers.get(transition.customerId) : undefined);
  const userObject = (identifier: string) => meter.stub({ organizationId: environment.organizationId, store, authenticated: true, identifier });

  // Credits bought with money first: the records say what was granted.
  const credits = await Promise.all(
    transitions.map(async (transition) => {
      const identifier = identifierOf(transition);
      if (!prepared || !identifier || transition.subject !== "purchase") return [];
      return grantPackCredits(prepared, store, transition, (input) => userObject(identifier).grantCredits(input));
    }),
  );

  const records: EventInput[] = await Promise.all(
    transitions.map(async (transition, index) => ({
      // Derived from the transition, so a dispatch repeated after a failure writes no second record.
      id: `evt_${(await sha256Hex(`${environment.id}:payment:${transition.id}`)).slice(0, 24)}`,
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind: "payment" as const,
      identifier: identifierOf(transition) ?? null,
      outcome: transition.toState,
      record: {
        provider: message.event.provider,
        providerEventId: message.event.id,
        providerEventType: message.event.rawType,
        customerId: transition.customerId,
        subject: transition.subject,
        subjectId: transition.subjectId,
        from: transition.fromState,
        to: transition.toState,
        productIds: transition.productIds,
        ...(credits[index]!.length > 0 ? { credits: credits[index] } : {}),
      },
    })),
  );
  await insertEvents(env.DB, records);

  if (!prepared || !listensTo(prepared, "plans.changed")) return;
  // One trigger per identity and event, naming every transition of that identity's payments the event made.
  const byIdentifier = new Map<string, { transitions: PaymentTransition[]; recordIds: string[] }>();
  transitions.forEach((transition, index) => {
    const identifier = identifierOf(transition);
    if (!identifier) return;
    const entry = byIdentifier.get(identifier) ?? { transitions: [], recordIds: [] };
    entry.transitions.push(transition);
    entry.recordIds.push(records[index]!.id!);
    byIdentifier.set(identifier, entry);
  });
  const now = Date.now();
  for (const [identifier, { transitions: own, recordIds }] of byIdentifier) {
    const record = await getCustomerRecord(env.DB, environment.organizationId, store, identifier);
    const linkedNow = linkedPlanSlugs(prepared, record ? productsOf(record, now) : []);
    const linkedBefore = linkedPlanSlugs(prepared, record ? productsOf(recordBefore(record, own), now) : []);
    // The full plan set the user's decisions last saw, with the linked part replaced; only linked plans for a user no
    // decision has tracked yet.
    const remembered = await userObject(identifier).replaceLinkedPlans({ remove: linkedBefore.filter((slug) => !linkedNow.includes(slug)), add: linkedNow });
    const plans = remembered ?? { from: linkedBefore, to: linkedNow };
    const unsent = await enqueueTriggers(env.TRIGGERS, prepared, environment, { identifier, isAuthenticated: true }, [
      {
        name: "plans.changed",
        payload: {
          eventId: recordIds[0],
          identifier,
          from: plans.from,
          to: plans.to,
          reason: "payment",
          transitions: own.map((transition, index) => ({
            eventId: recordIds[index],
            subject: transition.subject,
            id: transition.subjectId,
            from: transition.fromState,
            to: transition.toState,
          })),
        },
      },
    ]);
    if (unsent.length > 0) throw new Error(`plans.changed for ${identifier} could not be enqueued: ${unsent[0]!.reason}`);
  }
}

/** A credits pack granted or taken back: which balance, by how much, and the balance after. */
interface PackCredit {
  creditId: string;
  amount: number;
  balance: number;
}

/**
 * The credits a purchase's products buy (the `packs` of credits properties): added when the purchase is paid, taken
 * back when a refund or dispute revokes it. Each grant is keyed by the payment, so a repeated dispatch grants nothing
 * twice (the meter object answers a known key with its first result).
 */
async function grantPackCredits(
  prepared: PreparedSnapshot,
  store: string,
  transition: PaymentTransition,
  grant: (input: GrantCreditsInput) => Promise<CreditResult>,
): Promise<PackCredit[]> {
  const paid = transition.fromState === null && transition.toState === "paid";
  const revoked = transition.fromState === "paid" && transition.toState !== "paid";
  if (!paid && !revoked) return [];
  const granted: PackCredit[] = [];
  for (const feature of prepared.features) {
    const counterIds = feature.counterIds(store);
    for (const [index, property] of feature.properties.entries()) {
      const definition = property.definition;
      if (definition.type !== "credits" || !definition.packs) continue;
      const amount = definition.packs.filter((pack) => transition.productIds.includes(pack.stripeProductId)).reduce((sum, pack) => sum + pack.amount, 0);
      if (amount === 0) continue;
      const creditId = counterIds[index]!;
      const delta = paid ? amount : -amount;
      const result = await grant({
        creditId,
        amount: delta,
        reason: `${paid ? "purchase" : "purchase_revoked"}:${transition.subjectId}`,
        idempotencyKey: `payment:${paid ? "paid" : "revoked"}:${transition.subjectId}:${creditId}`,
        requestHash: String(delta),
      });
      if ("conflict" in result) throw new Error(`credits of ${transition.subjectId} collided with another grant's key`);
      granted.push({ creditId, amount: delta, balance: result.balance });
    }
  }
  return granted;
}

async function deployedSnapshot(db: D1Database, versionId: string): Promise<PreparedSnapshot | null> {
  try {
    return await preparedSnapshotFor(db, versionId);
  } catch (error) {
    // A version that cannot be read (an old format, a refused workflow) fires nothing; the transitions are recorded.
    if ((error as { code?: string }).code === "not_found" || (error as { code?: string }).code === "version_unreadable") return null;
    throw error;
  }
}

/** The plans the products link, in plan order. */
function linkedPlanSlugs(prepared: PreparedSnapshot, productIds: string[]): string[] {
  const slugs = new Set<string>();
  for (const productId of productIds) for (const plan of prepared.plansByStripeProductId.get(productId) ?? []) slugs.add(plan.slug);
  return [...slugs].sort();
}

/** The record as it was before the transitions: each subject back in its former state (or gone when it was new). */
function recordBefore(record: CustomerRecord, transitions: PaymentTransition[]): CustomerRecord {
  let { subscriptions, purchases } = record;
  for (const transition of transitions) {
    if (transition.subject === "subscription") {
      subscriptions = subscriptions.flatMap((subscription) => {
        if (subscription.id !== transition.subjectId) return [subscription];
        if (transition.fromState === null) return [];
        return [{ ...subscription, state: transition.fromState as typeof subscription.state, productIds: transition.fromProductIds ?? subscription.productIds, revokedAt: null }];
      });
    } else {
      purchases = purchases.flatMap((purchase) => {
        if (purchase.paymentId !== transition.subjectId) return [purchase];
        if (transition.fromState === null) return [];
        return [{ ...purchase, state: transition.fromState as typeof purchase.state }];
      });
    }
  }
  return { ...record, subscriptions, purchases };
}
