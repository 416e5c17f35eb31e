/**
 * The queue consumer of triggers: for each message, runs every action workflow of the message's version that
 * listens to its trigger, with `{trigger, payload, env, utils}` (utils scoped to the message's organization, the
 * environment's user data store and the identifier). A message is acked when all its actions succeeded and retried
 * otherwise (after a short delay that grows with the attempts); every failed run is an `action_failed` event, and a
 * message still failing on its last attempt is kept as a dead letter (listed and retried through the admin API; see
 * below). The triggers the actions fire are part of their work: a message whose fired triggers the queue did not take
 * has failed too, so that work is retried rather than lost. Delivery is at-least-once and a retry
 * re-runs every action of the message, so actions should be idempotent. `utils.counters` enforce the limits the
 * firing request resolved for the user (carried in the message).
 */
import { preparedSnapshotFor } from "../services/snapshots";
import type { PreparedSnapshot } from "../engine/prepare";
import type { ActionArgs, JsonValue } from "./authorTypes";
import { counterEntriesOf } from "./capability";
import { workflowEnvironment } from "../services/environmentSettings";
import { lookupEnvironment } from "../services/tenantCache";
import { storeOf, type Environment } from "../services/tenancy";
import type { WorkflowOutcome } from "./runner";
import { scopedUtils } from "./scopedUtils";
import { paymentsAccess, workflowLogger } from "./paymentsAccess";
import { createMeterClient, meterDeadlineOf } from "../../durable-objects/meter/client";
import { selectWorkflowRunner } from "./select";
import { enqueueTriggers, MAX_MESSAGE_BYTES, type TriggerMessage, type UnsentTrigger } from "./triggers";
import { ApiError } from "../errors";
import { jsonByteLength } from "../lib/json";
import { insertEvents, type EventInput } from "../services/events";
import {
  boundedText,
  deadLetterIdOf,
  getDeadLetter,
  markDeadLetterRetried,
  storeDeadLetter,
  unmarkDeadLetterRetried,
  type DeadLetter,
} from "../services/deadLetters";

/** Actions run off the request path, so their default deadline is longer than the 50 ms of synchronous workflows. */
export const DEFAULT_ACTION_DEADLINE_MS = 5_000;

export interface ActionResult {
  workflow: string;
  outcome: WorkflowOutcome;
}

/** The actions ran and succeeded, but the triggers they fired did not all reach the queue. */
export class FiredTriggersNotEnqueued extends Error {
  constructor(
    readonly results: ActionResult[],
    readonly unsent: UnsentTrigger[],
  ) {
    const [first] = unsent;
    const more = unsent.length > 1 ? ` (and ${unsent.length - 1} more)` : "";
    super(`the action workflows succeeded, but a trigger they fired could not be enqueued: ${first?.trigger}, ${first?.reason}${more}`);
  }
}

/**
 * Runs the action workflows of one trigger message. Throws when a dependency (D1, the version) is unavailable, and
 * FiredTriggersNotEnqueued when the triggers the actions fired could not all be sent on.
 */
