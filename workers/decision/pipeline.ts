/**
 * One access check or surface decision, stage by stage (DESIGN.md, "The request pipeline"):
 * auth → deployed version → identity → bot tags → middleware workflows → plans (auto ∪ Stripe ∪ provisioning
 * workflows) → feature state (+ ONE meter call) → feature workflows → surface workflow → component workflows →
 * response; then, after the response, the decision record and triggers. Each stage is timed into `Server-Timing`.
 *
 * A retry under an Idempotency-Key that the meter object answers from its stored first result (`replayed`) enqueues
 * no triggers: the first request enqueued them (system ones, including `user.added` / `plans.changed`, and the custom
 * ones its workflows fired), so action workflows run once per logical request.
 */
import type { Context } from "hono";
import { evaluateWithDeadline, meterStub, userStoreKey } from "../../durable-objects/meter/client";
import type { EvaluateResult } from "../../durable-objects/meter/MeterObject";
import type { AppEnv } from "../context";
import type { PreparedSnapshot } from "../engine/prepare";
import { decide, denials, finish, SurfaceNotFoundError, type CreditReading, type Decision, type FeatureStates, type MeterReading } from "../engine";
import { ApiError } from "../errors";
import { meterIdempotencyKey, eventIdFor, recordEvent } from "../services/events";
import { counterSettingsOf } from "../workflows/scopedUtils";
import { enqueueTriggers, listensTo } from "../workflows/triggers";
import type { ComponentBehavior, SurfaceBehavior } from "../workflows/stages";
import type { AccessCheckRequest, SurfaceDecisionRequest } from "./request";
import { preparedSnapshotFor } from "./snapshots";
import { resolveSubject } from "./subject";

export interface DecisionOptions {
  surfaceSlug?: string;
  idempotencyKey?: string;
  /** SHA-256 of the request body, so a reused Idempotency-Key with another body is refused. */
  requestHash?: string;
}

export interface SurfaceFields {
  surfaceBehavior: SurfaceBehavior;
  componentsSkipped: boolean;
  componentBehaviors: Record<string, ComponentBehavior & { metadata?: { cssSelector?: string } }>;
}

