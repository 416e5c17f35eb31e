/**
 * explainFeatureStates (the trace's property provenance) agrees with resolveFeatureStates: the plan it names as the
 * winner, held alone, gives the same value; no winner means no candidate and the fallback; the candidates are
 * exactly the held plans that set the property. Checked on the fixtures and property-based on random configurations.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ConfigDocumentInput } from "../../schema/config";
import { bounded, MAX_TRACED_JSON_BYTES } from "../../workers/decision/trace";
import { explainFeatureStates, resolveFeatureStates, type BasePropertyState, type PreparedSnapshot } from "../../workers/engine";
import { NEWS_SITE, preparedOf } from "./engineFixtures";

/** A resolved state without what only stacking adds (an `on` remembering another plan's metered setting). */
function valueOf(state: BasePropertyState): unknown {
  if (state.type === "enabled") return { type: state.type, setting: state.setting, isFallback: state.isFallback };
  return state;
}

function expectAgreement(prepared: PreparedSnapshot, planSlugs: string[]): void {
  const resolved = resolveFeatureStates(prepared, planSlugs);
  const explained = explainFeatureStates(prepared, planSlugs);
  const held = new Set(planSlugs.filter((slug) => prepared.planBySlug.has(slug)));
  expect(explained).toHaveLength(prepared.features.reduce((count, feature) => count + feature.properties.length, 0));
  for (const entry of explained) {
    const feature = prepared.featureBySlug.get(entry.featureSlug)!;
    const state = resolved[feature.index]!.properties[entry.property]!;
    expect(entry.resolved).toEqual(state);
    expect(entry.conflictRule).toBe(feature.propertyBySlug.get(entry.property)!.definition.conflict);
    const setters = [...held].filter((slug) => prepared.planBySlug.get(slug)!.plan.values[feature.id]?.[entry.property] !== undefined);
    expect(entry.candidates.map((candidate) => candidate.plan).sort()).toEqual(setters.sort());
    for (const candidate of entry.candidates) expect(candidate.value).toEqual(prepared.planBySlug.get(candidate.plan)!.plan.values[feature.id]![entry.property]);
    if (entry.winningPlan === undefined) {
      expect(entry.candidates).toEqual([]);
      expect(state.isFallback).toBe(true);
    } else {
      expect(entry.candidates.map((candidate) => candidate.plan)).toContain(entry.winningPlan);
      // The winner alone gives the value all the held plans resolve to.
      const alone = resolveFeatureStates(prepared, [entry.winningPlan])[feature.index]!.properties[entry.property]!;
      expect(valueOf(alone)).toEqual(valueOf(state));
    }
  }
}

describe("explainFeatureStates", () => {
  it("names the winner, the rule and every candidate (news site)", async () => {
    const prepared = await preparedOf(NEWS_SITE);
    const explained = explainFeatureStates(prepared, ["anonymous", "premium"]);
    const quality = explained.find((entry) => entry.featureSlug === "articles" && entry.property === "quality")!;
    expect(quality).toMatchObject({ type: "string", conflictRule: "higher", winningPlan: "premium" });
    expect(quality.candidates).toEqual([
      { plan: "anonymous", value: "standard" },
      { plan: "premium", value: "ultra" },
    ]);
    const comments = explained.find((entry) => entry.featureSlug === "comments")!;
    expect(comments).toMatchObject({ winningPlan: undefined, candidates: [], resolved: { isFallback: true } });
    // `on` over a metered setting: the plan with `on` wins (resolution stacks a copy of its state).
    const enabled = explained.find((entry) => entry.featureSlug === "articles" && entry.property === "enabled")!;
    expect(enabled.winningPlan).toBe("premium");
    expect(enabled.resolved).toMatchObject({ setting: { kind: "on" }, overriddenMeter: { kind: "metered", limit: 3 } });
  });

  it("agrees with resolveFeatureStates for every set of the fixture's plans", async () => {
    const prepared = await preparedOf(NEWS_SITE);
    const slugs = prepared.plans.map((plan) => plan.slug);
    for (let mask = 0; mask < 1 << slugs.length; mask++) expectAgreement(prepared, [...slugs.filter((_, i) => mask & (1 << i)), "unknown-plan"]);
  });

  it("agrees with resolveFeatureStates on random configurations (property-based)", async () => {
    const PERIODS = ["day", "month", "lifetime"] as const;
    const value = (type: string, r: number): unknown => {
      switch (type) {
        case "enabled":
          return r % 4 === 0 ? "off" : r % 4 === 1 ? "on" : { metered: { limit: (r >> 2) % 3, period: PERIODS[(r >> 4) % 3], uniqueResources: ((r >> 6) & 1) === 0 } };
        case "boolean":
          return r % 2 === 0;
        case "number":
          return (r % 7) - 3;
        case "string":
          return ["", "a", "b"][r % 3];
        default:
          return { credits: { amount: (r >> 2) % 3, period: PERIODS[(r >> 4) % 3] } };
      }
    };
    const TYPES = ["enabled", "boolean", "number", "string", "credits"] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ type: fc.constantFrom(...TYPES), conflict: fc.constantFrom("higher", "lower") }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.array(fc.option(fc.nat(255), { nil: undefined }), { minLength: 5, maxLength: 5 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        async (properties, plans, heldMask) => {
          // One feature per property (its `enabled` keeps the default), so every type and rule meets every other.
          const features: Record<string, unknown> = {};
          properties.forEach((property, i) => {
            features[`f${i}`] = { properties: property.type === "enabled" ? { enabled: { type: "enabled", conflict: property.conflict } } : { p: { type: property.type, conflict: property.conflict } } };
          });
          const planDocs: Record<string, unknown> = {};
          plans.forEach((seeds, p) => {
            const values: Record<string, Record<string, unknown>> = {};
            properties.forEach((property, i) => {
              const seed = seeds[i];
              if (seed !== undefined) values[`f${i}`] = { [property.type === "enabled" ? "enabled" : "p"]: value(property.type, seed) };
            });
            planDocs[`plan${p}`] = { features: values };
          });
          const prepared = await preparedOf({ features, plans: planDocs } as ConfigDocumentInput);
          expectAgreement(prepared, plans.map((_, p) => `plan${p}`).filter((_, p) => heldMask[p]));
        },
      ),
      { numRuns: 100, seed: 0x5eed_0e4a },
    );
  });
});

describe("bounded (trace inputs and outputs)", () => {
  it("keeps small JSON as a plain copy and cuts large JSON with a truncated marker", () => {
    expect(bounded({ a: [1, "x"] })).toEqual({ a: [1, "x"] });
    expect(bounded(undefined)).toBeNull();
    const large = { text: "é".repeat(MAX_TRACED_JSON_BYTES) };
    const cut = bounded(large) as { truncated: boolean; bytes: number; preview: string };
    expect(cut.truncated).toBe(true);
    expect(cut.bytes).toBe(new TextEncoder().encode(JSON.stringify(large)).length);
    expect(new TextEncoder().encode(cut.preview).length).toBeLessThanOrEqual(MAX_TRACED_JSON_BYTES);
    expect(cut.preview.startsWith('{"text":"éé')).toBe(true);
  });
});
