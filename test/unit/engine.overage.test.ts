/**
 * Overage of metered settings: `cap` (the default) refuses at the limit; `overflow` never refuses — its counter is sent
 * without a limit, its readings are reported under its own limit with `overageUnits` — and the units a request adds
 * past the limit are what usage-based billing reports (overageReportsOf). Conflict resolution ranks overflow above a
 * capped setting of the same limit, below a capped one of a higher limit, and below `on`.
 */
import { describe, expect, it } from "vitest";
import { ConfigDocument } from "../../schema/config";
import { decide, denials, enabledOrderKey, finish, resolveFeatureStates, UNLIMITED_UNITS, type MeterReading } from "../../workers/engine";
import { overageReportsOf, reportedReading } from "../../workers/engine/meters";
import { featureIdFor, preparedOf, snapshotOf } from "./engineFixtures";

const API = featureIdFor("api");
const counterId = `default:${API}.enabled`;

const capped = (limit: number) => ({ metered: { limit, period: "month" } });
const overflow = (limit: number, stripeMeterEvent?: string) => ({
  metered: { limit, period: "month", overage: "overflow", ...(stripeMeterEvent ? { stripeMeterEvent } : {}) },
});

function docWith(plans: Record<string, unknown>) {
  return {
    features: { api: { properties: { enabled: { type: "enabled", onMeterFailure: "closed" } } } },
    plans: Object.fromEntries(Object.entries(plans).map(([slug, value]) => [slug, { features: { api: { enabled: value } } }])),
    surfaces: { call: { consumes: ["api.enabled"] } },
  } as never;
}

/** What the meter object answers for a counter sent without a limit, after `consumed` units (`inRequest` of them now). */
function unlimitedReading(consumed: number, inRequest = 1): MeterReading {
  return {
    counterId,
    hasAccess: true,
    consumedUnits: consumed,
    remainingUnits: UNLIMITED_UNITS - consumed,
    totalUnits: UNLIMITED_UNITS,
    periodStart: "2026-11-01T00:00:00.000Z",
    uniqueResources: false,
    resourceIdUsed: false,
    consumedInRequest: inRequest > 0,
    consumedUnitsInRequest: inRequest,
    excessUnitsInRequest: 0,
  };
}

describe("config", () => {
  it("overage defaults to cap; stripeMeterEvent only with overflow and as a Stripe event name", () => {
    const parse = (value: unknown) => ConfigDocument.safeParse(docWith({ p: value }));
    expect(parse(capped(3)).success).toBe(true);
    expect(parse(overflow(3)).success).toBe(true);
    expect(parse(overflow(3, "api_calls-2")).success).toBe(true);
    expect(parse({ metered: { limit: 3, overage: "cap", stripeMeterEvent: "api_calls" } }).success).toBe(false);
    expect(parse({ metered: { limit: 3, stripeMeterEvent: "api_calls" } }).success).toBe(false);
    expect(parse(overflow(3, "api calls")).success).toBe(false);
    expect(parse(overflow(3, "x".repeat(101))).success).toBe(false);
    expect(parse({ metered: { limit: 3, overage: "bill" } }).success).toBe(false);
  });

  it("compiles a capped setting as before (no overage field) and an overflow one with its event", async () => {
    const snapshot = await snapshotOf(docWith({ a: capped(3), b: { metered: { limit: 3, overage: "cap" } }, c: overflow(5, "api_calls") }));
    const values = Object.fromEntries(snapshot.plans.map((plan) => [plan.slug, plan.values[API]!.enabled]));
    expect(values).toEqual({
      a: { kind: "metered", limit: 3, period: "month", uniqueResources: false },
      b: { kind: "metered", limit: 3, period: "month", uniqueResources: false },
      c: { kind: "metered", limit: 5, period: "month", uniqueResources: false, overage: "overflow", stripeMeterEvent: "api_calls" },
    });
  });
});

