/**
 * Stage 0: turn a compiled snapshot into the lookups the hot path needs, once per version.
 *
 * A version is immutable, so everything that does not depend on the request is computed here and shared by every
 * decision on that version: plan/feature/surface maps, each plan's values as ready-made (frozen) property states,
 * and a numeric ordering key per plan value so that conflict resolution is a number comparison.
 */
import { LRUCache } from "lru-cache";
import type { AutoAssignCategory, Period } from "../../schema/config";
import type {
  ConfigSnapshot,
  CreditsSetting,
  EnabledSetting,
  SnapshotFeature,
  SnapshotOffer,
  SnapshotOfferGroup,
  SnapshotPlan,
  SnapshotPlanValue,
  SnapshotProperty,
  SnapshotSurface,
} from "./snapshot";
import type { BaseFeatureStates } from "./resolveFeatureStates";
import type { BasePropertyState } from "./types";

/**
 * Strictness of a metered period, used to order two metered settings with the same limit. A longer period is
 * stricter (the same allowance must last longer), so it ranks LOWER; `lifetime` is the longest of all.
 */
export const PERIOD_RANK: Readonly<Record<Period, number>> = {
  lifetime: 0,
  year: 1,
  month: 2,
  week: 3,
  day: 4,
  hour: 5,
  minute: 6,
};

/**
 * One total order over `enabled` settings, as a single number: off < metered < on; metered by limit, then overflow
 * above cap (the same free units, and never refused past them), then by period (shorter = higher), then
 * uniqueResources=true above false. So an overflow setting beats a capped one of the same or a lower limit, a capped
 * one with a higher limit beats it (more units before any overage), and `on` beats both. limit ≤ 1e9, so
 * limit·32 + overflow·16 + rank·2 + unique stays an exact integer (< 2^53). Two overflow settings that differ only by
 * their Stripe meter event share a key: resolveFeatureStates orders those by the event name.
 */
export function enabledOrderKey(setting: EnabledSetting): number {
  switch (setting.kind) {
    case "off":
      return -1;
    case "on":
      return Number.POSITIVE_INFINITY;
    case "metered":
      return setting.limit * 32 + (setting.overage === "overflow" ? 16 : 0) + PERIOD_RANK[setting.period] * 2 + (setting.uniqueResources ? 1 : 0);
  }
}

/**
 * One total order over credits allowances, as a single number: by amount, then by period where a SHORTER period is
 * higher (the same amount granted more often; as for metered `enabled`). amount ≤ 1e9, so amount·8 + rank stays
 * an exact integer and distinct allowances never share a key.
 */
export function creditsOrderKey(setting: CreditsSetting): number {
  return setting.amount * 8 + PERIOD_RANK[setting.period];
}

/** A property definition with what resolution and rendering need precomputed. */
export interface PreparedProperty {
  /** Position inside its feature (`enabled` is 0). */
  readonly index: number;
  readonly slug: string;
  readonly definition: SnapshotProperty;
  /** +1 when the higher value wins, -1 when the lower one does. */
  readonly direction: 1 | -1;
  /** The state of this property when no provisioned plan sets it (frozen, shared by every decision). */
  readonly fallbackState: BasePropertyState;
  /** string properties with allowed values: value → position (their order, lowest first). */
  readonly valueRank: ReadonlyMap<string, number> | undefined;
  /**
   * True for a string property without allowed values: its values are ordered by code-unit comparison of the
   * strings themselves instead of by `orderKey`.
   */
  readonly comparesStrings: boolean;
}

/** One plan's value for one property, ready to be picked by conflict resolution without allocating. */
export interface PlanPropertyEntry {
  /** Frozen and shared: the winning entry's state goes straight into the result. */
  readonly state: BasePropertyState;
  /** Ordering key within the property's order (see enabledOrderKey); unused when the property compares strings. */
  readonly orderKey: number;
}

/**
 * A feature of the snapshot with its property definitions. A class only so that a resolved feature state can point
 * at it without serialising the whole definition (`toJSON` gives the feature id).
 */
export class PreparedFeature {
  readonly propertyBySlug: ReadonlyMap<string, PreparedProperty>;
  /** Counter ids per property index in each user data store environments use, built once with the version. */
  private readonly counterIdsByStore: ReadonlyMap<string, readonly string[]>;

