/**
 * Triggers without the local queue's timing: the messages the Worker hands to its trigger queue are held here
 * instead of being delivered by Miniflare whenever its batch timer fires, and `deliver()` runs them through the
 * queue consumer within the test, so action workflows have run before the assertions that read their effects.
 */
import { createMessageBatch, getQueueResult, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { vi } from "vitest";
import worker from "../../workers/index";
import type { TriggerMessage } from "../../workers/workflows/triggers";
import { trackedExecutionContext, waitForBackgroundWork } from "./background";

const QUEUE_NAME = "edge-monetization-triggers";
/** `max_batch_size` of the consumer in wrangler.toml. */
const MAX_BATCH_SIZE = 10;

let sequence = 0;

/** Runs the trigger queue consumer on one batch of messages, as the queue would deliver them; returns ack / retry state. */
export async function deliverTriggers(bodies: TriggerMessage[], attempts = 1): Promise<QueueResult & { ids: string[] }> {
  const messages = bodies.map((body) => ({ id: `msg-${++sequence}`, timestamp: new Date(), attempts, body }));
  const batch = createMessageBatch<TriggerMessage>(QUEUE_NAME, messages);
  const ctx = trackedExecutionContext();
  await worker.queue(batch, env, ctx);
  return { ...(await getQueueResult(batch, ctx)), ids: messages.map((message) => message.id) };
}

export interface CapturedTriggers {
  /** Every message sent since capture began, delivered or not. */
  readonly sent: TriggerMessage[];
  /** The JSON size in bytes of each batch handed to the queue. */
  readonly batchBytes: number[];
  /**
   * Waits for the Worker's work after its responses (that is where triggers are enqueued), then delivers every
   * message not delivered yet, in batches of the consumer's size, until none is left: actions may fire triggers too.
   * A message the consumer asked to retry (an action failed) fails the call, unless `allowRetries`: an action that
   * broke must not pass unnoticed (the consumer only logs it).
   */
  deliver(options?: { allowRetries?: boolean }): Promise<QueueResult[]>;
  /**
   * Waits for the Worker's work after its responses, then hands sendBatch back to the real queue; messages never
   * delivered are dropped (the test did not need their actions).
   */
  restore(): Promise<void>;
}

/** Holds the messages the Worker sends to env.TRIGGERS from now on, until `restore()`. */
export function captureTriggers(): CapturedTriggers {
  const queue = env.TRIGGERS as Queue<TriggerMessage>;
  const sent: TriggerMessage[] = [];
  const batchBytes: number[] = [];
  let undelivered: TriggerMessage[] = [];
  const spy = vi.spyOn(queue, "sendBatch").mockImplementation(async (messages) => {
    const list = [...messages];
    batchBytes.push(new TextEncoder().encode(JSON.stringify(list)).byteLength);
    // Sent as JSON, so the consumer receives a copy, never the producer's objects.
    const bodies = list.map((message) => JSON.parse(JSON.stringify(message.body)) as TriggerMessage);
    sent.push(...bodies);
    undelivered.push(...bodies);
    return { metadata: { metrics: { backlogCount: undelivered.length, backlogBytes: 0 } } };
  });
  return {
    sent,
    batchBytes,
    async deliver({ allowRetries = false } = {}) {
      const results: QueueResult[] = [];
      for (;;) {
        await waitForBackgroundWork();
        const retried = results.filter((result) => result.retryBatch.retry || result.retryMessages.length > 0);
        if (retried.length > 0 && !allowRetries) throw new Error(`the queue consumer asked to retry ${JSON.stringify(retried)}: an action failed`);
        if (undelivered.length === 0) return results;
        const pending = undelivered;
        undelivered = [];
        for (let start = 0; start < pending.length; start += MAX_BATCH_SIZE) {
          results.push(await deliverTriggers(pending.slice(start, start + MAX_BATCH_SIZE)));
        }
      }
    },
    async restore() {
      await waitForBackgroundWork();
      spy.mockRestore();
    },
  };
}
