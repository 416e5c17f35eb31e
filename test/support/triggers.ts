/**
 * Triggers without the local queue's timing: the messages the Worker hands to its trigger queue are held here
 * instead of being delivered by Miniflare whenever its batch timer fires, and `deliver()` runs them through the
 * queue consumer within the test, so action workflows have run before the assertions that read their effects.
 */
import { env } from "cloudflare:workers";
import type { QueueResult } from "cloudflare:test";
import { TRIGGER_QUEUE } from "../../workers/workflows/actions";
import type { TriggerMessage } from "../../workers/workflows/triggers";
import { waitForBackgroundWork } from "./background";
import { holdQueue, type QueuedMessage, queuedMessage, runQueueBatch } from "./queues";

/** `max_batch_size` of the consumer in wrangler.toml. */
const MAX_BATCH_SIZE = 10;

/** A queue message as the consumer receives it; its id is unique, as the queue's are (dead letter ids derive from it). */
export type QueuedTrigger = QueuedMessage<TriggerMessage>;

export const queuedTrigger = (body: TriggerMessage, attempts = 1): QueuedTrigger => queuedMessage(body, attempts);

/**
 * Runs a queue consumer of the Worker on one batch of messages, as the queue would deliver them (the trigger queue's
 * by default; `queue` names another, e.g. the dead-letter queue; `env` replaces the Worker's bindings, e.g. a D1
 * that fails); returns ack / retry state.
 */
export function deliverMessages(messages: QueuedTrigger[], options: { queue?: string; env?: Env } = {}): Promise<QueueResult> {
  return runQueueBatch(options.queue ?? TRIGGER_QUEUE, messages, { ...(options.env ? { bindings: options.env } : {}) });
}

/** Runs the trigger queue consumer on one batch of messages, as the queue would deliver them; returns ack / retry state. */
export async function deliverTriggers(bodies: TriggerMessage[], attempts = 1): Promise<QueueResult & { ids: string[] }> {
  const messages = bodies.map((body) => queuedTrigger(body, attempts));
  return { ...(await deliverMessages(messages)), ids: messages.map((message) => message.id) };
}

export interface CapturedTriggers {
  /** Every message sent since capture began, delivered or not. */
  readonly sent: TriggerMessage[];
  /** The JSON size in bytes of each batch (or single message) handed to the queue. */
  readonly batchBytes: number[];
  /**
   * Waits for the Worker's work after its responses (that is where triggers are enqueued), then delivers every
   * message not delivered yet, in batches of the consumer's size, until none is left: actions may fire triggers too.
   * A message the consumer asked to retry (an action failed) fails the call, unless `allowRetries`: an action that
   * broke must not pass unnoticed (the consumer only logs it).
   */
  deliver(options?: { allowRetries?: boolean }): Promise<QueueResult[]>;
  /**
   * Waits for the Worker's work after its responses, then hands send and sendBatch back to the real queue; messages never
   * delivered are dropped (the test did not need their actions).
   */
  restore(): Promise<void>;
}

/** Holds the messages the Worker sends to env.TRIGGERS from now on, until `restore()`. */
export function captureTriggers(): CapturedTriggers {
  const held = holdQueue(env.TRIGGERS as Queue<TriggerMessage>);
  return {
    sent: held.sent,
    batchBytes: held.batchBytes,
    async deliver({ allowRetries = false } = {}) {
      const results: QueueResult[] = [];
      for (;;) {
        await waitForBackgroundWork();
        const retried = results.filter((result) => result.retryBatch.retry || result.retryMessages.length > 0);
        if (retried.length > 0 && !allowRetries) throw new Error(`the queue consumer asked to retry ${JSON.stringify(retried)}: an action failed`);
        if (held.pending === 0) return results;
        const pending = held.take();
        for (let start = 0; start < pending.length; start += MAX_BATCH_SIZE) {
          results.push(await deliverTriggers(pending.slice(start, start + MAX_BATCH_SIZE)));
        }
      }
    },
    async restore() {
      await waitForBackgroundWork();
      held.release();
    },
  };
}
