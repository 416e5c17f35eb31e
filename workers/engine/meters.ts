/**
 * Stage 4: the meterable side of feature state — which counters a decision reads or consumes (all of them in one
 * Durable Object call, made by the caller), and the wire shape of every property once the meter has answered or
 * failed to (docs/public-api.md, "POST /api/v1/access-checks").
 */
import { counterIdFor, type PreparedSnapshot } from "./prepare";
import type { BaseFeatureStates } from "./resolveFeatureStates";
import type {
  CreditReading,
  CreditRequest,
  CreditsProperty,
  FeatureState,
  FeatureStates,
  MeterableProperty,
  MeterReading,
  MeterRequest,
  PropertyState,
} from "./types";

export { counterIdFor };

/** A metered property a surface consumes (SnapshotSurface["consumes"] fits). */
export interface ConsumedProperty {
  readonly featureId: string;
  readonly property: string;
}

/**
 * What rendering needs about credits: the meter's credit readings (by credit id) and the decision's credit requests
 * (for the price shown when the meter failed).
 */
export interface CreditsRendering {
  readings?: ReadonlyMap<string, CreditReading> | undefined;
  requests?: readonly CreditRequest[] | undefined;
}

/** Why the meter gave no readings: the only failure the caller reports today. */
export type MeterFailure = "unreachable";

const NOTHING_CONSUMED: readonly ConsumedProperty[] = [];

function isConsumed(consumes: readonly ConsumedProperty[], featureId: string, property: string): boolean {
  // A surface consumes a handful of properties at most: a scan beats building a set per decision.
  for (let i = 0; i < consumes.length; i++) {
    const entry = consumes[i]!;
    if (entry.featureId === featureId && entry.property === property) return true;
  }
  return false;
}

/**
 * The limit an unlimited counter (a plan's `on` over another plan's metered setting) is read and consumed under: never
 * reached, and the meter object's own ceiling (it clamps every limit to it).
 */
export const UNLIMITED_UNITS = Number.MAX_SAFE_INTEGER;

/**
 * One request per property whose resolved setting is metered; `consume` only for the ones the surface consumes
 * (access checks pass no `consumes` and so only read). `prepared` is accepted for symmetry with the other stages;
 * the base states already point at their definitions.
 */
export function meterRequestsFor(
  _prepared: PreparedSnapshot | undefined,
  base: BaseFeatureStates,
  storeId: string,
  consumes: readonly ConsumedProperty[] = NOTHING_CONSUMED,
): MeterRequest[] {
  const requests: MeterRequest[] = [];
  collectMeterRequests(base, storeId, consumes, requests, undefined);
  return requests;
}

/**
 * In one pass over the base states: the metered properties' requests into `limited`, and into `unlimited` (when
 * given) one request per property a plan turns `on` over another plan's metered setting — its counter, under that
 * setting's period and unique-resources rule, with no limit (UNLIMITED_UNITS), consumed when the surface consumes it.
 */
export function collectMeterRequests(
  base: BaseFeatureStates,
  storeId: string,
  consumes: readonly ConsumedProperty[],
  limited: MeterRequest[],
  unlimited: MeterRequest[] | undefined,
): void {
  for (let f = 0; f < base.length; f++) {
    const feature = base[f]!;
    const definitions = feature.definition.properties;
    for (let p = 0; p < definitions.length; p++) {
      const property = definitions[p]!;
      if (property.definition.type !== "enabled") continue;
      const state = feature.properties[property.slug];
      if (state === undefined || state.type !== "enabled") continue;
      const setting = state.setting;
      if (setting.kind === "metered" && setting.overage === "overflow") {
        // Never refused, so sent without a limit, like an unlimited counter; its own limit only splits the readings
        // into included units and overage.
        const request: MeterRequest = {
          counterId: feature.definition.counterIds(storeId)[p]!,
          limit: UNLIMITED_UNITS,
          period: setting.period,
          uniqueResources: setting.uniqueResources,
          consume: isConsumed(consumes, feature.featureId, property.slug),
          overriddenLimit: setting.limit,
          overage: "overflow",
          overflowLimit: setting.limit,
        };
        if (setting.stripeMeterEvent !== undefined) request.stripeMeterEvent = setting.stripeMeterEvent;
        limited.push(request);
      } else if (setting.kind === "metered") {
        limited.push({
          counterId: feature.definition.counterIds(storeId)[p]!,
          limit: setting.limit,
          period: setting.period,
          uniqueResources: setting.uniqueResources,
          consume: isConsumed(consumes, feature.featureId, property.slug),
        });
      } else if (unlimited !== undefined && setting.kind === "on" && state.overriddenMeter !== undefined) {
        unlimited.push({
          counterId: feature.definition.counterIds(storeId)[p]!,
          limit: UNLIMITED_UNITS,
          period: state.overriddenMeter.period,
          uniqueResources: state.overriddenMeter.uniqueResources,
          consume: isConsumed(consumes, feature.featureId, property.slug),
          overriddenLimit: state.overriddenMeter.limit,
        });
      }
    }
  }
}

