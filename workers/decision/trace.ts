/**
 * The decision trace (`?trace=true`, secret keys only): why a decision came out as it did, assembled AFTER the
 * response is rendered from the context the stages built anyway (plans and their sources, meter readings, workflow
 * runs, offers, stage timings), plus property provenance re-derived by the engine (explainFeatureStates). A decision
 * without the flag builds nothing of this: the only work done up front is capturing what workflows were given and
 * returned, and only for a traced request (WorkflowRunCapture).
 */
import { z } from "@hono/zod-openapi";
import { explainFeatureStates, type Denial, type FilteredOffer, type PropertyState } from "../engine";
import { ApiError } from "../errors";
import type { WorkflowOutcome, WorkflowRunner } from "../workflows/runner";
import type { CallerScope, Configured, DecisionRequest, Featured, Identified, Metered, OfferImpression, Planned, WithCustomer, WithOffers } from "./context";
import type { Services, StageTimer } from "./services";
import type { AgentSignature } from "./agentIdentity";
import { crawlRecordOf, paymentRecorded, type Crawled } from "./stages/crawl";

/**
 * `?trace=true` on the decision routes, documented as an OpenAPI parameter but read with `c.req.query("trace")`
 * rather than through a query validator, which every untraced decision would pay for.
 */
export const TRACE_PARAMETER = {
  name: "trace",
  in: "query" as const,
  required: false,
  description: "`true` adds `trace` to the response: how the decision was made (secret keys only; a publishable key gets 403)",
  schema: { type: "string" as const, enum: ["true", "false"] },
};

/**
 * The trace shows the configuration's internals (plans, limits, workflow code's inputs and outputs): a publishable
 * key, made for browsers, may not ask for it.
 */
export function tracing(caller: Pick<CallerScope, "keyType">, trace: string | undefined): { trace?: true } {
  if (trace !== "true") return NOT_TRACED;
  if (caller.keyType !== "secret") throw new ApiError("forbidden", "The decision trace needs a secret key: a publishable key may not ask for it (trace=true)");
  return { trace: true };
}

const NOT_TRACED: { trace?: true } = Object.freeze({});

/** Each workflow input and output in a trace is cut to this many bytes of JSON (with a `truncated` marker). */
export const MAX_TRACED_JSON_BYTES = 16 * 1024;

export interface PropertyTrace {
  featureSlug: string;
  property: string;
  type: string;
  /** The rendered state, as in the response's `features`. */
  value: PropertyState;
  winner: { kind: "plan"; plan: string } | { kind: "fallback" } | { kind: "workflow"; workflow: string };
  conflictRule: string | null;
  candidates: { plan: string; value: unknown }[];
}

export interface WorkflowTrace {
  slug: string;
  type: string;
  ok: boolean;
  durationMs: number;
  kind?: string;
  error?: string;
  /** The arguments it was given (`env` as variable names only), or null when it never started. */
  input: unknown;
  /** What it returned, or null when it failed. */
  output: unknown;
}

export interface DecisionTrace {
  versionId: string;
  stages: { stage: string; ms: number }[];
  identity: { authType: string; identifier: string; isAuthenticated: boolean; jwtError: string | null; bot: object | null; category: string; agentSignature: AgentSignature };
  plans: { slug: string; source: string; detail?: unknown }[];
  unknownPlanSlugs: string[];
  properties: PropertyTrace[];
  meter: { status: "ok" | "fallback" | "none"; reason?: string; readings: MeterReadingTrace[]; credits: CreditReadingTrace[] };
  workflows: WorkflowTrace[];
  offers: { shown: OfferImpression[]; filtered: FilteredOffer[] } | null;
  /** A priced surface's pay-per-crawl negotiation (null when the decision was not priced). */
  crawl: ReturnType<typeof crawlRecordOf> | null;
  denials: Denial[];
}

interface MeterReadingTrace {
  counterId: string;
  featureSlug?: string;
  property?: string;
  used: number;
  limit: number;
  remaining: number;
  granted: boolean;
  periodStart: string;
  consumedInRequest: boolean;
  consumedUnitsInRequest: number;
  excessUnitsInRequest: number;
  overageUnits?: number;
  /** The request consumed it (a surface's `consumes`) rather than only reading it. */
  consume?: boolean;
  /** A counter a plan's `on` keeps counting over another plan's metered setting (read without a limit; `limit` is that setting's). */
  unlimited?: boolean;
  /** An `overage: overflow` setting: never refused, units past `limit` are overage. */
  overage?: "overflow";
}

