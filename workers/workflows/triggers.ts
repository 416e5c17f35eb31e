/**
 * Triggers: system events (decision made, counters updated, plans changed, user added) and custom ones fired by
 * workflows. They go to a queue after the response and never delay it; the queue consumer runs the action
 * workflows listening for each trigger. Without a queue binding, or when no action workflow listens, nothing is sent.
 */
import { SYSTEM_TRIGGERS } from "../../schema/config";
import type { PreparedSnapshot } from "../engine/prepare";
import type { ConfigSnapshot } from "../engine/snapshot";
import type { Environment } from "../services/tenancy";
import type { CounterSettings } from "./scopedUtils";
import { groupsWithin } from "../lib/batches";
import { jsonByteLength } from "../lib/json";
import { schemaValidator } from "../lib/schemaValidators";

export interface TriggerMessage {
  organizationId: string;
  environmentId: string;
  versionId: string;
  identifier: string;
  /** Whether the identity is signed in (its data lives apart from anonymous identities'); absent means signed in. */
  authenticated?: boolean;
  trigger: string;
  payload: unknown;
  firedAt: string;
  /** How many action workflows fired in a chain before this one (0 for triggers of requests); bounded. */
  depth?: number;
  /**
   * The user's counter limits as the firing request resolved them: what `utils.counters` in the action workflows
   * enforce (an action has no request of its own to resolve plans from).
   */
  counters?: [string, CounterSettings][];
  /** Set when an operator sent a dead letter again (admin API): the dead letter this message retries. */
  retryOf?: string;
}

/** Action workflows may fire triggers that run further actions, up to this depth (no unbounded loops). */
export const MAX_TRIGGER_DEPTH = 3;

/** Where the platform sends triggers; built once per request (or queue batch) from the TRIGGERS binding. */
export interface TriggerQueue {
  enqueue(
    prepared: PreparedSnapshot,
    environment: Environment,
    identity: { identifier: string; isAuthenticated: boolean },
    triggers: { name: string; payload: unknown }[],
    depth?: number,
    counters?: ReadonlyMap<string, CounterSettings>,
  ): Promise<UnsentTrigger[]>;
}

/**
 * A TriggerQueue over the queue binding; without one (a deployment with no queue), triggers go nowhere. For the
 * request path: a trigger the queue did not take is logged and returned, never an error — a decision does not fail for
 * it (a redemption workflow records it).
 */
export function triggerQueue(queue: Queue<TriggerMessage> | undefined, clock: { now(): number } = Date): TriggerQueue {
  return {
    enqueue: (prepared, environment, identity, triggers, depth, counters) => enqueueTriggers(queue, prepared, environment, identity, triggers, depth, counters, clock),
  };
}

/** A trigger that should have been sent and was not, and why. */
export interface UnsentTrigger {
  trigger: string;
  reason: string;
}

/**
 * Sends the triggers some action workflow listens to, in batches. What could not be sent (a message too large, a
 * batch the queue refused) is logged and returned: the request path ignores it (its triggers are best effort, see
 * triggerQueue), the queue consumer fails its message for it so the follow-up work is retried, never lost. Triggers
 * past MAX_TRIGGER_DEPTH are dropped by design and not returned.
 */
