/**
 * Why each property of a decision has its value: which held plan won it under the property's conflict rule, what every
 * held plan set, or that none did and the fallback applies. For the decision trace only, so it re-derives this after
 * the fact instead of the hot path (resolveFeatureStates) keeping anything: it resolves each property with the same
 * function the decision used and attributes the winning state to the plan whose entry it is.
 */
import type { ConflictRule } from "../../schema/config";
import type { PreparedSnapshot } from "./prepare";
import { plansOf, resolveFeatureState } from "./resolveFeatureStates";
import type { SnapshotPlanValue, SnapshotProperty } from "./snapshot";
import type { BasePropertyState } from "./types";

export interface PlanCandidate {
  plan: string;
  /** The plan's value for the property as the configuration states it (an `enabled` setting, a credits allowance, a scalar). */
  value: SnapshotPlanValue;
}

export interface PropertyExplanation {
  featureSlug: string;
  property: string;
  type: SnapshotProperty["type"];
  conflictRule: ConflictRule;
  /** The held plan whose value won, or undefined when no held plan sets the property (its fallback applies). */
  winningPlan: string | undefined;
  /** Every held plan that sets the property, in the order the plans are held. */
  candidates: PlanCandidate[];
  /** The resolved state, before the meter and workflows (what resolveFeatureStates gives for these plans). */
  resolved: BasePropertyState;
}

/** Every property of every feature of the snapshot, in snapshot order, explained for the plans held (unknown slugs are ignored). */
export function explainFeatureStates(prepared: PreparedSnapshot, planSlugs: readonly string[]): PropertyExplanation[] {
  const plans = plansOf(prepared, planSlugs);
  const explanations: PropertyExplanation[] = [];
  for (const feature of prepared.features) {
    const resolved = resolveFeatureState(feature, plans);
    for (const property of feature.properties) {
      const state = resolved.properties[property.slug]!;
      const candidates: PlanCandidate[] = [];
      let winningPlan: string | undefined;
      for (const plan of plans) {
        const entry = plan.entries[feature.index]?.[property.index];
        if (entry === undefined) continue;
        candidates.push({ plan: plan.slug, value: plan.plan.values[feature.id]![property.slug]! });
        if (winningPlan === undefined && isWinningEntry(entry.state, state)) winningPlan = plan.slug;
      }
      explanations.push({
        featureSlug: feature.slug,
        property: property.slug,
        type: property.definition.type,
        conflictRule: property.definition.conflict,
        winningPlan,
        candidates,
        resolved: state,
      });
    }
  }
  return explanations;
}

/**
 * Resolution hands out the winning plan's own (frozen) state, or — for an `on` over another plan's metered setting — a
 * copy of it sharing its setting; two plans that set equal values tie, and the first held one is named.
 */
function isWinningEntry(entry: BasePropertyState, resolved: BasePropertyState): boolean {
  if (entry === resolved) return true;
  if (resolved.isFallback || entry.type !== resolved.type) return false;
  if (entry.type === "enabled" && resolved.type === "enabled") return entry.setting === resolved.setting || sameJson(entry.setting, resolved.setting);
  if (entry.type === "credits" && resolved.type === "credits") return sameJson(entry.allowance, resolved.allowance);
  return (entry as { value: unknown }).value === (resolved as { value: unknown }).value;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