function creditCostOf(requests: readonly CreditRequest[] | undefined, creditId: string): number | undefined {
  if (requests === undefined) return undefined;
  for (let i = 0; i < requests.length; i++) if (requests[i]!.creditId === creditId) return requests[i]!.cost;
  return undefined;
}

/**
 * The wire `FeatureStates`, keyed by feature slug, in snapshot order:
 * - `enabled` properties in meterable shape: on → hasAccess true; off → false; unassigned → the fallback's access
 *   with isFallback true; on over another plan's metered setting with a reading of its counter → hasAccess true and
 *   every reading field, `totalUnits`/`remainingUnits` under the overridden setting's limit (without a reading: plain
 *   on, the meter cannot take unlimited access away); metered with a reading → every reading field and the reading's
 *   hasAccess (an `overage: overflow` setting: hasAccess true, under its own limit, plus `overageUnits`); metered without
 *   a reading (the meter failed, or answered without this counter) → the property's `onMeterFailure`
 *   ('open' grants, 'closed' denies) with isFallback true.
 * - `credits` properties: `{type: "credits", creditId, hasAccess, isFallback: false, balance, cost, deductedInRequest,
 *   reason?}` from the credit reading; without one (the meter failed, or answered without it) → hasAccess per the
 *   property's `onMeterFailure`, isFallback true, and the price from the credit request when there is one.
 * - other properties: `{type, value, isFallback}`.
 * When `meterFailure` is set, `readings` and credit readings are ignored.
 */
export function renderFeatures(
  base: BaseFeatureStates,
  storeId: string,
  readings: ReadonlyMap<string, MeterReading> | undefined,
  meterFailure?: MeterFailure,
  credits?: CreditsRendering,
): FeatureStates {
  const usable = meterFailure === undefined ? readings : undefined;
  const creditReadings = meterFailure === undefined ? credits?.readings : undefined;
  const features: FeatureStates = {};
  for (let f = 0; f < base.length; f++) {
    const feature = base[f]!;
    const definitions = feature.definition.properties;
    const properties: Record<string, PropertyState> = {};
    let counterIds: readonly string[] | undefined;
    for (let p = 0; p < definitions.length; p++) {
      const property = definitions[p]!;
      const definition = property.definition;
      // A feature workflow may have replaced or dropped a state; a dropped one renders as its fallback.
      const state = feature.properties[property.slug] ?? property.fallbackState;
      if (state.type === "credits") {
        counterIds ??= feature.definition.counterIds(storeId);
        const creditId = counterIds[p]!;
        const reading = creditReadings?.get(creditId);
        let rendered: CreditsProperty;
        if (reading !== undefined) {
          rendered = {
            type: "credits",
            creditId,
            hasAccess: reading.hasAccess,
            isFallback: false,
            balance: reading.balance,
            cost: reading.cost,
            deductedInRequest: reading.deductedInRequest,
          };
          if (reading.reason !== undefined) rendered.reason = reading.reason;
        } else {
          const open = definition.type === "credits" && definition.onMeterFailure === "open";
          rendered = { type: "credits", creditId, hasAccess: open, isFallback: true };
          const cost = creditCostOf(credits?.requests, creditId);
          if (cost !== undefined) {
            rendered.cost = cost;
            rendered.deductedInRequest = false;
          }
        }
        properties[property.slug] = rendered;
        continue;
      }
      if (state.type !== "enabled") {
        properties[property.slug] = { type: state.type, value: state.value, isFallback: state.isFallback } as PropertyState;
        continue;
      }
      counterIds ??= feature.definition.counterIds(storeId);
      const counterId = counterIds[p]!;
      const setting = state.setting;
      if (setting.kind !== "metered") {
        const unlimitedReading = setting.kind === "on" && state.overriddenMeter !== undefined ? usable?.get(counterId) : undefined;
        properties[property.slug] =
          unlimitedReading === undefined
            ? { type: "meterable", counterId, hasAccess: setting.kind === "on", isFallback: state.isFallback }
            : unlimitedProperty(counterId, unlimitedReading, state.overriddenMeter!.limit);
        continue;
      }
      const reading = usable?.get(counterId);
      if (reading !== undefined) {
        properties[property.slug] = meteredProperty(counterId, setting.overage === "overflow" ? readingUnderOverflowLimit(reading, setting.limit) : reading);
        continue;
      }
      const open = definition.type === "enabled" && definition.onMeterFailure === "open";
      const degraded: MeterableProperty = { type: "meterable", counterId, hasAccess: open, isFallback: true };
      properties[property.slug] = degraded;
    }
    const rendered: FeatureState = { featureId: feature.featureId, featureSlug: feature.featureSlug, properties };
    features[feature.featureSlug] = rendered;
  }
  return features;
}

