/**
 * The pure core of one decision, as two halves around the only I/O the engine needs:
 *   decide()  identity + bot → category → plans → base feature state → the meter and credit requests to send;
 *   (the caller sends all of them in ONE Durable Object call, with its own deadline)
 *   finish()  readings and credit readings (or the meter failure) → the wire FeatureStates.
 *
 * An unknown surface (a 404 for the caller) throws SurfaceNotFoundError, checked before any work is done: the
 * success path then returns one shape, and a caller that forgets the check cannot render a half-made decision.
 */
import { autoAssignCategoryFor } from "./bots";
import { creditRequestsFor } from "./credits";
import { collectMeterRequests, renderFeatures, type ConsumedProperty, type MeterFailure } from "./meters";
import type { PreparedSnapshot } from "./prepare";
import { provisionPlans, type PlanSource } from "./provisionPlans";
import { resolveFeatureStates, type BaseFeatureStates } from "./resolveFeatureStates";
import type { SnapshotSurface } from "./snapshot";
import type {
  AutoAssignCategory,
  BotTag,
  CreditReading,
  CreditRequest,
  FeatureStates,
  MeterReading,
  MeterRequest,
  PricedResource,
  ResolvedIdentity,
} from "./types";

export interface DecideInput {
  prepared: PreparedSnapshot;
  /** With `bot`, gives the auto-assign category (autoAssignCategoryFor) unless `category` is passed. */
  identity?: Pick<ResolvedIdentity, "isAuthenticated">;
  bot?: BotTag | undefined;
  /** The auto-assign category when the caller already computed it (e.g. to record it); wins over identity and bot. */
  category?: AutoAssignCategory;
  stripeProductIds?: readonly string[];
  workflowPlanSlugs?: readonly string[];
  /** The user data store (shared by environments of one type); prefixes every counter id. */
  storeId: string;
  /** Surface decisions: the surface whose `consumes` are consumed. Access checks leave it out and consume nothing. */
  surfaceSlug?: string | undefined;
  /** The request's action: prices credits properties (their `costs.actions`). */
  action?: string | undefined;
  /** The request's resource: its type and tags select the credits cost multipliers. */
  resource?: PricedResource | undefined;
}

export interface Decision {
  category: AutoAssignCategory;
  planSlugs: string[];
  planSources: Record<string, PlanSource[]>;
  unknownPlanSlugs: string[];
  base: BaseFeatureStates;
  /**
   * The metered properties' counters, under the limits the identity's plans give them; an `overage: overflow` setting's
   * without a limit (UNLIMITED_UNITS, never refused), its own limit as `overriddenLimit` for its readings.
   */
  meterRequests: MeterRequest[];
  /**
   * The counters of properties a plan turns `on` over another plan's metered setting: sent in the same meter call
   * (so their readings can be reported and their usage stays true across plan changes) with no limit of the
   * identity's (UNLIMITED_UNITS). Workflows' utils.counters and counter updates count them too, and never refuse;
   * their readings are reported under the overridden setting's limit (`overriddenLimit`, reportedReading over
   * countedMeterRequests, which also finds overflow settings).
   */
  unlimitedMeterRequests: MeterRequest[];
  /** Every counter the meter call reads and counts: `meterRequests`, then `unlimitedMeterRequests` (the same array when there is none). */
  countedMeterRequests: MeterRequest[];
  /** Every credits property, priced for the request's action and resource; consumed when the surface consumes it. */
  creditRequests: CreditRequest[];
  storeId: string;
  surface: SnapshotSurface | undefined;
}

/** The surface a surface decision names is not in the deployed version. */
export class SurfaceNotFoundError extends Error {
  readonly code = "surface_not_found";
  constructor(readonly surfaceSlug: string) {
    super(`Surface ${surfaceSlug} not found`);
    this.name = "SurfaceNotFoundError";
  }
}

const ANONYMOUS = { isAuthenticated: false } as const;
const NOTHING_CONSUMED: readonly ConsumedProperty[] = [];

/** @throws SurfaceNotFoundError when `surfaceSlug` names no surface of the version. */
export function decide(input: DecideInput): Decision {
  const { prepared, storeId, surfaceSlug } = input;
  let surface: SnapshotSurface | undefined;
  if (surfaceSlug !== undefined) {
    surface = prepared.surfaceBySlug.get(surfaceSlug);
    if (surface === undefined) throw new SurfaceNotFoundError(surfaceSlug);
  }
  const category = input.category ?? autoAssignCategoryFor(input.identity ?? ANONYMOUS, input.bot);
  const plans = provisionPlans(prepared, { category, stripeProductIds: input.stripeProductIds, workflowPlanSlugs: input.workflowPlanSlugs });
  const base = resolveFeatureStates(prepared, plans.planSlugs);
  const meterRequests: MeterRequest[] = [];
  const unlimitedMeterRequests: MeterRequest[] = [];
  collectMeterRequests(base, storeId, surface?.consumes ?? NOTHING_CONSUMED, meterRequests, unlimitedMeterRequests);
  return {
    category,
    planSlugs: plans.planSlugs,
    planSources: plans.sources,
    unknownPlanSlugs: plans.unknownPlanSlugs,
    base,
    meterRequests,
    unlimitedMeterRequests,
    countedMeterRequests: unlimitedMeterRequests.length === 0 ? meterRequests : meterRequests.concat(unlimitedMeterRequests),
    creditRequests: creditRequestsFor(base, storeId, surface?.consumes, input.action, input.resource),
    storeId,
    surface,
  };
}

/**
 * The wire features of a decision once the meter has answered (`readings`, `creditReadings` by credit id) or failed
 * (`meterFailure`).
 */
export function finish(
  decision: Decision,
  readings: ReadonlyMap<string, MeterReading> | undefined,
  meterFailure?: MeterFailure,
  creditReadings?: ReadonlyMap<string, CreditReading>,
): FeatureStates {
  return renderFeatures(decision.base, decision.storeId, readings, meterFailure, { readings: creditReadings, requests: decision.creditRequests });
}