describe("conflict resolution", () => {
  const winner = async (plans: Record<string, unknown>) => {
    const prepared = await preparedOf(docWith(plans));
    return resolveFeatureStates(prepared, Object.keys(plans))[0]!.properties.enabled;
  };

  it("overflow beats a capped setting of the same or a lower limit, whatever the period; a higher capped limit beats it", async () => {
    expect(await winner({ a: capped(10), b: overflow(10) })).toMatchObject({ setting: { limit: 10, overage: "overflow" } });
    expect(await winner({ a: { metered: { limit: 10, period: "minute" } }, b: overflow(10) })).toMatchObject({ setting: { overage: "overflow" } });
    expect(await winner({ a: capped(3), b: overflow(10) })).toMatchObject({ setting: { limit: 10, overage: "overflow" } });
    expect(await winner({ a: capped(11), b: overflow(10) })).toEqual({ type: "enabled", isFallback: false, setting: { kind: "metered", limit: 11, period: "month", uniqueResources: false } });
    expect(enabledOrderKey({ kind: "metered", limit: 10, period: "month", uniqueResources: false, overage: "overflow" })).toBeGreaterThan(
      enabledOrderKey({ kind: "metered", limit: 10, period: "minute", uniqueResources: true }),
    );
  });

  it("`on` beats overflow: unlimited, counted under the overflow setting's limit, never reported as overage", async () => {
    const prepared = await preparedOf(docWith({ a: overflow(10, "api_calls"), b: "on" }));
    const decision = decide({ prepared, workflowPlanSlugs: ["a", "b"], category: "search-crawler", storeId: "default", surfaceSlug: "call" });
    expect(decision.meterRequests).toEqual([]);
    expect(decision.unlimitedMeterRequests).toEqual([{ counterId, limit: UNLIMITED_UNITS, period: "month", uniqueResources: false, consume: true, overriddenLimit: 10 }]);
    const features = finish(decision, new Map([[counterId, unlimitedReading(12)]]));
    expect(features.api!.properties.enabled).not.toHaveProperty("overageUnits");
    expect(overageReportsOf(decision.countedMeterRequests, [unlimitedReading(12)])).toEqual([]);
  });

  it("two overflow settings differing only by their meter event: the winner does not depend on the plans' order", async () => {
    const one = await winner({ a: overflow(10, "alpha"), b: overflow(10, "beta") });
    const other = await winner({ a: overflow(10, "beta"), b: overflow(10, "alpha") });
    expect(one).toEqual(other);
  });
});

