/**
 * Credits properties: pricing a request's action under a property's cost rules, and the credit requests a decision
 * sends in its one meter call (next to the meter requests; the meter object deducts all-or-nothing with them).
 */
import type { ConsumedProperty } from "./meters";
import type { BaseFeatureStates } from "./resolveFeatureStates";
import type { CreditCosts } from "./snapshot";
import type { CreditRequest, PricedResource } from "./types";

/** Credits are kept to 6 decimals (as the meter object stores them), so prices never drift. */
export const roundCredits = (value: number): number => Math.round(value * 1e6) / 1e6;

function isStringList(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

function metaOf(resource: PricedResource): Record<string, unknown> | undefined {
  const meta = resource.meta;
  return typeof meta === "object" && meta !== null && !Array.isArray(meta) ? (meta as Record<string, unknown>) : undefined;
}

function typeMatches(resource: PricedResource | undefined, type: string): boolean {
  if (resource === undefined) return false;
  return metaOf(resource)?.type === type || resource.type === type;
}

function hasTag(resource: PricedResource | undefined, tag: string): boolean {
  if (resource === undefined) return false;
  const metaTags = metaOf(resource)?.tags;
  if (isStringList(metaTags) && metaTags.includes(tag)) return true;
  return isStringList(resource.tags) && resource.tags.includes(tag);
}

/** Most assets one request is priced for; names beyond are ignored (a request cannot make pricing unbounded). */
export const MAX_PRICED_ASSETS = 100;

/** The distinct asset ids a resource names (`resource.assets`, else `resource.meta.assets`); non-strings are ignored. */
function assetsOf(resource: PricedResource | undefined): Set<string> | undefined {
  if (resource === undefined) return undefined;
  const listed = Array.isArray(resource.assets) ? resource.assets : metaOf(resource)?.assets;
  if (!Array.isArray(listed)) return undefined;
  const assets = new Set<string>();
  for (let i = 0; i < listed.length && assets.size < MAX_PRICED_ASSETS; i++) {
    const asset: unknown = listed[i];
    if (typeof asset === "string") assets.add(asset);
  }
  return assets.size > 0 ? assets : undefined;
}

/**
 * The assets' sum (an asset without its own price costs `actionPrice`), with each bundle whose assets are all named,
 * and none taken by an earlier bundle, multiplying the sum of its own assets by its factor.
 */
function priceAssets(costs: CreditCosts, prices: Record<string, number>, assets: Set<string>, actionPrice: number): number {
  const priceOf = (asset: string) => (Object.hasOwn(prices, asset) ? prices[asset]! : actionPrice);
  let total = 0;
  for (const asset of assets) total += priceOf(asset);
  const bundles = costs.bundles;
  if (bundles !== undefined) {
    const taken = new Set<string>();
    for (let b = 0; b < bundles.length; b++) {
      const { assets: members, factor } = bundles[b]!;
      const distinct = new Set(members);
      let applies = distinct.size > 0;
      for (const asset of distinct) {
        if (!assets.has(asset) || taken.has(asset)) {
          applies = false;
          break;
        }
      }
      if (!applies) continue;
      let bundleSum = 0;
      for (const asset of distinct) {
        bundleSum += priceOf(asset);
        taken.add(asset);
      }
      total += bundleSum * factor - bundleSum;
    }
  }
  return total;
}

/**
 * The price of one request under a credits property's cost rules:
 * 1. base: `costs.actions[action]` when the request names an action the rules price, else `costs.base`;
 *    when the resource names assets (`resource.assets` or `resource.meta.assets`, at most 100 distinct) and the rules
 *    price assets (`costs.assets`), the sum of the assets' prices instead (an unlisted asset costs the action's price),
 *    each matching bundle (in order; all its assets named, none taken by an earlier bundle) multiplying its part;
 * 2. times the factor of every multiplier whose `when` matches the resource, in the order they are listed:
 *    `when.type` equals `resource.meta.type` or `resource.type`; `when.tag` is in `resource.meta.tags` or
 *    `resource.tags` (arrays); a `when` with both needs both; a request without a resource matches none;
 * 3. rounded to 6 decimals. Pure and deterministic; never negative (a bad number in a hand-written snapshot prices 0).
 */
export function priceAction(costs: CreditCosts, action: string | undefined, resource: PricedResource | undefined): number {
  const actions = costs.actions;
  let price = action !== undefined && actions !== undefined && Object.hasOwn(actions, action) ? actions[action]! : costs.base;
  if (costs.assets !== undefined) {
    const assets = assetsOf(resource);
    if (assets !== undefined) price = priceAssets(costs, costs.assets, assets, price);
  }
  const multipliers = costs.multipliers;
  if (multipliers !== undefined && resource !== undefined) {
    for (let i = 0; i < multipliers.length; i++) {
      const { when, factor } = multipliers[i]!;
      if (when.type === undefined && when.tag === undefined) continue;
      if (when.type !== undefined && !typeMatches(resource, when.type)) continue;
      if (when.tag !== undefined && !hasTag(resource, when.tag)) continue;
      price *= factor;
    }
  }
  const rounded = roundCredits(price);
  return Number.isFinite(rounded) && rounded > 0 ? rounded : 0;
}

function isConsumed(consumes: readonly ConsumedProperty[], featureId: string, property: string): boolean {
  for (let i = 0; i < consumes.length; i++) {
    const entry = consumes[i]!;
    if (entry.featureId === featureId && entry.property === property) return true;
  }
  return false;
}

const NOTHING_CONSUMED: readonly ConsumedProperty[] = [];

/**
 * One request per credits property of every feature (a balance may exist from top-ups even without a plan
 * allowance): creditId = the property's counter id, cost = priceAction(action, resource), consume when the surface
 * consumes it (access checks pass no `consumes` and only read), grant = the resolved plan allowance.
 */
export function creditRequestsFor(
  base: BaseFeatureStates,
  storeId: string,
  consumes: readonly ConsumedProperty[] = NOTHING_CONSUMED,
  action?: string,
  resource?: PricedResource,
): CreditRequest[] {
  const requests: CreditRequest[] = [];
  for (let f = 0; f < base.length; f++) {
    const feature = base[f]!;
    const definitions = feature.definition.properties;
    for (let p = 0; p < definitions.length; p++) {
      const property = definitions[p]!;
      const definition = property.definition;
      if (definition.type !== "credits") continue;
      const state = feature.properties[property.slug];
      const allowance = state !== undefined && state.type === "credits" ? state.allowance : undefined;
      const request: CreditRequest = {
        creditId: feature.definition.counterIds(storeId)[p]!,
        cost: priceAction(definition.costs, action, resource),
        consume: isConsumed(consumes, feature.featureId, property.slug),
      };
      if (allowance !== undefined) {
        request.grant =
          allowance.carryOver === undefined
            ? { amount: allowance.amount, period: allowance.period }
            : { amount: allowance.amount, period: allowance.period, carryOver: allowance.carryOver };
      }
      requests.push(request);
    }
  }
  return requests;
}
