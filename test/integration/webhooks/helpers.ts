/**
 * Outbound webhook tests: the webhooks queue held here (its consumer runs when a test says, with the attempt number it
 * says — no waiting on Miniflare's timers), and the receiver of test/webhook-receiver, one path per test.
 */
import type { QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject, type MockInstance, vi } from "vitest";
import { WEBHOOK_QUEUE } from "../../../workers/webhooks/delivery";
import type { WebhookDeliveryMessage } from "../../../workers/webhooks/publish";
import { call, type TestOrganization } from "../../support/api";
import { waitForBackgroundWork } from "../../support/background";
import { holdQueue, queuedMessage, runQueueBatch } from "../../support/queues";

export interface CapturedWebhooks {
  /** Every message sent to the webhooks queue since capture began. */
  readonly sent: WebhookDeliveryMessage[];
  /** Runs the consumer once on every message not delivered yet, as attempt `attempts`. */
  deliver(attempts?: number): Promise<DeliveryResult>;
  restore(): void;
}

/** Holds what the Worker sends to env.WEBHOOKS from now on. */
export function captureWebhooks(): CapturedWebhooks {
  const held = holdQueue(env.WEBHOOKS as Queue<WebhookDeliveryMessage>);
  return {
    sent: held.sent,
    async deliver(attempts = 1) {
      await waitForBackgroundWork();
      const result = await deliverWebhookMessages(held.take(), attempts);
      await waitForBackgroundWork();
      return result;
    },
    restore: () => held.release(),
  };
}

export interface DeliveryResult extends QueueResult {
  /** The `delaySeconds` of each message the consumer asked to be retried, in message order. */
  retryDelays: (number | undefined)[];
}

/** Runs the webhooks consumer on one batch, as the queue would deliver it (`attempts` for retries). */
export async function deliverWebhookMessages(bodies: WebhookDeliveryMessage[], attempts = 1): Promise<DeliveryResult> {
  let retries: MockInstance<Message<WebhookDeliveryMessage>["retry"]>[] = [];
  const result = await runQueueBatch(WEBHOOK_QUEUE, bodies.map((body) => queuedMessage(body, attempts)), {
    inspect: (batch) => (retries = batch.messages.map((message) => vi.spyOn(message, "retry"))),
  });
  return { ...result, retryDelays: retries.flatMap((spy) => spy.mock.calls.map(([options]) => options?.delaySeconds)) };
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number;
}

/** A path of its own on the test receiver. */
export function receiverEndpoint(name: string): { url: string; path: string } {
  const path = `/hooks/${name}-${crypto.randomUUID()}`;
  return { url: `${inject("webhookReceiverBase")}${path}`, path };
}

export async function received(path: string): Promise<ReceivedRequest[]> {
  const response = await fetch(`${inject("webhookReceiverBase")}/__control/requests?path=${encodeURIComponent(path)}`);
  return ((await response.json()) as { requests: ReceivedRequest[] }).requests;
}

/** The next `times` requests to `path` fail with `status` (and a body of `bodyBytes` bytes when given). */
export async function failNext(path: string, times: number, status = 500, bodyBytes?: number): Promise<void> {
  await fetch(`${inject("webhookReceiverBase")}/__control/fail`, { method: "POST", body: JSON.stringify({ path, times, status, bodyBytes }) });
}

export const webhooksPath = (environmentId: string) => `/api/v1/admin/environments/${environmentId}/webhooks`;

export async function subscribe(org: TestOrganization, environmentId: string, body: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const created = await call("POST", webhooksPath(environmentId), { key: org.adminKey, body });
  if (created.status !== 201) throw new Error(`subscribing failed: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body;
}
