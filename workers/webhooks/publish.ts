/**
 * Outbound webhooks: what the platform tells operators' systems. STUB — the outbound-webhooks work replaces the body;
 * the signature is the contract other code calls.
 */

export type WebhookEventType =
  | "plan.changed"
  | "user.added"
  | "counter.threshold_reached"
  | "counter.limit_reached"
  | "offer.redemption.started"
  | "offer.redemption.completed"
  | "offer.redemption.failed";

export interface WebhookEventInput {
  type: WebhookEventType;
  /** The event's payload (plain JSON). */
  data: Record<string, unknown>;
  /** A stable id (the same event published twice is delivered once per subscription); random when absent. */
  id?: string;
}

export interface WebhookPublisherEnv {
  DB: D1Database;
  WEBHOOKS?: Queue;
}

/**
 * Sends the events to the environment's subscribed endpoints (through the webhooks queue). Never throws: a failure is
 * logged; call it inside `waitUntil`.
 */
export async function publishWebhookEvents(_env: WebhookPublisherEnv, _environment: { id: string; organizationId: string }, _events: WebhookEventInput[]): Promise<void> {}