export async function runDecision(c: Context<AppEnv>, body: AccessCheckRequest | SurfaceDecisionRequest, options: DecisionOptions) {
  const timings = c.get("timings");
  const auth = c.get("auth");
  if (auth.kind !== "key") throw new ApiError("forbidden", "Decisions are made with an environment's API key");
  const { environment, key } = auth;
  /** The decision's kind: names its events, its idempotency keys and its decision.made trigger. */
  const kind = options.surfaceSlug ? "surface_decision" : "access_check";
  timings.mark("auth");

  if (!environment.deployedVersionId) {
    throw new ApiError("not_found", "No configuration version is deployed to this environment: create a version and deploy it");
  }
  const prepared = await preparedSnapshotFor(c.env.DB, environment.deployedVersionId);
  const snapshot = prepared.snapshot;
  if (options.surfaceSlug !== undefined && !prepared.surfaceBySlug.has(options.surfaceSlug)) {
    throw new ApiError("surface_not_found", `Surface ${options.surfaceSlug} not found`);
  }
  timings.mark("config");

  const subject = await resolveSubject(c, prepared, environment, key.type, body);
  const { resolved, identity, bot, category, customer, stripeProductIds, workflowPlanSlugs, workflows, store } = subject;

  let decision: Decision;
  try {
    decision = decide({
      prepared,
      category,
      stripeProductIds,
      workflowPlanSlugs,
      storeId: store,
      surfaceSlug: options.surfaceSlug,
      action: body.action,
      resource: body.resource,
    });
  } catch (error) {
    if (error instanceof SurfaceNotFoundError) throw new ApiError("surface_not_found", `Surface ${error.surfaceSlug} not found`);
    throw error;
  }
  timings.mark("plans");

  let readings: Map<string, MeterReading> | undefined;
  let userAdded = false;
  let plansChanged: { from: string[] | null; to: string[] } | undefined;
  let creditReadings: Map<string, CreditReading> | undefined;
  let meterFailure: "unreachable" | undefined;
  let meterError: string | undefined;
  /** The meter answered a known Idempotency-Key with the first request's result: its triggers are already queued. */
  let replayed = false;
  /** The meter call this request gave up on (deadline); it may still answer, after the response. */
  let lateMeter: Promise<EvaluateResult> | undefined;
  // Metered counters and credit balances in the same call: consumption is all-or-nothing across both. The user's
  // plan set rides along only when an action workflow listens to plans.changed or user.added (it costs a write).
  const tracksUser = listensTo(prepared, "plans.changed") || listensTo(prepared, "user.added");
  // A keyed request whose triggers someone may act on goes to the meter even when it meters nothing: the object
  // records the key, so a retry is recognised (`replayed`) and does not enqueue the triggers a second time.
  const keyedWithActions = options.idempotencyKey !== undefined && hasActionWorkflows(prepared);
  if (decision.meterRequests.length > 0 || decision.creditRequests.length > 0 || tracksUser || keyedWithActions) {
    const stub = meterStub(c.env.METER, userStoreKey(environment.organizationId, store, identity.isAuthenticated), identity.identifier);
    const result = await evaluateWithDeadline(
      stub,
      {
        counters: decision.meterRequests,
        ...(decision.creditRequests.length > 0 ? { credits: decision.creditRequests } : {}),
        ...(tracksUser ? { plans: decision.planSlugs } : {}),
        resourceId: body.resource?.id,
        timeZone: snapshot.timeZone,
        idempotencyKey: meterIdempotencyKey(environment.id, kind, options.idempotencyKey),
        requestHash: options.requestHash,
      },
      meterDeadline(c.env),
    );
    if (!result.ok) {
      meterFailure = "unreachable";
      meterError = result.reason === "error" ? `error: ${result.error}` : "timeout";
      if (result.reason === "timeout") lateMeter = result.late;
    } else if ("conflict" in result.value) {
      throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
    } else {
      readings = new Map(result.value.readings.map((reading) => [reading.counterId, reading]));
      replayed = result.value.replayed === true;
      if (replayed) workflows?.markReplayed();
      userAdded = result.value.userAdded === true;
      plansChanged = result.value.plansChanged;
      if (result.value.credits) creditReadings = new Map(result.value.credits.map((reading) => [reading.creditId, reading]));
    }
    timings.mark("meter");
  }

  const features: FeatureStates = { ...finish(decision, readings, meterFailure, creditReadings) };
  if (workflows) {
    workflows.knowCounters(decision.meterRequests);
    if (workflows.has("feature")) {
      await workflows.features(features, decision.planSlugs);
      timings.mark("feature_workflows");
    }
  }

  let surfaceFields: SurfaceFields | undefined;
  if (decision.surface) {
    const surface = decision.surface;
    const surfaceBehavior = workflows ? await workflows.surface(surface.slug, features, decision.planSlugs) : {};
    // A surface workflow that replaces the response (an http body) makes the components moot.
    const componentsSkipped = typeof surfaceBehavior.http?.body === "string";
    const fromWorkflows = workflows && !componentsSkipped ? await workflows.components(surface.slug, features, decision.planSlugs, surfaceBehavior.properties ?? {}) : new Map();
    const componentBehaviors: SurfaceFields["componentBehaviors"] = {};
    if (!componentsSkipped) {
      for (const component of surface.components) {
        const behavior = fromWorkflows.get(component.slug) ?? {};
        componentBehaviors[component.slug] = component.cssSelector ? { ...behavior, metadata: { cssSelector: component.cssSelector } } : behavior;
      }
    }
    surfaceFields = { surfaceBehavior, componentsSkipped, componentBehaviors };
    if (workflows) timings.mark("surface_workflows");
  }

  const eventId = await eventIdFor(environment.id, { identifier: identity.identifier, authenticated: identity.isAuthenticated }, kind, options.idempotencyKey);
  const response = {
    status: "success" as const,
    eventId,
    identity: {
      authType: identity.authType,
      identifier: identity.identifier,
      isAuthenticated: identity.isAuthenticated,
      jwtClaims: identity.jwtClaims,
    },
    customer: {
      isCustomer: customer !== null,
      hasProducts: stripeProductIds.length > 0,
      customerIdentifiers: customer ? [customer.identifier] : [],
    },
    features,
    ...surfaceFields,
  };
  timings.mark("render");

  // A surface decision is granted when everything it consumes was granted; an access check when nothing is denied.
  const denied = denials(
    features,
    decision.surface?.consumes.map((entry) => ({ featureSlug: entry.featureSlug, property: entry.property })),
  );
  const workflowRecords = workflows?.records ?? [];
  recordEvent(c.executionCtx, c.env.DB, {
    id: eventId,
    organizationId: environment.organizationId,
    environmentId: environment.id,
    kind,
    identifier: identity.identifier,
    surfaceSlug: options.surfaceSlug ?? null,
    outcome: denied.length ? "denied" : "granted",
    record: {
      identity: response.identity,
      bot: bot ?? null,
      category,
      plans: decision.planSlugs,
      planSources: decision.planSources,
      unknownPlanSlugs: decision.unknownPlanSlugs,
      features,
      ...(body.action !== undefined ? { action: body.action } : {}),
      denials: denied,
      meter: meterFailure ? { status: "fallback", reason: meterError } : readings ? { status: "ok" } : { status: "none" },
      workflows: workflowRecords,
      jwtError: resolved.jwtError ?? null,
      timings: timings.toRecord(),
      versionId: snapshot.versionId,
    },
  });
  /** What a meter answer says happened: counters consumed, a new user, a plan change. */
  const meterTriggersOf = (answer: { readings: MeterReading[]; userAdded?: boolean; plansChanged?: { from: string[] | null; to: string[] } }) => {
    const consumed = answer.readings.filter((reading) => reading.consumedInRequest);
    return [
      ...(consumed.length > 0 ? [{ name: "counters.updated", payload: { eventId, identifier: identity.identifier, counters: consumed } }] : []),
      ...(answer.userAdded ? [{ name: "user.added", payload: { eventId, identifier: identity.identifier, authType: identity.authType } }] : []),
      // The first plan set of a user is not a change (user.added says the user is new).
      ...(answer.plansChanged?.from ? [{ name: "plans.changed", payload: { eventId, identifier: identity.identifier, from: answer.plansChanged.from, to: answer.plansChanged.to } }] : []),
    ];
  };
  // The user's limits ride along, so utils.counters in the action workflows enforce this decision's plans.
  const counters = counterSettingsOf(decision.meterRequests);
  const enqueue = (triggers: { name: string; payload: unknown }[]) => enqueueTriggers(c.env, prepared, environment, identity, triggers, 0, counters);
  // A replay's flags (userAdded, plansChanged) and consumed readings are the first request's, whose triggers were
  // enqueued then: enqueueing them again would run every action twice for one logical request.
  if (!replayed) {
    c.executionCtx.waitUntil(
      enqueue([
        { name: "decision.made", payload: { eventId, kind, identifier: identity.identifier, outcome: denied.length ? "denied" : "granted" } },
        ...(readings ? meterTriggersOf({ readings: [...readings.values()], userAdded, plansChanged }) : []),
        ...(workflows?.triggers ?? []),
      ]),
    );
  }
  // A meter that answers after the deadline still consumed, added the user or changed plans: its triggers follow
  // when it answers (the response already went out with fallbacks). A retry of this key is then a replay.
  if (lateMeter) {
    c.executionCtx.waitUntil(
      lateMeter.then(
        (answer) => ("conflict" in answer || answer.replayed ? undefined : enqueue(meterTriggersOf(answer))),
        () => undefined,
      ),
    );
  }
  return { response, decision, readings, creditReadings, features };
}

/** Whether any action workflow of the version listens to any trigger (system or custom). */
function hasActionWorkflows(prepared: PreparedSnapshot): boolean {
  return prepared.snapshot.workflows.some((workflow) => workflow.type === "action" && (workflow.triggers?.length ?? 0) > 0);
}

function meterDeadline(env: Env): number {
  const parsed = Number(env.METER_DEADLINE_MS);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : 200;
}