  constructor(
    readonly index: number,
    readonly id: string,
    readonly slug: string,
    readonly name: string,
    readonly properties: readonly PreparedProperty[],
  ) {
    this.propertyBySlug = new Map(properties.map((property) => [property.slug, property]));
    this.counterIdsByStore = new Map(USER_DATA_STORES.map((store) => [store, this.buildCounterIds(store)]));
  }

  /** `{storeId}:{featureId}.{property}` for every property; ready-made for the usual stores, so rendering builds no strings. */
  counterIds(storeId: string): readonly string[] {
    return this.counterIdsByStore.get(storeId) ?? this.buildCounterIds(storeId);
  }

  private buildCounterIds(storeId: string): readonly string[] {
    return Object.freeze(this.properties.map((property) => counterIdFor(storeId, this.id, property.slug)));
  }

  toJSON(): string {
    return this.id;
  }
}

/** The user data stores of production-type and preview-type environments (services/tenancy.ts `storeOf`). */
const USER_DATA_STORES = ["default", "preview"] as const;

/** The counter a metered property is counted in: `{storeId}:{featureId}.{property}`, e.g. `default:feat_ab12cd34.enabled`. */
export function counterIdFor(storeId: string, featureId: string, property: string): string {
  return `${storeId}:${featureId}.${property}`;
}

export interface PreparedPlan {
  /** Position in the snapshot's plan list (slug order): the canonical order of provisioned plans. */
  readonly index: number;
  readonly slug: string;
  readonly plan: SnapshotPlan;
  /**
   * By feature index: this plan's entries by property index, or undefined when the plan sets nothing for the
   * feature (most plans touch few features, so most slots stay empty).
   */
  readonly entries: readonly (readonly (PlanPropertyEntry | undefined)[] | undefined)[];
}

export interface PreparedSnapshot {
  readonly snapshot: ConfigSnapshot;
  readonly versionId: string;
  /** In snapshot order (slug order); this is also the order of rendered features. */
  readonly features: readonly PreparedFeature[];
  readonly featureById: ReadonlyMap<string, PreparedFeature>;
  readonly featureBySlug: ReadonlyMap<string, PreparedFeature>;
  /** In snapshot order (slug order). */
  readonly plans: readonly PreparedPlan[];
  readonly planBySlug: ReadonlyMap<string, PreparedPlan>;
  /** Auto-assigned plans per category, in plan order; every category is present (possibly empty). */
  readonly plansByCategory: ReadonlyMap<AutoAssignCategory, readonly PreparedPlan[]>;
  /** Plans linked to a Stripe product id, in plan order. */
  readonly plansByStripeProductId: ReadonlyMap<string, readonly PreparedPlan[]>;
  readonly surfaceBySlug: ReadonlyMap<string, SnapshotSurface>;
  /** Offers and offer groups by slug (shared empty maps for a version without offers). */
  readonly offerBySlug: ReadonlyMap<string, SnapshotOffer>;
  readonly offerGroupBySlug: ReadonlyMap<string, SnapshotOfferGroup>;
  /** Surface slug → the offer groups a decision on it resolves (its own, then its components'); only surfaces naming some. */
  readonly offerGroupsBySurface: ReadonlyMap<string, readonly string[]>;
  /** Surfaces some plan prices for crawlers and agents (`payPerCrawl`): a decision elsewhere skips pay-per-crawl entirely. */
  readonly pricedSurfaces: ReadonlySet<string>;
  /**
   * Memo of resolveFeatureStates by plan set (sorted plan indices joined by ","), owned by that module: a pure
   * function's results for this immutable version, so it lives and dies with the snapshot. Values are frozen
   * BaseFeatureStates; the bound is a budget of feature states, so big configs keep fewer plan sets.
   */
  readonly resolvedByPlanSet: LRUCache<string, BaseFeatureStates>;
}

const AUTO_ASSIGN_CATEGORIES: readonly AutoAssignCategory[] = ["anonymous", "authenticated", "search-crawler", "ai-agent"];

/** -0 and 0 are the same allowance but not the same key for Object.is; keep one of them so results never differ by sign. */
const normalizeNumber = (value: number): number => (value === 0 ? 0 : value);

