/**
 * Outbound webhook tests: the webhooks queue held here (its consumer runs when a test says, with the attempt number it
 * says — no waiting on Miniflare's timers), and the receiver of test/webhook-receiver, one path per test.
 */
import { createMessageBatch, getQueueResult, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject, vi } from "vitest";
import worker from "../../../workers/index";
import { WEBHOOK_QUEUE } from "../../../workers/webhooks/delivery";
import type { WebhookDeliveryMessage } from "../../../workers/webhooks/publish";
import { call, type TestOrganization } from "../../support/api";
import { trackedExecutionContext, waitForBackgroundWork } from "../../support/background";

export interface CapturedWebhooks {
  /** Every message sent to the webhooks queue since capture began. */
  readonly sent: WebhookDeliveryMessage[];
  /** Runs the consumer once on every message not delivered yet, as attempt `attempts`. */
  deliver(attempts?: number): Promise<DeliveryResult>;
  restore(): void;
}

/** Holds what the Worker sends to env.WEBHOOKS from now on. */
export function captureWebhooks(): CapturedWebhooks {
  const queue = env.WEBHOOKS as Queue<WebhookDeliveryMessage>;
  const sent: WebhookDeliveryMessage[] = [];
  let undelivered: WebhookDeliveryMessage[] = [];
  const hold = (bodies: WebhookDeliveryMessage[]) => {
    const copies = bodies.map((body) => JSON.parse(JSON.stringify(body)) as WebhookDeliveryMessage);
    sent.push(...copies);
    undelivered.push(...copies);
    return { metadata: { metrics: { backlogCount: undelivered.length, backlogBytes: 0 } } };
  };
  const spies = [
    vi.spyOn(queue, "sendBatch").mockImplementation(async (messages) => hold([...messages].map((message) => message.body))),
    vi.spyOn(queue, "send").mockImplementation(async (body) => hold([body])),
  ];
  return {
    sent,
    async deliver(attempts = 1) {
      await waitForBackgroundWork();
      const bodies = undelivered.splice(0);
      const result = await deliverWebhookMessages(bodies, attempts);
      await waitForBackgroundWork();
      return result;
    },
    restore() {
      for (const spy of spies) spy.mockRestore();
      undelivered = [];
    },
  };
}

export interface DeliveryResult extends QueueResult {
  /** The `delaySeconds` of each message the consumer asked to be retried, in message order. */
  retryDelays: (number | undefined)[];
}

/** Runs the webhooks consumer on one batch, as the queue would deliver it (`attempts` for retries). */
export async function deliverWebhookMessages(bodies: WebhookDeliveryMessage[], attempts = 1): Promise<DeliveryResult> {
  const batch = createMessageBatch<WebhookDeliveryMessage>(
    WEBHOOK_QUEUE,
    bodies.map((body) => ({ id: `msg-${crypto.randomUUID()}`, attempts, body, timestamp: new Date() })),
  );
  const retries = batch.messages.map((message) => vi.spyOn(message, "retry"));
  const ctx = trackedExecutionContext();
  await worker.queue(batch, env, ctx);
  const result = await getQueueResult(batch, ctx);
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