export async function runActions(env: Env, ctx: ExecutionContext, message: TriggerMessage): Promise<ActionResult[]> {
  const environment = await lookupEnvironment(env.DB, message.environmentId);
  if (!environment || environment.organizationId !== message.organizationId) return [];
  let prepared: PreparedSnapshot;
  try {
    prepared = await preparedSnapshotFor(env.DB, message.versionId);
  } catch (error) {
    if ((error as { code?: string }).code === "not_found") return [];
    throw error;
  }
  // A message names a version; it must be one of the environment's organization (never another tenant's code).
  if (prepared.snapshot.organizationId !== environment.organizationId) return [];
  const actions = prepared.snapshot.workflows.filter((workflow) => workflow.type === "action" && (workflow.triggers ?? []).includes(message.trigger));
  if (actions.length === 0) return [];

  const settings = await workflowEnvironment(env.DB, env.SECRETS_KEY, environment.id);
  const runner = selectWorkflowRunner(env, ctx, { organizationId: environment.organizationId, environmentId: environment.id, egressHosts: settings.egressAllowList });
  const fired: { name: string; payload: unknown }[] = [];
  const utils = scopedUtils({
    meter: createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS)),
    organizationId: environment.organizationId,
    store: storeOf(environment),
    prepared,
    identifier: () => message.identifier,
    authenticated: () => message.authenticated !== false,
    readOnly: false,
    counterSettings: new Map(counterEntriesOf(message.counters)),
    fireTrigger: (name, payload) => fired.push({ name, payload }),
    payments: paymentsAccess(
      { db: env.DB, secretsKey: env.SECRETS_KEY, stripeApiBase: env.STRIPE_API_BASE, logger: workflowLogger },
      { environment, prepared, store: storeOf(environment) },
    ),
  });
  const args: ActionArgs = { trigger: message.trigger, payload: (message.payload ?? null) as JsonValue, env: settings.values };
  const results = await Promise.all(
    actions.map(async (workflow) => ({
      workflow: workflow.slug,
      outcome: await runner.run({ workflow, args, utils, deadlineMs: workflow.deadlineMs ?? DEFAULT_ACTION_DEADLINE_MS }),
    })),
  );
  if (fired.length > 0 && results.every((result) => result.outcome.ok)) {
    const identity = { identifier: message.identifier, isAuthenticated: message.authenticated !== false };
    const unsent = await enqueueTriggers(env.TRIGGERS, prepared, environment as Environment, identity, fired, (message.depth ?? 0) + 1, new Map(counterEntriesOf(message.counters)));
    if (unsent.length > 0) throw new FiredTriggersNotEnqueued(results, unsent);
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------------------
// The queue side. wrangler.toml configures both consumers; test/integration/workflows/dead-letters.test.ts keeps
// these constants equal to it.
//
// Where dead letters come from: the consumer stores a message as a dead letter itself on its last attempt — only it
// knows which workflows failed and why — and acks it once stored. What it could not store (D1 refused the write, or
// the invocation died: a CPU or memory limit, a crash) it cannot ack, so the queue moves it to the dead-letter queue,
// whose consumer (handleDeadLetterBatch) stores it with what the message itself says. Either way a message that ran
// out of retries ends up in D1, never silently gone; a dead-letter queue alone would lose the why, the consumer alone
// would lose what it never got to write.

export const TRIGGER_QUEUE = "edge-monetization-triggers";
/** `max_retries` of the trigger queue's consumer: a message is delivered at most this many times plus one. */
export const TRIGGER_MAX_RETRIES = 3;
export const DEAD_LETTER_QUEUE = "edge-monetization-triggers-dlq";
/** `max_retries` of the dead-letter queue's consumer: with its `retry_delay`, how long D1 may be down before a dead letter is only logged. */
export const DEAD_LETTER_MAX_RETRIES = 10;

/** Events written for one failed attempt of a message, at most (one per failed run). */
const MAX_FAILURE_EVENTS = 50;

/**
 * Seconds before a failed message is delivered again: a dependency that just failed (a downstream API, D1) gets a
 * moment, and the delay grows with the attempts, while the last attempt stays within a minute or so of the first.
 */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(5 * 2 ** (attempts - 1), 60);
}

type FailedRun = { workflow: string; outcome: Extract<WorkflowOutcome, { ok: false }> };
const isFailedRun = (result: ActionResult): result is FailedRun => !result.outcome.ok;