export async function enqueueTriggers(
  queue: Queue<TriggerMessage> | undefined,
  prepared: PreparedSnapshot,
  environment: Environment,
  identity: { identifier: string; isAuthenticated: boolean },
  triggers: { name: string; payload: unknown }[],
  depth = 0,
  counters?: ReadonlyMap<string, CounterSettings>,
  clock: { now(): number } = Date,
): Promise<UnsentTrigger[]> {
  if (!queue) return [];
  const listened = new Set(prepared.snapshot.workflows.filter((workflow) => workflow.type === "action").flatMap((workflow) => workflow.triggers ?? []));
  const wanted = triggers.filter((trigger) => listened.has(trigger.name));
  if (wanted.length === 0) return [];
  if (depth > MAX_TRIGGER_DEPTH) {
    console.warn(JSON.stringify({ event: "triggers_dropped", reason: "chain too deep", environmentId: environment.id, triggers: wanted.map((t) => t.name) }));
    return [];
  }
  const unsent: UnsentTrigger[] = [];
  const firedAt = new Date(clock.now()).toISOString();
  const messages: { body: TriggerMessage; bytes: number }[] = [];
  for (const trigger of wanted) {
    const body: TriggerMessage = {
      organizationId: environment.organizationId,
      environmentId: environment.id,
      versionId: prepared.snapshot.versionId,
      identifier: identity.identifier,
      authenticated: identity.isAuthenticated,
      trigger: trigger.name,
      payload: trigger.payload,
      firedAt,
      ...(depth > 0 ? { depth } : {}),
      ...(counters && counters.size > 0 ? { counters: [...counters] } : {}),
    };
    let bytes = jsonByteLength(body);
    if (bytes > MAX_MESSAGE_BYTES && body.counters) {
      // The limits are a convenience for utils.counters; the trigger itself must get through.
      delete body.counters;
      bytes = jsonByteLength(body);
    }
    if (bytes > MAX_MESSAGE_BYTES) {
      console.error(JSON.stringify({ event: "triggers_dropped", reason: "message too large", environmentId: environment.id, trigger: trigger.name, bytes }));
      unsent.push({ trigger: trigger.name, reason: `its message is ${bytes} bytes, over the queue's ${MAX_MESSAGE_BYTES}` });
      continue;
    }
    messages.push({ body, bytes });
  }
  // Each batch on its own: one refused batch must not take the others down with it.
  for (const batch of groupsWithin(messages, (message) => message.bytes, { maxBytes: MAX_BATCH_BYTES, maxItems: 100 })) {
    try {
      // As JSON, so what was measured is what is sent (the default v8 encoding can take twice the bytes).
      await queue.sendBatch(batch.map(({ body }) => ({ body, contentType: "json" as const })));
    } catch (error) {
      console.error(JSON.stringify({ event: "triggers_not_enqueued", environmentId: environment.id, triggers: batch.map(({ body }) => body.trigger), error: String(error) }));
      unsent.push(...batch.map(({ body }) => ({ trigger: body.trigger, reason: `the queue refused it: ${String(error)}` })));
    }
  }
  return unsent;
}

/** A queue message holds at most 128 KB, a batch 100 messages and 256 KB; both with headroom for the envelope. */
export const MAX_MESSAGE_BYTES = 120 * 1024;
const MAX_BATCH_BYTES = 200 * 1024;

/**
 * Checks a trigger a workflow fires: customer code may fire only the custom triggers its version declares, with a
 * payload that matches the declared JSON Schema. Throws (inside the workflow's utils call) otherwise.
 */
export function checkFiredTrigger(snapshot: Pick<ConfigSnapshot, "versionId" | "triggers">, name: string, payload: unknown): void {
  if ((SYSTEM_TRIGGERS as readonly string[]).includes(name)) throw new Error(`${name} is a system trigger: only the platform fires it`);
  const declared = snapshot.triggers?.[name];
  if (!declared) throw new Error(`unknown trigger ${name}: declare it under triggers in the configuration`);
  // A version is immutable: its trigger's schema is too.
  const result = schemaValidator(`trigger\u0000${snapshot.versionId}\u0000${name}`, declared.schema).validate(payload ?? null);
  if (!result.valid) {
    const reasons = result.errors.slice(0, 3).map((error) => `${error.instanceLocation} ${error.error}`);
    throw new Error(`payload of trigger ${name} does not match its schema: ${reasons.join("; ")}`);
  }
}

/** Whether any action workflow of the version runs on `trigger` (cheap; lets the pipeline skip work nobody reads). */
export function listensTo(prepared: PreparedSnapshot, trigger: string): boolean {
  for (const workflow of prepared.snapshot.workflows) {
    if (workflow.type === "action" && workflow.triggers?.includes(trigger)) return true;
  }
  return false;
}