interface CreditReadingTrace {
  creditId: string;
  featureSlug?: string;
  property?: string;
  balance: number;
  cost: number;
  charged: number;
  granted: boolean;
  reason?: string;
}

/** The trace's OpenAPI shape (its parts as documented in docs/public-api.md, "Decision trace"). */
export const DecisionTraceSchema = z
  .object({
    versionId: z.string(),
    stages: z.array(z.object({ stage: z.string(), ms: z.number() })),
    identity: z.record(z.string(), z.unknown()),
    plans: z.array(z.object({ slug: z.string(), source: z.string(), detail: z.unknown().optional() })),
    unknownPlanSlugs: z.array(z.string()),
    properties: z.array(z.record(z.string(), z.unknown())),
    meter: z.object({ status: z.enum(["ok", "fallback", "none"]), reason: z.string().optional(), readings: z.array(z.record(z.string(), z.unknown())), credits: z.array(z.record(z.string(), z.unknown())) }),
    workflows: z.array(z.record(z.string(), z.unknown())),
    offers: z.object({ shown: z.array(z.record(z.string(), z.unknown())), filtered: z.array(z.object({ offer: z.string(), reason: z.string() })) }).nullable(),
    crawl: z.record(z.string(), z.unknown()).nullable(),
    denials: z.array(z.object({ featureSlug: z.string(), property: z.string(), reason: z.string() })),
  })
  .openapi("DecisionTrace", { description: "Present only with ?trace=true (secret keys): how the decision was made." });

/**
 * What each workflow of a traced decision was given and returned, captured around the request's workflow runner (every
 * workflow runs at most once per decision, so its slug finds its run). `env` holds the environment's variables AND
 * decrypted secrets: only their names are kept.
 */
export class WorkflowRunCapture {
  private readonly runs = new Map<string, { input: unknown; output: unknown }>();

  /** The request's services with a runner that remembers each run. */
  watch(services: Services): Services {
    return { ...services, workflowRunner: (target) => this.capturing(services.workflowRunner(target)) };
  }

  of(slug: string): { input: unknown; output: unknown } | undefined {
    return this.runs.get(slug);
  }

  private capturing(runner: WorkflowRunner): WorkflowRunner {
    return {
      run: async (call) => {
        const outcome: WorkflowOutcome = await runner.run(call);
        this.runs.set(call.workflow.slug, { input: bounded(withEnvNamesOnly(call.args)), output: outcome.ok ? bounded(outcome.value) : null });
        return outcome;
      },
      runEndpoint: (call, request) => runner.runEndpoint(call, request),
    };
  }
}

function withEnvNamesOnly(args: Record<string, unknown>): Record<string, unknown> {
  const env = args.env;
  if (env === null || typeof env !== "object") return args;
  return { ...args, env: Object.keys(env).sort() };
}