export async function handleTriggerBatch(batch: MessageBatch<TriggerMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  for (const message of batch.messages) {
    const lastAttempt = message.attempts > TRIGGER_MAX_RETRIES;
    const retry = () => message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    let failed: FailedRun[];
    try {
      const results = await runActions(env, ctx, message.body);
      logRuns(message, results);
      failed = results.filter(isFailedRun);
    } catch (error) {
      if (error instanceof FiredTriggersNotEnqueued) {
        // The actions ran; their follow-up work did not get through. An event of every attempt, as for a failed run.
        logRuns(message, error.results);
        const recorded = await recordFailures(env.DB, message, lastAttempt, [{ workflows: error.results.map(runRecord), error: boundedText(error.message) }]);
        const kept = lastAttempt && (await keptAsDeadLetter(env.DB, message, [], error.message));
        if (recorded && kept) message.ack();
        else retry();
        continue;
      }
      // No action ran (D1 or the version was unavailable): nothing to record but the dead letter of the last attempt.
      console.error("trigger message failed", message.id, error);
      if (lastAttempt && (await keptAsDeadLetter(env.DB, message, [], "the platform could not run the action workflows (a dependency was unavailable)"))) message.ack();
      else retry();
      continue;
    }
    if (failed.length === 0) {
      message.ack();
      continue;
    }
    // Acked only once everything is on record; a failed write leaves the message to the queue's retries. On the last
    // attempt the dead letter is written even when the events were not: it alone knows which workflows failed and
    // why, and the dead-letter queue's consumer, which then gets the message, keeps the first dead letter written.
    const recorded = await recordFailures(env.DB, message, lastAttempt, failed.map((run) => ({ workflows: [runRecord(run)] })));
    const kept = lastAttempt && (await keptAsDeadLetter(env.DB, message, failed.map((run) => run.workflow), lastErrorOf(failed)));
    if (recorded && kept) message.ack();
    else retry();
  }
}

/** A run as an `action_failed` event shows it, with the customer's error text (bounded). */
function runRecord({ workflow, outcome }: ActionResult): Record<string, unknown> {
  return outcome.ok
    ? { slug: workflow, type: "action", ok: true, durationMs: Math.round(outcome.durationMs) }
    : { slug: workflow, type: "action", ok: false, kind: outcome.kind, error: boundedText(outcome.error), durationMs: Math.round(outcome.durationMs) };
}

function logRuns(message: Message<TriggerMessage>, results: ActionResult[]): void {
  for (const result of results) {
    const { outcome } = result;
    console.log(
      JSON.stringify({
        event: "action_workflow",
        environmentId: message.body.environmentId,
        trigger: message.body.trigger,
        workflow: result.workflow,
        ok: outcome.ok,
        attempts: message.attempts,
        durationMs: Math.round(outcome.durationMs),
        ...(outcome.ok ? {} : { kind: outcome.kind, error: outcome.error }),
      }),
    );
  }
}

/**
 * One `action_failed` event per failure of the attempt — a failed run (events are read with admin credentials, so it
 * carries the customer's error text), or the fired triggers that did not reach the queue — with what becomes of the
 * message: `retrying`, or `dead_lettered` on the last attempt. Written in one batch (one D1 call, all or nothing).
 * False when D1 did not take them.
 */
async function recordFailures(db: D1Database, message: Message<TriggerMessage>, lastAttempt: boolean, failures: { workflows: Record<string, unknown>[]; error?: string }[]): Promise<boolean> {
  const { body } = message;
  const deadLetterId = lastAttempt ? await deadLetterIdOf(body.environmentId, message.id) : undefined;
  const events: EventInput[] = failures.slice(0, MAX_FAILURE_EVENTS).map((failure) => ({
    organizationId: body.organizationId,
    environmentId: body.environmentId,
    kind: "action_failed",
    identifier: body.identifier,
    outcome: "failed",
    record: {
      ...failure,
      trigger: body.trigger,
      attempt: message.attempts,
      maxAttempts: TRIGGER_MAX_RETRIES + 1,
      state: lastAttempt ? "dead_lettered" : "retrying",
      ...(deadLetterId ? { deadLetterId } : {}),
      ...(failures.length > 1 ? { failedRuns: failures.length } : {}),
      queueMessageId: message.id,
      versionId: body.versionId,
      firedAt: body.firedAt,
      ...(body.retryOf ? { retryOf: body.retryOf } : {}),
    },
  }));
  try {
    await insertEvents(db, events);
    return true;
  } catch (error) {
    console.error(JSON.stringify({ event: "action_failure_not_recorded", queueMessageId: message.id, environmentId: body.environmentId, trigger: body.trigger, attempts: message.attempts, error: String(error) }));
    return false;
  }
}

function lastErrorOf(failed: FailedRun[]): string {
  const [first] = failed;
  if (!first) return "";
  const more = failed.length > 1 ? ` (and ${failed.length - 1} more failed workflow${failed.length > 2 ? "s" : ""})` : "";
  return `${first.workflow} (${first.outcome.kind}): ${boundedText(first.outcome.error)}${more}`;
}