/**
 * An unlimited property with its counter's reading: the metered field set, access granted whatever the counter says
 * (even when the surface's all-or-nothing consumption was refused for another counter). `totalUnits` and
 * `remainingUnits` are those of the metered setting the `on` overrides — what the user would have without the higher
 * plan, as the commercial product reports them (a Premium user past the Registered limit reads `remainingUnits: 0`,
 * `hasAccess: true`).
 */
function unlimitedProperty(counterId: string, reading: MeterReading, overriddenLimit: number): MeterableProperty {
  return meteredProperty(counterId, readingUnderOverriddenLimit(reading, overriddenLimit));
}

/** A meterable property with every field of its counter's reading. */
function meteredProperty(counterId: string, reading: MeterReading): MeterableProperty {
  const property: MeterableProperty = {
    type: "meterable",
    counterId,
    hasAccess: reading.hasAccess,
    isFallback: false,
    consumedUnits: reading.consumedUnits,
    remainingUnits: reading.remainingUnits,
    totalUnits: reading.totalUnits,
    periodStart: reading.periodStart,
    uniqueResources: reading.uniqueResources,
    resourceIdUsed: reading.resourceIdUsed,
    consumedInRequest: reading.consumedInRequest,
    consumedUnitsInRequest: reading.consumedUnitsInRequest,
    excessUnitsInRequest: reading.excessUnitsInRequest,
  };
  if (reading.overageUnits !== undefined) property.overageUnits = reading.overageUnits;
  return property;
}

/**
 * An overflow setting's reading (its counter sent without a limit) as reported: always with access, under its own
 * limit, with the units consumed past that limit as `overageUnits`.
 */
export function readingUnderOverflowLimit(reading: MeterReading, limit: number): MeterReading {
  // What the meter billed is for usage reports (overageReportsOf), not part of the reading the API reports.
  const { overageBilledUnits: _billed, ...reported } = reading;
  return { ...readingUnderOverriddenLimit(reported, limit), overageUnits: Math.max(0, reading.consumedUnits - limit) };
}

/** An unlimited counter's reading as reported: with access, under the limit of the metered setting its `on` overrides. */
export function readingUnderOverriddenLimit(reading: MeterReading, overriddenLimit: number): MeterReading {
  return { ...reading, hasAccess: true, totalUnits: overriddenLimit, remainingUnits: Math.max(0, overriddenLimit - reading.consumedUnits) };
}

/**
 * A counter's reading as the API reports it outside the response (counters.updated triggers, counter updates), as the
 * response renders it: the reading of a counter sent without a limit — among `requests`, the decision's
 * countedMeterRequests — with access, under the limit of the metered setting an `on` overrides (unlimitedProperty) or
 * under an overflow setting's own limit with its `overageUnits`; any other reading as the meter gave it.
 */
