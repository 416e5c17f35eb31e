/**
 * The queue consumer of triggers: for each message, runs every action workflow of the message's version that
 * listens to its trigger, with `{trigger, payload, env, utils}` (utils scoped to the message's organization, the
 * environment's user data store and the identifier). A message is acked when all its actions succeeded and retried
 * otherwise; after `max_retries` (wrangler.toml) the queue moves it to the dead-letter queue. Delivery is
 * at-least-once and a retry re-runs every action of the message, so actions should be idempotent. `utils.counters`
 * enforce the limits the firing request resolved for the user (carried in the message).
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
import { createMeterClient, meterDeadlineOf } from "../../durable-objects/meter/client";
import { selectWorkflowRunner } from "./select";
import { enqueueTriggers, type TriggerMessage } from "./triggers";

/** Actions run off the request path, so their default deadline is longer than the 50 ms of synchronous workflows. */
export const DEFAULT_ACTION_DEADLINE_MS = 5_000;

export interface ActionResult {
  workflow: string;
  outcome: WorkflowOutcome;
}

/** Runs the action workflows of one trigger message. Throws when a dependency (D1, the version) is unavailable. */
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
  });
  const args: ActionArgs = { trigger: message.trigger, payload: (message.payload ?? null) as JsonValue, env: settings.values };
  const results = await Promise.all(
    actions.map(async (workflow) => ({
      workflow: workflow.slug,
      outcome: await runner.run({ workflow, args, utils, deadlineMs: workflow.deadlineMs ?? DEFAULT_ACTION_DEADLINE_MS }),
    })),
  );
  if (fired.length > 0 && results.every((result) => result.outcome.ok)) {
    await enqueueTriggers(env.TRIGGERS, prepared, environment as Environment, { identifier: message.identifier, isAuthenticated: message.authenticated !== false }, fired, (message.depth ?? 0) + 1, new Map(counterEntriesOf(message.counters)));
  }
  return results;
}

export async function handleTriggerBatch(batch: MessageBatch<TriggerMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  for (const message of batch.messages) {
    try {
      const results = await runActions(env, ctx, message.body);
      const failed = results.filter((result) => !result.outcome.ok);
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
      if (failed.length > 0) message.retry();
      else message.ack();
    } catch (error) {
      console.error("trigger message failed", message.id, error);
      message.retry();
    }
  }
}
