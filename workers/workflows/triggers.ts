/**
 * Triggers: system events (decision made, counters updated, plans changed, user added) and custom ones fired by
 * workflows. They go to a queue after the response and never delay it; the queue consumer runs the action
 * workflows listening for each trigger. Without a queue binding, or when no action workflow listens, nothing is sent.
 */
import type { PreparedSnapshot } from "../engine/prepare";
import type { Environment } from "../services/tenancy";

export interface TriggerMessage {
  organizationId: string;
  environmentId: string;
  versionId: string;
  identifier: string;
  trigger: string;
  payload: unknown;
  firedAt: string;
}

export async function enqueueTriggers(
  env: Env,
  prepared: PreparedSnapshot,
  environment: Environment,
  identifier: string,
  triggers: { name: string; payload: unknown }[],
): Promise<void> {
  const queue = (env as { TRIGGERS?: Queue<TriggerMessage> }).TRIGGERS;
  if (!queue) return;
  const listened = new Set(prepared.snapshot.workflows.filter((workflow) => workflow.type === "action").flatMap((workflow) => workflow.triggers ?? []));
  const wanted = triggers.filter((trigger) => listened.has(trigger.name));
  if (wanted.length === 0) return;
  const firedAt = new Date().toISOString();
  try {
    await queue.sendBatch(
      wanted.map((trigger) => ({
        body: {
          organizationId: environment.organizationId,
          environmentId: environment.id,
          versionId: prepared.snapshot.versionId,
          identifier,
          trigger: trigger.name,
          payload: trigger.payload,
          firedAt,
        },
      })),
    );
  } catch (error) {
    console.error("triggers not enqueued", error);
  }
}