describe("overflow decisions", async () => {
  const prepared = await preparedOf(docWith({ pro: overflow(3, "api_calls"), free: capped(3) }));
  const surface = (plans: string[]) => decide({ prepared, workflowPlanSlugs: plans, category: "search-crawler", storeId: "default", surfaceSlug: "call" });

  it("sends the counter without a limit, its own limit for the readings, consumed by the surface; access checks only read", () => {
    expect(surface(["pro"]).meterRequests).toEqual([
      {
        counterId,
        limit: UNLIMITED_UNITS,
        period: "month",
        uniqueResources: false,
        consume: true,
        overriddenLimit: 3,
        overage: "overflow",
        stripeMeterEvent: "api_calls",
        overflowLimit: 3,
      },
    ]);
    const check = decide({ prepared, workflowPlanSlugs: ["pro"], category: "search-crawler", storeId: "default" });
    expect(check.meterRequests[0]).toMatchObject({ consume: false, limit: UNLIMITED_UNITS });
    // A capped setting is sent under its limit, as always.
    expect(surface(["free"]).meterRequests).toEqual([{ counterId, limit: 3, period: "month", uniqueResources: false, consume: true }]);
  });

  it("renders access past the limit, under the limit, with overageUnits; never a denial", () => {
    const decision = surface(["pro"]);
    const features = finish(decision, new Map([[counterId, unlimitedReading(5)]]));
    expect(features.api!.properties.enabled).toEqual({
      type: "meterable",
      counterId,
      hasAccess: true,
      isFallback: false,
      consumedUnits: 5,
      remainingUnits: 0,
      totalUnits: 3,
      periodStart: "2026-11-01T00:00:00.000Z",
      uniqueResources: false,
      resourceIdUsed: false,
      consumedInRequest: true,
      consumedUnitsInRequest: 1,
      excessUnitsInRequest: 0,
      overageUnits: 2,
    });
    expect(finish(decision, new Map([[counterId, unlimitedReading(2)]])).api!.properties.enabled).toMatchObject({ remainingUnits: 1, overageUnits: 0, hasAccess: true });
    expect(denials(features)).toEqual([]);
    // Outside the response (triggers, counter updates) the reading is reported the same way.
    const { type: _type, isFallback: _isFallback, ...rendered } = features.api!.properties.enabled as unknown as Record<string, unknown>;
    expect(reportedReading(unlimitedReading(5), decision.countedMeterRequests)).toEqual(rendered);
    // What the meter billed is for the usage reports only, never reported with the reading.
    expect(reportedReading({ ...unlimitedReading(5), overageBilledUnits: 1 }, decision.countedMeterRequests)).toEqual(rendered);
  });

  it("a capped setting's rendering has no overageUnits", () => {
    const features = finish(surface(["free"]), new Map([[counterId, { ...unlimitedReading(3), totalUnits: 3, remainingUnits: 0 }]]));
    expect(features.api!.properties.enabled).not.toHaveProperty("overageUnits");
  });

  it("the meter failing: onMeterFailure decides, as for any metered setting", () => {
    const decision = surface(["pro"]);
    const features = finish(decision, undefined, "unreachable");
    expect(features.api!.properties.enabled).toEqual({ type: "meterable", counterId, hasAccess: false, isFallback: true });
    expect(denials(features, { metered: new Set(decision.meterRequests.map((request) => request.counterId)) })).toEqual([
      { featureSlug: "api", property: "enabled", reason: "meter_unavailable" },
    ]);
  });

  it("overageReportsOf: exactly the units the meter billed on the reading, only for an overflow counter with a meter event", () => {
    const requests = surface(["pro"]).countedMeterRequests;
    const billed = (consumed: number, units: number, inRequest = 1): MeterReading => ({ ...unlimitedReading(consumed, inRequest), overageBilledUnits: units });
    expect(overageReportsOf(requests, [billed(3, 0)])).toEqual([]);
    expect(overageReportsOf(requests, [billed(4, 1)])).toEqual([{ counterId, eventName: "api_calls", value: 1 }]);
    // A counter update of 5 from 1 to 6 crosses the limit: the meter billed 3 of its units.
    expect(overageReportsOf(requests, [billed(6, 3, 5)])).toEqual([{ counterId, eventName: "api_calls", value: 3 }]);
    // Past the limit, but units given back and consumed again were billed already: the meter billed nothing new.
    expect(overageReportsOf(requests, [billed(4, 0)])).toEqual([]);
    // The before/after difference is not what is billed: a reading without the meter's billing bills nothing.
    expect(overageReportsOf(requests, [unlimitedReading(4)])).toEqual([]);
    expect(overageReportsOf(requests, [{ ...billed(9, 1), counterId: "default:feat_other.enabled" }])).toEqual([]);
    // Without a meter event nothing is billed, and a capped setting has no overage.
    expect(overageReportsOf(decide({ prepared: prepared, workflowPlanSlugs: ["free"], category: "search-crawler", storeId: "default", surfaceSlug: "call" }).countedMeterRequests, [billed(9, 1)])).toEqual([]);
  });

  it("without a meter event: granted and counted, nothing to report", async () => {
    const silent = await preparedOf(docWith({ pro: overflow(1) }));
    const decision = decide({ prepared: silent, workflowPlanSlugs: ["pro"], category: "search-crawler", storeId: "default", surfaceSlug: "call" });
    expect(finish(decision, new Map([[counterId, unlimitedReading(4)]])).api!.properties.enabled).toMatchObject({ hasAccess: true, overageUnits: 3 });
    expect(decision.countedMeterRequests[0]).toMatchObject({ overflowLimit: 1 });
    expect(overageReportsOf(decision.countedMeterRequests, [{ ...unlimitedReading(4), overageBilledUnits: 1 }])).toEqual([]);
  });
});