/** Stores the message as a dead letter (bounded, see storableMessage); false when D1 did not take it. */
async function keptAsDeadLetter(db: D1Database, message: Message<TriggerMessage>, workflows: string[], lastError: string, attempts = message.attempts): Promise<boolean> {
  const { body } = message;
  const { stored, truncated } = storableMessage(body);
  try {
    await storeDeadLetter(db, {
      organizationId: body.organizationId,
      environmentId: body.environmentId,
      queueMessageId: message.id,
      trigger: body.trigger,
      identifier: body.identifier ?? null,
      message: stored as unknown as Record<string, unknown>,
      messageTruncated: truncated,
      workflows,
      lastError,
      attempts,
    });
    return true;
  } catch (error) {
    console.error(JSON.stringify({ event: "dead_letter_not_stored", queueMessageId: message.id, environmentId: body.environmentId, trigger: body.trigger, attempts: message.attempts, error: String(error) }));
    return false;
  }
}

/**
 * The message as a dead letter keeps it: whole when it fits a queue message (which any message the queue delivered
 * does), else without the counter limits (as enqueueTriggers drops them), else without its payload — kept for the
 * record, but then it can no longer be retried.
 */
function storableMessage(body: TriggerMessage): { stored: TriggerMessage; truncated: boolean } {
  if (jsonByteLength(body) <= MAX_MESSAGE_BYTES) return { stored: body, truncated: false };
  const { counters: _dropped, ...withoutCounters } = body;
  if (jsonByteLength(withoutCounters) <= MAX_MESSAGE_BYTES) return { stored: withoutCounters, truncated: false };
  return { stored: { ...withoutCounters, payload: null }, truncated: true };
}

/**
 * The dead-letter queue's consumer: a message there is one the trigger consumer could not keep on its last attempt
 * (see above). It is stored with what it says — which workflows failed and why were not recorded — and never run.
 */
export async function handleDeadLetterBatch(batch: MessageBatch<TriggerMessage>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const lastError = "the trigger queue dead-lettered this message after its last attempt, without a record of why (see the action_failed events and the logs)";
    if (await keptAsDeadLetter(env.DB, message, [], lastError, TRIGGER_MAX_RETRIES + 1)) {
      message.ack();
      continue;
    }
    // Past the dead-letter queue's own retries the message is deleted: the log line is all that is left of it.
    if (message.attempts > DEAD_LETTER_MAX_RETRIES) console.error(JSON.stringify({ event: "dead_letter_lost", queueMessageId: message.id, message: message.body }));
    message.retry();
  }
}

/**
 * Sends a dead letter's message to the trigger queue again and marks it retried. The message runs against the
 * environment's deployed version: a fixed workflow, once deployed, is what runs. Retrying a dead letter twice is a
 * 409 — its message is on its way already, and if it fails again it comes back as a new dead letter (`retryOf`).
 */
export async function retryDeadLetter(env: Env, environment: Environment, id: string): Promise<DeadLetter> {
  const scope = { organizationId: environment.organizationId, environmentId: environment.id };
  const existing = await getDeadLetter(env.DB, scope, id);
  if (!existing) throw new ApiError("not_found", `Dead letter ${id} not found`);
  if (existing.messageTruncated) throw new ApiError("conflict", `Dead letter ${id} cannot be retried: its payload was too large to keep`);
  // The conditional update decides between concurrent retries: one sends, the others get the 409.
  const marked = existing.state === "dead" ? await markDeadLetterRetried(env.DB, scope, id) : null;
  if (!marked) throw new ApiError("conflict", `Dead letter ${id} was already retried`);
  const original = marked.message as unknown as TriggerMessage;
  const body: TriggerMessage = { ...original, versionId: environment.deployedVersionId ?? original.versionId, retryOf: id };
  try {
    await env.TRIGGERS.send(body, { contentType: "json" });
  } catch (error) {
    await unmarkDeadLetterRetried(env.DB, scope, id);
    console.error(JSON.stringify({ event: "dead_letter_not_retried", deadLetterId: id, environmentId: environment.id, error: String(error) }));
    throw new ApiError("upstream_error", "The trigger queue did not take the message: the dead letter is unchanged, retry later");
  }
  return marked;
}
