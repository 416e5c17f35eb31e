/**
 * The isolate's side of the live tail (durable-objects/live-tail): which flushed records go to a tail, and their
 * summaries. Runs inside the flush of decision records, after the responses; an environment nobody tails costs one
 * read of the isolate's environment cache and nothing else.
 */
import { env as workerEnv } from "cloudflare:workers";
import { publishToLiveTail, type LiveTailNamespace } from "../../durable-objects/live-tail/client";
import type { DecisionSummary } from "../../durable-objects/live-tail/LiveTailObject";
import { isTailedNow } from "./tenantCache";

const TAILED_KINDS: ReadonlySet<string> = new Set(["access_check", "surface_decision"]);

/** A flushed record, as services/events.ts buffers it. */
export interface TailedRecord {
  id: string;
  organizationId: string;
  environmentId: string;
  kind: string;
  createdAt: string;
  identifier?: string | null;
  surfaceSlug?: string | null;
  outcome?: string | null;
  record: Record<string, unknown>;
}

/** Denials a summary lists; the rest are counted (`moreDenials`): a configuration with many properties cannot make a tail's messages large. */
export const MAX_SUMMARY_DENIALS = 20;

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);

/** What a tail shows of a decision record. */
export function decisionSummary(event: TailedRecord): DecisionSummary {
  const { record } = event;
  const denials = (Array.isArray(record.denials) ? record.denials : []).filter(isObject);
  const timings = isObject(record.timings) ? Object.values(record.timings).filter((ms): ms is number => typeof ms === "number" && Number.isFinite(ms)) : [];
  return {
    id: event.id,
    kind: event.kind,
    createdAt: event.createdAt,
    environmentId: event.environmentId,
    identifier: event.identifier ?? null,
    surfaceSlug: event.surfaceSlug ?? null,
    outcome: event.outcome ?? null,
    plans: Array.isArray(record.plans) ? record.plans.map(String) : [],
    denials: denials.slice(0, MAX_SUMMARY_DENIALS).map(({ featureSlug, property, reason }) => ({
      featureSlug: String(featureSlug),
      property: String(property),
      reason: String(reason),
    })),
    ...(denials.length > MAX_SUMMARY_DENIALS ? { moreDenials: denials.length - MAX_SUMMARY_DENIALS } : {}),
    durationMs: timings.length > 0 ? Math.round(timings.reduce((sum, ms) => sum + ms, 0) * 1000) / 1000 : null,
    versionId: typeof record.versionId === "string" ? record.versionId : null,
  };
}

/**
 * Publishes the decisions of `records` whose environments are tailed: one call per tailed environment. Never throws
 * (a tail that cannot be reached loses these summaries; the records are written all the same).
 */
export async function publishToTails(records: readonly TailedRecord[]): Promise<void> {
  const now = Date.now();
  const tailed = new Map<string, boolean>();
  let byEnvironment: Map<string, { organizationId: string; summaries: DecisionSummary[] }> | undefined;
  for (const event of records) {
    if (!TAILED_KINDS.has(event.kind)) continue;
    let isTailed = tailed.get(event.environmentId);
    if (isTailed === undefined) tailed.set(event.environmentId, (isTailed = isTailedNow(event.environmentId, now)));
    if (!isTailed) continue;
    byEnvironment ??= new Map();
    const entry = byEnvironment.get(event.environmentId) ?? { organizationId: event.organizationId, summaries: [] };
    entry.summaries.push(decisionSummary(event));
    byEnvironment.set(event.environmentId, entry);
  }
  const namespace = (workerEnv as Partial<Env>).LIVE_TAIL as LiveTailNamespace | undefined;
  if (!byEnvironment || !namespace) return;
  await Promise.all(
    [...byEnvironment].map(([environmentId, { organizationId, summaries }]) =>
      publishToLiveTail(namespace, organizationId, environmentId, summaries).catch((error: unknown) =>
        console.warn(JSON.stringify({ event: "live_tail_not_published", environmentId, decisions: summaries.length, error: String(error) })),
      ),
    ),
  );
}
