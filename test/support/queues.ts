/**
 * The queue bindings as tests drive them: a producer whose messages the test holds (instead of Miniflare's batch
 * timer delivering them whenever), and the Worker's queue handler run on one batch, as the queue would deliver it.
 * The trigger, payment and webhook helpers are built on these.
 */
import { createMessageBatch, getQueueResult, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { vi } from "vitest";
import worker from "../../workers/index";
import { trackedExecutionContext } from "./background";

export interface HeldQueue<Body> {
  /** Every message sent since the hold began, delivered or not (JSON copies, as the queue carries them). */
  readonly sent: Body[];
  /** The JSON size in bytes of each `send` or `sendBatch` call. */
  readonly batchBytes: number[];
  /** How many messages were not taken yet. */
  readonly pending: number;
  /** Takes the oldest `max` messages not taken yet (all by default). */
  take(max?: number): Body[];
  /** Hands send and sendBatch back to the binding; messages never taken are dropped. */
  release(): void;
}

/** Holds what the Worker sends to `queue` from now on. */
export function holdQueue<Body>(queue: Queue<Body>): HeldQueue<Body> {
  const sent: Body[] = [];
  const batchBytes: number[] = [];
  let undelivered: Body[] = [];
  const hold = (list: { body: Body }[]) => {
    batchBytes.push(new TextEncoder().encode(JSON.stringify(list)).byteLength);
    // As JSON, the way the queue carries them: the consumer receives a copy, never the producer's objects.
    const bodies = list.map((message) => JSON.parse(JSON.stringify(message.body)) as Body);
    sent.push(...bodies);
    undelivered.push(...bodies);
    return { metadata: { metrics: { backlogCount: undelivered.length, backlogBytes: 0 } } };
  };
  const spies = [
    vi.spyOn(queue, "sendBatch").mockImplementation(async (messages) => hold([...messages])),
    vi.spyOn(queue, "send").mockImplementation(async (body) => hold([{ body }])),
  ];
  return {
    sent,
    batchBytes,
    get pending() {
      return undelivered.length;
    },
    take: (max = Infinity) => undelivered.splice(0, Math.min(max, undelivered.length)),
    release() {
      for (const spy of spies) spy.mockRestore();
      undelivered = [];
    },
  };
}

export interface QueuedMessage<Body> {
  id: string;
  attempts: number;
  body: Body;
}

/** A message as the queue delivers it on its `attempts`-th try. */
export const queuedMessage = <Body>(body: Body, attempts = 1): QueuedMessage<Body> => ({ id: `msg-${crypto.randomUUID()}`, attempts, body });

/**
 * Runs the Worker's consumer of `queueName` on one batch of messages; returns ack / retry state. `inspect` sees the
 * batch before it runs (e.g. to spy on its messages' retry); `bindings` replaces the Worker's (e.g. a D1 that fails).
 */
export async function runQueueBatch<Body>(
  queueName: string,
  messages: QueuedMessage<Body>[],
  options: { bindings?: Env; inspect?: (batch: MessageBatch<Body>) => void } = {},
): Promise<QueueResult> {
  const batch = createMessageBatch<Body>(
    queueName,
    messages.map((message) => ({ ...message, timestamp: new Date() })),
  );
  options.inspect?.(batch);
  const ctx = trackedExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, options.bindings ?? env, ctx);
  return getQueueResult(batch, ctx);
}