function prepareProperty(definition: SnapshotProperty, index: number): PreparedProperty {
  const direction = definition.conflict === "lower" ? -1 : 1;
  let fallbackState: BasePropertyState;
  let valueRank: Map<string, number> | undefined;
  let comparesStrings = false;
  switch (definition.type) {
    case "enabled":
      fallbackState = { type: "enabled", setting: Object.freeze({ kind: definition.fallback }), isFallback: true };
      break;
    case "boolean":
      fallbackState = { type: "boolean", value: definition.fallback, isFallback: true };
      break;
    case "number":
      fallbackState = { type: "number", value: normalizeNumber(definition.fallback), isFallback: true };
      break;
    case "string":
      fallbackState = { type: "string", value: definition.fallback, isFallback: true };
      if (definition.values) valueRank = new Map(definition.values.map((value, position) => [value, position]));
      else comparesStrings = true;
      break;
    case "credits":
      fallbackState = { type: "credits", allowance: undefined, isFallback: true };
      break;
  }
  return { index, slug: definition.slug, definition, direction, fallbackState: Object.freeze(fallbackState), valueRank, comparesStrings };
}

/**
 * A plan value as a frozen state plus its ordering key. Values were validated against the definition when the
 * version was created; a value of the wrong type (a snapshot written by hand) is dropped rather than trusted.
 */
function prepareEntry(property: PreparedProperty, value: SnapshotPlanValue): PlanPropertyEntry | undefined {
  const definition = property.definition;
  switch (definition.type) {
    case "enabled": {
      if (typeof value !== "object" || value === null || value.kind === "credits") return undefined;
      const setting = Object.freeze({ ...value });
      return Object.freeze({ state: Object.freeze({ type: "enabled", setting, isFallback: false }), orderKey: enabledOrderKey(setting) });
    }
    case "boolean":
      if (typeof value !== "boolean") return undefined;
      return Object.freeze({ state: Object.freeze({ type: "boolean", value, isFallback: false }), orderKey: value ? 1 : 0 });
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
      const normalized = normalizeNumber(value);
      return Object.freeze({ state: Object.freeze({ type: "number", value: normalized, isFallback: false }), orderKey: normalized });
    }
    case "string": {
      if (typeof value !== "string") return undefined;
      // An allowed-values property ranks by position; a value outside the list (not possible after validation)
      // ranks below all of them and then by its text, so the order stays total.
      const orderKey = property.valueRank ? (property.valueRank.get(value) ?? -1) : 0;
      return Object.freeze({ state: Object.freeze({ type: "string", value, isFallback: false }), orderKey });
    }
    case "credits": {
      if (typeof value !== "object" || value === null || value.kind !== "credits") return undefined;
      if (!Number.isFinite(value.amount) || value.amount < 0 || PERIOD_RANK[value.period] === undefined) return undefined;
      const carryOver = Number.isFinite(value.carryOver) && value.carryOver! >= 0 ? { carryOver: normalizeNumber(value.carryOver!) } : {};
      const allowance = Object.freeze({ kind: "credits" as const, amount: normalizeNumber(value.amount), period: value.period, ...carryOver });
      return Object.freeze({ state: Object.freeze({ type: "credits", allowance, isFallback: false }), orderKey: creditsOrderKey(allowance) });
    }
  }
}

function prepareFeature(feature: SnapshotFeature, index: number): PreparedFeature {
  return new PreparedFeature(index, feature.id, feature.slug, feature.name, feature.properties.map(prepareProperty));
}

function preparePlan(plan: SnapshotPlan, index: number, features: readonly PreparedFeature[], featureById: ReadonlyMap<string, PreparedFeature>): PreparedPlan {
  const entries: (PlanPropertyEntry | undefined)[][] | undefined[] = new Array(features.length);
  for (const [featureId, values] of Object.entries(plan.values)) {
    const feature = featureById.get(featureId);
    if (!feature) continue;
    const row: (PlanPropertyEntry | undefined)[] = new Array(feature.properties.length).fill(undefined);
    let any = false;
    for (const [propertySlug, value] of Object.entries(values)) {
      const property = feature.propertyBySlug.get(propertySlug);
      if (!property) continue;
      const entry = prepareEntry(property, value);
      if (entry) {
        row[property.index] = entry;
        any = true;
      }
    }
    if (any) entries[feature.index] = row;
  }
  return { index, slug: plan.slug, plan, entries };
}