export function reportedReading(reading: MeterReading, requests: readonly MeterRequest[]): MeterReading {
  // A decision meters a handful of counters at most: a scan beats a map.
  for (let i = 0; i < requests.length; i++) {
    const request = requests[i]!;
    if (request.counterId !== reading.counterId || request.overriddenLimit === undefined) continue;
    return request.overage === "overflow" ? readingUnderOverflowLimit(reading, request.overriddenLimit) : readingUnderOverriddenLimit(reading, request.overriddenLimit);
  }
  return reading;
}

/** Units of an overflow setting's overage one request consumed, to be reported to its Stripe meter event. */
export interface OverageReport {
  counterId: string;
  eventName: string;
  /** > 0: the overage units this request added beyond what was billed this period (never units given back). */
  value: number;
}

/**
 * The overage a request bills to the Stripe meter event of each overflow setting that has one: exactly what the meter
 * object billed on the reading (`overageBilledUnits`). The object keeps the overage billed per counter and period and
 * raises it in the same step as the consumption, so a unit counts once however many requests ran concurrently, and a
 * unit given back and consumed again is not billed a second time; a reading without it (a counter sent without
 * `overflowLimit`) bills nothing.
 */
export function overageReportsOf(requests: readonly MeterRequest[], readings: Iterable<MeterReading>): OverageReport[] {
  const reports: OverageReport[] = [];
  for (const reading of readings) {
    const value = reading.overageBilledUnits ?? 0;
    if (!(value > 0)) continue;
    const request = requests.find((candidate) => candidate.counterId === reading.counterId);
    if (request?.overage !== "overflow" || request.stripeMeterEvent === undefined) continue;
    reports.push({ counterId: reading.counterId, eventName: request.stripeMeterEvent, value });
  }
  return reports;
}

export interface DenialScope {
  /** Counter ids the decision sent to the meter (its meter requests). */
  metered?: ReadonlySet<string>;
  /** Only these properties (e.g. what a surface consumes). */
  only?: readonly { featureSlug: string; property: string }[];
  /** Properties a feature workflow set (its value replaced what plans and the meter gave). */
  overridden?: readonly { featureSlug: string; property: string }[];
}

export type DenialReason = "off" | "no_plan" | "workflow_override" | "limit_reached" | "insufficient_credits" | "meter_unavailable" | "payment_required";

export interface Denial {
  featureSlug: string;
  property: string;
  reason: DenialReason;
}

/**
 * The meterable properties without access, with why, for the decision record:
 * - limit_reached: the meter answered and said no;
 * - meter_unavailable: metered (its counter is among `metered`, the decision's meter requests), but rendered
 *   without a reading — the meter failed — and the property fails closed;
 * - workflow_override: a feature workflow set it off (whatever plans and the meter said);
 * - no_plan: no provisioned plan grants the property and its fallback is off;
 * - off: a plan sets it off (and none sets it higher).
 * - insufficient_credits: a credits property whose balance does not cover the price of the request;
 *   a credits property refused only because another counter of the same all-or-nothing request had no room reports
 *   limit_reached, and one without a reading (meter failed, failing closed) meter_unavailable.
 * With `only` (e.g. what a surface consumes), just those properties are considered. A function of its arguments only.
 */
export function denials(features: FeatureStates, { metered, only, overridden }: DenialScope = {}): Denial[] {
  const denied: Denial[] = [];
  for (const featureSlug in features) {
    const properties = features[featureSlug]!.properties;
    for (const property in properties) {
      const state = properties[property]!;
      if ((state.type !== "meterable" && state.type !== "credits") || state.hasAccess) continue;
      if (only !== undefined && !only.some((entry) => entry.featureSlug === featureSlug && entry.property === property)) continue;
      let reason: DenialReason;
      if (overridden !== undefined && overridden.some((entry) => entry.featureSlug === featureSlug && entry.property === property)) reason = "workflow_override";
      else if (state.type === "credits") reason = state.reason ?? (state.isFallback ? "meter_unavailable" : "limit_reached");
      // Readings of a counter the decision sent without a limit (a plan's `on` over a metered setting) are not a limit.
      else if (state.totalUnits !== undefined && (metered === undefined || metered.has(state.counterId))) reason = "limit_reached";
      else if (state.isFallback && metered?.has(state.counterId)) reason = "meter_unavailable";
      else reason = state.isFallback ? "no_plan" : "off";
      denied.push({ featureSlug, property, reason });
    }
  }
  return denied;
}
