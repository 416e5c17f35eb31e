/**
 * Usage-based billing of overage: a decision or counter update that consumed units past the limit of an
 * `overage: overflow` setting with a `stripeMeterEvent` queues one `usage` message after its response; so does a
 * paid pay-per-crawl decision when `settings.payPerCrawl.stripeMeterEvent` is set (its charge in micro-units). The
 * payments queue's consumer reports the units to the identity's provider customer (a Stripe Billing Meter event) and
 * records what it did as a `usage` event. The report's identifier is derived from the request's event id and the counter, so
 * a redelivered message is counted once by the provider and recorded once here.
 */
import { sha256Hex } from "../lib/crypto";
import { agentStore, getCustomerRecord, paymentCustomerIdsOf } from "../services/customers";
import { derivedEventId, insertEvents } from "../services/events";
import type { PaymentGateway } from "./gateway";

/** Overage units one request consumed, on the payments queue. */
export interface UsageReportMessage {
  kind: "usage";
  organizationId: string;
  environmentId: string;
  identifier: string;
  counterId: string;
  /** The Stripe Billing Meter's `event_name`. */
  eventName: string;
  /** Overage units this request consumed (> 0). */
  value: number;
  /** The decision's (or counter update's) event id. */
  eventId: string;
  /**
   * The store partition the identity's customer record lives in, when not the environment's store: a verified agent's
   * operator is in the `~agents` partition (its pay-per-crawl charges, `counterId: "crawl:<surface>"`).
   */
  store?: string;
}

/**
 * Where the message's customer record is looked up: the environment's store, or that store's agents partition when the
 * message names it. Anything else is refused (null) — a message never reaches another store's (or tenant's) customers.
 */
export function usageStoreOf(environmentStore: string, message: Pick<UsageReportMessage, "store">): string | null {
  if (message.store === undefined || message.store === environmentStore) return environmentStore;
  return message.store === agentStore(environmentStore) ? message.store : null;
}

export type UsageOutcome = "reported" | "no_customer";

/**
 * Reports the message's units to the identity's provider customer — the one its checkouts use, else the first linked
 * one — and records the outcome; an identity without a customer is only recorded. Throws when the provider or D1
 * fails (the message is retried; the provider dedupes by identifier, the record by id).
 */
export async function reportUsage(
  db: D1Database,
  gateway: PaymentGateway,
  target: { organizationId: string; environmentId: string; store: string },
  message: UsageReportMessage,
): Promise<UsageOutcome> {
  const record = await getCustomerRecord(db, target.organizationId, target.store, message.identifier);
  const customerId = record ? (record.stripeCustomerId ?? paymentCustomerIdsOf(record)[0]) : undefined;
  const readable = `${message.eventId}:${message.counterId}`;
  // Stripe takes at most 100 characters; ids are far shorter, but a long store name must not make reports fail.
  const identifier = readable.length <= 100 ? readable : `usage_${await sha256Hex(readable)}`;
  if (customerId) await gateway.reportUsage({ eventName: message.eventName, customerId, value: message.value, identifier });
  const outcome: UsageOutcome = customerId ? "reported" : "no_customer";
  await insertEvents(db, [
    {
      id: await derivedEventId(`${target.environmentId}:usage:${identifier}`),
      organizationId: target.organizationId,
      environmentId: target.environmentId,
      kind: "usage",
      identifier: message.identifier,
      outcome,
      record: {
        provider: gateway.provider,
        customerId: customerId ?? null,
        counterId: message.counterId,
        eventName: message.eventName,
        value: message.value,
        decisionEventId: message.eventId,
        reportIdentifier: identifier,
      },
    },
  ]);
  return outcome;
}
