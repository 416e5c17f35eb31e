/**
 * How the Worker reaches an environment's live tail object: its naming (tenant-scoped), opening a tail, and the
 * flush's one publication per tailed environment.
 */
import type { DecisionSummary, LiveTailObject } from "./LiveTailObject";

export type LiveTailNamespace = DurableObjectNamespace<LiveTailObject>;

/** The object of one environment; the organization in its name keeps one organization from addressing another's. */
export function liveTailStub(namespace: LiveTailNamespace, organizationId: string, environmentId: string): DurableObjectStub<LiveTailObject> {
  return namespace.get(namespace.idFromName(`${organizationId}:${environmentId}`));
}

/** The stream of a new tail (server-sent events), or `full` when the environment has as many tails as it may. */
export async function openLiveTail(namespace: LiveTailNamespace, organizationId: string, environmentId: string): Promise<ReadableStream<Uint8Array> | "full"> {
  const response = await liveTailStub(namespace, organizationId, environmentId).fetch(`https://live-tail/?environmentId=${encodeURIComponent(environmentId)}`);
  if (response.status === 429) return "full";
  if (!response.ok || !response.body) throw new Error(`live tail answered ${response.status}`);
  return response.body;
}

/** Sends one flush's decisions of an environment to its tails. */
export async function publishToLiveTail(namespace: LiveTailNamespace, organizationId: string, environmentId: string, summaries: DecisionSummary[]): Promise<void> {
  await liveTailStub(namespace, organizationId, environmentId).publish(summaries);
}