export function prepareSnapshot(snapshot: ConfigSnapshot): PreparedSnapshot {
  const features = snapshot.features.map(prepareFeature);
  const featureById = new Map(features.map((feature) => [feature.id, feature]));
  const featureBySlug = new Map(features.map((feature) => [feature.slug, feature]));

  const plans = snapshot.plans.map((plan, index) => preparePlan(plan, index, features, featureById));
  const planBySlug = new Map(plans.map((plan) => [plan.slug, plan]));

  const plansByCategory = new Map<AutoAssignCategory, PreparedPlan[]>(AUTO_ASSIGN_CATEGORIES.map((category) => [category, []]));
  const plansByStripeProductId = new Map<string, PreparedPlan[]>();
  for (const plan of plans) {
    for (const category of new Set(plan.plan.autoAssign)) plansByCategory.get(category)?.push(plan);
    for (const productId of new Set(plan.plan.stripeProductIds)) {
      let linked = plansByStripeProductId.get(productId);
      if (!linked) plansByStripeProductId.set(productId, (linked = []));
      linked.push(plan);
    }
  }

  // Own keys only: a surface slug such as "constructor" must not find Object.prototype members.
  const surfaceBySlug = new Map(Object.keys(snapshot.surfaces).map((slug) => [slug, snapshot.surfaces[slug]!]));

  const offerBySlug = snapshot.offers?.length ? new Map(snapshot.offers.map((offer) => [offer.slug, offer])) : NO_OFFERS;
  const offerGroups = snapshot.offerGroups;
  const offerGroupBySlug = offerGroups && Object.keys(offerGroups).length > 0 ? new Map(Object.keys(offerGroups).map((slug) => [slug, offerGroups[slug]!])) : NO_OFFER_GROUPS;
  const offerGroupsBySurface = new Map<string, readonly string[]>();
  if (offerGroupBySlug.size > 0) {
    for (const [slug, surface] of surfaceBySlug) {
      const groups = offerGroupsOfSurface(surface);
      if (groups.length > 0) offerGroupsBySurface.set(slug, Object.freeze(groups));
    }
  }

  const pricedSurfaces = new Set(snapshot.plans.flatMap((plan) => Object.keys(plan.payPerCrawl ?? {})));

  return {
    snapshot,
    versionId: snapshot.versionId,
    features,
    featureById,
    featureBySlug,
    plans,
    planBySlug,
    plansByCategory,
    plansByStripeProductId,
    surfaceBySlug,
    offerBySlug,
    offerGroupBySlug,
    offerGroupsBySurface,
    pricedSurfaces,
    // Bounded by size (feature states), not count: an lru-cache with only `maxSize` grows its arrays as it fills,
    // so the thousands of cold snapshots an isolate may hold cost nothing for memo slots they never use.
    resolvedByPlanSet: new LRUCache({
      maxSize: Math.max(MEMO_FEATURE_STATE_BUDGET, MIN_MEMOISED_PLAN_SETS * features.length, 1),
      sizeCalculation: (states: BaseFeatureStates) => Math.max(1, states.length),
    }),
  };
}

const NO_OFFERS: ReadonlyMap<string, SnapshotOffer> = new Map();
const NO_OFFER_GROUPS: ReadonlyMap<string, SnapshotOfferGroup> = new Map();

/** The offer groups a decision on `surface` resolves: the surface's and its components', each once, in that order. */
export function offerGroupsOfSurface(surface: Pick<SnapshotSurface, "offerGroups" | "components">): string[] {
  const groups = new Set(surface.offerGroups);
  for (const component of surface.components) for (const group of component.offerGroups ?? []) groups.add(group);
  return [...groups];
}

/** Feature states one prepared snapshot may keep memoised (≈100 bytes each), and the plan sets always kept. */
const MEMO_FEATURE_STATE_BUDGET = 2_048;
const MIN_MEMOISED_PLAN_SETS = 2;