/** A plain-JSON copy of `value`, or a `truncated` marker with the first MAX_TRACED_JSON_BYTES of its JSON. */
export function bounded(value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    return { truncated: true, error: `not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (text === undefined) return null;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= MAX_TRACED_JSON_BYTES) return JSON.parse(text) as unknown;
  const preview = new TextDecoder().decode(bytes.subarray(0, MAX_TRACED_JSON_BYTES)).replace(/\uFFFD$/, "");
  return { truncated: true, bytes: bytes.length, preview };
}

type TracedContext = DecisionRequest & Configured & Identified & WithCustomer & Planned & Metered & Featured & WithOffers & Partial<Crawled>;

/** The trace of a decision, from its final context and what the record kept (`denied`). */
export function traceOf(context: TracedContext, denied: Denial[], timing: StageTimer, runs: WorkflowRunCapture): DecisionTrace {
  const { prepared, identity, jwtError, bot, category, decision, overrides, workflows, offers, stripeProductIds, agentSignature } = context;
  return {
    versionId: prepared.versionId,
    stages: Object.entries(timing.toRecord()).map(([stage, ms]) => ({ stage, ms })),
    identity: { authType: identity.authType, identifier: identity.identifier, isAuthenticated: identity.isAuthenticated, jwtError, bot: bot ?? null, category, agentSignature },
    plans: decision.planSlugs.map((slug) => planTrace(slug, decision.planSources[slug] ?? [], category, stripeProductIds, prepared.planBySlug.get(slug)?.plan.stripeProductIds)),
    unknownPlanSlugs: decision.unknownPlanSlugs,
    properties: propertyTraces(context, overrides),
    meter: meterTrace(context),
    workflows: (workflows?.records ?? []).map((record) => {
      const run = runs.of(record.slug);
      return { ...record, input: run?.input ?? null, output: run?.output ?? null };
    }),
    offers: offers ? { shown: offers.impressions, filtered: offers.filtered } : null,
    crawl: context.crawl ? crawlRecordOf(context.crawl, paymentRecorded(context.meter)) : null,
    denials: denied,
  };
}

function planTrace(slug: string, sources: readonly string[], category: string, customerProducts: readonly string[], planProducts: readonly string[] | undefined) {
  const detail: Record<string, unknown> = {};
  if (sources.includes("auto")) detail.category = category;
  if (sources.includes("stripe")) detail.stripeProductIds = customerProducts.filter((product) => planProducts?.includes(product));
  return { slug, source: sources.join("+") || "unknown", ...(Object.keys(detail).length > 0 ? { detail } : {}) };
}

function propertyTraces(context: TracedContext, overrides: Featured["overrides"]): PropertyTrace[] {
  const { prepared, decision, features } = context;
  return explainFeatureStates(prepared, decision.planSlugs).map((explained) => {
    // The last workflow to set a property is the one whose value stands.
    const override = overrides.findLast((entry) => entry.featureSlug === explained.featureSlug && entry.property === explained.property);
    const winner: PropertyTrace["winner"] = override
      ? { kind: "workflow", workflow: override.workflow }
      : explained.winningPlan !== undefined
        ? { kind: "plan", plan: explained.winningPlan }
        : { kind: "fallback" };
    return {
      featureSlug: explained.featureSlug,
      property: explained.property,
      type: explained.type,
      value: features[explained.featureSlug]!.properties[explained.property]!,
      winner,
      conflictRule: explained.conflictRule,
      candidates: explained.candidates,
    };
  });
}

function meterTrace(context: TracedContext): DecisionTrace["meter"] {
  const { meter, decision, prepared } = context;
  const where = (id: string) => {
    // `{store}:{featureId}.{property}`: the feature id holds no dot, the property slug no colon.
    const [, path = ""] = id.split(/:(.*)/s);
    const dot = path.indexOf(".");
    const feature = prepared.featureById.get(path.slice(0, dot));
    return feature ? { featureSlug: feature.slug, property: path.slice(dot + 1) } : {};
  };
  const readings: MeterReadingTrace[] = [];
  for (const reading of meter.readings?.values() ?? []) {
    const request = decision.countedMeterRequests.find((candidate) => candidate.counterId === reading.counterId);
    const entry: MeterReadingTrace = {
      counterId: reading.counterId,
      ...where(reading.counterId),
      used: reading.consumedUnits,
      limit: request?.overriddenLimit ?? reading.totalUnits,
      remaining: request?.overriddenLimit !== undefined ? Math.max(0, request.overriddenLimit - reading.consumedUnits) : reading.remainingUnits,
      granted: reading.hasAccess,
      periodStart: reading.periodStart,
      consumedInRequest: reading.consumedInRequest,
      consumedUnitsInRequest: reading.consumedUnitsInRequest,
      excessUnitsInRequest: reading.excessUnitsInRequest,
    };
    if (request) entry.consume = request.consume;
    if (request?.overage === "overflow") {
      entry.overage = "overflow";
      entry.overageUnits = Math.max(0, reading.consumedUnits - entry.limit);
    } else if (request?.overriddenLimit !== undefined) entry.unlimited = true;
    readings.push(entry);
  }
  const credits: CreditReadingTrace[] = [];
  for (const reading of meter.creditReadings?.values() ?? []) {
    credits.push({
      creditId: reading.creditId,
      ...where(reading.creditId),
      balance: reading.balance,
      cost: reading.cost,
      charged: reading.deductedInRequest ? reading.cost : 0,
      granted: reading.hasAccess,
      ...(reading.reason ? { reason: reading.reason } : {}),
    });
  }
  const status = meter.failure ? "fallback" : meter.readings ? "ok" : "none";
  return { status, ...(meter.failure ? { reason: meter.failure } : {}), readings, credits };
}
