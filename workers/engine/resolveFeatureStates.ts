/**
 * Stage 3: stack the provisioned plans' values per property and resolve conflicts with each property's rule.
 *
 * Orders used by `higher` (`lower` takes the other end of the same order):
 * - boolean: false < true;
 * - number: numeric (-0 is stored as 0);
 * - string: position in the property's allowed `values` when it has them, else code-unit comparison of the strings;
 * - enabled: off < metered < on; two metered settings compare by limit, then `overage: overflow` is higher than cap
 *   (never refused past the same free units), then by period, where a LONGER period is LOWER (the same allowance must
 *   last longer, so it is stricter; lifetime is the longest), then uniqueResources=true is higher (re-reading a
 *   resource is free), then by Stripe meter event name (none lowest) so the winner stays independent of plan order;
 * - credits allowances: by amount, then by period where a SHORTER period is higher (granted more often), as for
 *   metered settings (creditsOrderKey).
 * Every order is total over distinct values, so the winner never depends on the order of the plans.
 * A property that no provisioned plan sets takes its fallback, marked `isFallback: true`.
 * An `enabled` property that a plan turns `on` over another plan's metered setting remembers the best such setting
 * (`overriddenMeter`): unlimited access, but a counter that keeps counting.
 *
 * The winners' states are the frozen objects prepareSnapshot built, so resolution allocates one properties record
 * and one state object per feature and nothing per property (but an `on` over a metered setting, one state).
 */
import type { PlanPropertyEntry, PreparedFeature, PreparedPlan, PreparedSnapshot } from "./prepare";
import type { BaseFeatureState, BasePropertyState, MeteredSetting } from "./types";

/** A base feature state that also points at its prepared definition, which rendering and metering need. */
export interface ResolvedFeatureState extends BaseFeatureState {
  /** Serialises as the feature id (PreparedFeature.toJSON), so a logged base state stays small. */
  readonly definition: PreparedFeature;
}

/** Every feature of the snapshot, in snapshot (slug) order. Shared and frozen (see resolveFeatureStates). */
export type BaseFeatureStates = readonly ResolvedFeatureState[];

/** True when `candidate` beats `current` under the property's order and rule. */
function wins(candidate: PlanPropertyEntry, current: PlanPropertyEntry, direction: 1 | -1, comparesStrings: boolean): boolean {
  if (comparesStrings) {
    const a = (candidate.state as { value: string }).value;
    const b = (current.state as { value: string }).value;
    return direction === 1 ? a > b : a < b;
  }
  if (candidate.orderKey !== current.orderKey) return direction === 1 ? candidate.orderKey > current.orderKey : candidate.orderKey < current.orderKey;
  // Equal keys: only strings outside an allowed-values list can tie with different text; order those by text.
  if (candidate.state.type === "string") {
    const a = candidate.state.value;
    const b = (current.state as { value: string }).value;
    return direction === 1 ? a > b : a < b;
  }
  // …and overflow settings that report to different Stripe meter events: by the event name.
  if (candidate.state.type === "enabled" && candidate.state.setting.kind === "metered") {
    const a = candidate.state.setting.stripeMeterEvent ?? "";
    const b = (current.state as { setting: { stripeMeterEvent?: string } }).setting.stripeMeterEvent ?? "";
    return direction === 1 ? a > b : a < b;
  }
  return false;
}

/** The plans of a slug list, known ones only, each once. */
export function plansOf(prepared: PreparedSnapshot, planSlugs: readonly string[]): PreparedPlan[] {
  const plans: PreparedPlan[] = [];
  for (const slug of planSlugs) {
    const plan = prepared.planBySlug.get(slug);
    if (plan !== undefined && !plans.includes(plan)) plans.push(plan);
  }
  return plans;
}

export function resolveFeatureState(feature: PreparedFeature, plans: readonly PreparedPlan[]): ResolvedFeatureState {
  const properties: Record<string, BasePropertyState> = {};
  const definitions = feature.properties;
  const featureIndex = feature.index;
  for (let p = 0; p < definitions.length; p++) {
    const property = definitions[p]!;
    let best: PlanPropertyEntry | undefined;
    // The highest metered setting among the plans, for an `on` that beats it (see BasePropertyState.overriddenMeter).
    let metered: MeteredSetting | undefined;
    let meteredKey = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < plans.length; i++) {
      const entry = plans[i]!.entries[featureIndex]?.[p];
      if (entry === undefined) continue;
      if (best === undefined || wins(entry, best, property.direction, property.comparesStrings)) best = entry;
      const state = entry.state;
      if (state.type === "enabled" && state.setting.kind === "metered" && entry.orderKey > meteredKey) {
        metered = state.setting;
        meteredKey = entry.orderKey;
      }
    }
    let resolved = best === undefined ? property.fallbackState : best.state;
    if (metered !== undefined && resolved.type === "enabled" && resolved.setting.kind === "on") resolved = Object.freeze({ ...resolved, overriddenMeter: metered });
    properties[property.slug] = resolved;
  }
  return { featureId: feature.id, featureSlug: feature.slug, properties, definition: feature };
}

/**
 * The conflict-resolved state of EVERY feature under the given plans (unknown slugs are ignored).
 *
 * The result depends only on the SET of plans, and most traffic shares a few sets (every anonymous reader has the
 * same one), so results are memoised per prepared snapshot, keyed by the sorted plan indices. They are therefore
 * shared between decisions and deeply frozen: a caller that wants to adjust a state (a feature workflow) builds a
 * new state object instead of mutating this one (mutation throws in strict mode rather than leaking into other
 * requests). The memo belongs to the prepared snapshot (see PreparedSnapshot.resolvedByPlanSet).
 */
export function resolveFeatureStates(prepared: PreparedSnapshot, planSlugs: readonly string[]): BaseFeatureStates {
  const plans = plansOf(prepared, planSlugs);
  const key = planSetKey(plans);
  const memo = prepared.resolvedByPlanSet;
  const cached = memo.get(key);
  if (cached !== undefined) return cached;

  const features = prepared.features;
  const states: ResolvedFeatureState[] = new Array(features.length);
  for (let f = 0; f < features.length; f++) {
    const state = resolveFeatureState(features[f]!, plans);
    Object.freeze(state.properties);
    states[f] = Object.freeze(state);
  }
  Object.freeze(states);
  memo.set(key, states);
  return states;
}

function planSetKey(plans: readonly PreparedPlan[]): string {
  if (plans.length === 0) return "";
  if (plans.length === 1) return String(plans[0]!.index);
  const indices = new Array<number>(plans.length);
  for (let i = 0; i < plans.length; i++) indices[i] = plans[i]!.index;
  indices.sort((a, b) => a - b);
  return indices.join(",");
}
