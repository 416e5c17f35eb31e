/**
 * Offers, resolved for one request: which offers a visitor is eligible for (targeting), which A/B variant they see,
 * the price they are shown (adjustments, bundles) and which offer fills each slot of an offer group. Pure: the
 * decision stage (decision/stages/offers.ts) adds each shown offer's signed token.
 */
import type { OfferConditions, OfferPresentation, OfferPrice } from "../../schema/config";
import type { OfferView, ResolvedOffer, ResolvedPrice } from "./offerTypes";
import type { PreparedSnapshot } from "./prepare";
import type { SnapshotOffer, SnapshotOfferVariant } from "./snapshot";
import type { BotTag, FeatureStates, PropertyState } from "./types";

/** What targeting looks at: who, where, when, and what the decision resolved for them. */
export interface OfferFacts {
  identity: { isAuthenticated: boolean; testGroup100: number };
  bot: BotTag | undefined;
  /** ISO 3166-1 alpha-2 (Cloudflare's `cf.country`); undefined when the request carries none. */
  country: string | undefined;
  planSlugs: readonly string[];
  /** Wire shape, after meters and feature workflows. */
  features: FeatureStates;
  /** Milliseconds since the epoch. */
  now: number;
}

type FeatureStateCondition = NonNullable<OfferConditions["featureState"]>;

/** Why an offer was not shown: the first of its conditions that failed (for traces, never for clients). */
export type OfferFilterReason = string;

const matchesUserType = (types: NonNullable<OfferConditions["userTypes"]>, facts: OfferFacts): boolean => {
  // An unverified bot tag is a guess from the user agent: the request counts as what its identity is.
  if (facts.bot?.isVerified) return types.includes("bot");
  return types.includes(facts.identity.isAuthenticated ? "authenticated" : "anonymous");
};

function propertyOf(features: FeatureStates, reference: string): PropertyState | undefined {
  const dot = reference.indexOf(".");
  const feature = Object.hasOwn(features, reference.slice(0, dot)) ? features[reference.slice(0, dot)] : undefined;
  const property = reference.slice(dot + 1);
  return feature && Object.hasOwn(feature.properties, property) ? feature.properties[property] : undefined;
}

function hasAccess(state: PropertyState): boolean | undefined {
  switch (state.type) {
    case "meterable":
    case "credits":
      return state.hasAccess;
    case "boolean":
      return state.value;
    default:
      return undefined;
  }
}

/** The first part of a feature-state condition that does not hold, or null. */
function featureStateMismatch(condition: FeatureStateCondition, features: FeatureStates): OfferFilterReason | null {
  const state = propertyOf(features, condition.property);
  if (state === undefined) return `featureState: ${condition.property} is not in the decision`;
  if (condition.hasAccess !== undefined) {
    const access = hasAccess(state);
    if (access === undefined) return `featureState.hasAccess: ${condition.property} is a ${state.type} property`;
    if (access !== condition.hasAccess) return `featureState.hasAccess: ${condition.property} ${condition.hasAccess ? "has no access" : "has access"}`;
  }
  if (condition.consumedAtLeast !== undefined || condition.consumedBelow !== undefined) {
    // A reading without consumedUnits (the meter fell back) says nothing about usage: no usage condition matches it.
    const consumed = state.type === "meterable" ? state.consumedUnits : undefined;
    if (consumed === undefined) return `featureState: ${condition.property} has no usage reading`;
    if (condition.consumedAtLeast !== undefined && consumed < condition.consumedAtLeast) return `featureState.consumedAtLeast: ${consumed} < ${condition.consumedAtLeast}`;
    if (condition.consumedBelow !== undefined && consumed >= condition.consumedBelow) return `featureState.consumedBelow: ${consumed} >= ${condition.consumedBelow}`;
  }
  if (condition.equals !== undefined) {
    const value = state.type === "boolean" || state.type === "number" || state.type === "string" ? state.value : undefined;
    if (value !== condition.equals) return `featureState.equals: ${condition.property} is ${JSON.stringify(value ?? null)}`;
  }
  return null;
}

/** Null when every given condition holds; otherwise why not (the first failing condition). */
export function conditionsMismatch(conditions: OfferConditions, facts: OfferFacts): OfferFilterReason | null {
  if (conditions.from !== undefined && facts.now < Date.parse(conditions.from)) return "from: not yet";
  if (conditions.until !== undefined && facts.now >= Date.parse(conditions.until)) return "until: over";
  if (conditions.userTypes !== undefined && !matchesUserType(conditions.userTypes, facts)) return "userTypes";
  if (conditions.botCategories !== undefined && !(facts.bot?.isVerified && conditions.botCategories.includes(facts.bot.category))) return "botCategories";
  const plans = conditions.plans;
  if (plans !== undefined) {
    // Exclude wins: checked first, so an identity holding an included and an excluded plan is filtered as excluded.
    if (plans.exclude?.some((plan) => facts.planSlugs.includes(plan))) return "plans.exclude";
    if (plans.include !== undefined && !plans.include.some((plan) => facts.planSlugs.includes(plan))) return "plans.include";
  }
  if (conditions.countries !== undefined && (facts.country === undefined || !conditions.countries.includes(facts.country))) return "countries";
  if (conditions.featureState !== undefined) return featureStateMismatch(conditions.featureState, facts.features);
  return null;
}

/** The variant whose testGroups range holds the identity's bucket; undefined for the offer itself. */
export function variantFor(offer: SnapshotOffer, testGroup100: number): SnapshotOfferVariant | undefined {
  return offer.variants.find((variant) => testGroup100 >= variant.from && testGroup100 <= variant.to);
}

const INTERVAL_SUFFIX: Record<NonNullable<OfferPrice["interval"]>, string> = { day: " / day", week: " / week", month: " / month", year: " / year" };
const currencyFormats = new Map<string, Intl.NumberFormat>();

function currencyFormat(currency: string): Intl.NumberFormat {
  let format = currencyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat("en-US", { style: "currency", currency: currency.toUpperCase() });
    currencyFormats.set(currency, format);
  }
  return format;
}

/** An amount in minor units as text in its currency ("$9.99", "¥500"), with the interval ("$9.99 / month"). */
export function formatPrice(amount: number, currency: string, interval?: OfferPrice["interval"]): string {
  let text: string;
  try {
    const format = currencyFormat(currency);
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    text = format.format(amount / 10 ** digits);
  } catch {
    // A currency code Intl does not know: the plain minor amount and the code.
    text = `${amount} ${currency.toUpperCase()}`;
  }
  return interval ? text + INTERVAL_SUFFIX[interval] : text;
}

/**
 * Bundle items at their share of `total` in whole minor units, adding up to `total` exactly and never below zero: each
 * share rounded down, then the units left over go one each to the items with the largest remainders (first ones
 * first on ties). Rounding each share to nearest could push the last item's remainder negative.
 */
function itemsSummingTo(items: { name: string; stripeProductId: string; amount: number }[], total: number) {
  const sum = items.reduce((acc, item) => acc + item.amount, 0);
  // Without weights (every item free), the total is shared evenly.
  const weightOf = (amount: number) => (sum === 0 ? 1 : amount);
  const weights = sum === 0 ? items.length : sum;
  const shares = items.map((item, index) => {
    const exact = (weightOf(item.amount) * total) / weights;
    return { index, amount: Math.floor(exact), remainder: exact - Math.floor(exact) };
  });
  let left = total - shares.reduce((acc, share) => acc + share.amount, 0);
  for (const share of [...shares].sort((a, b) => b.remainder - a.remainder || a.index - b.index)) {
    if (left <= 0) break;
    share.amount += 1;
    left -= 1;
  }
  return items.map((item, index) => ({ name: item.name, stripeProductId: item.stripeProductId, amount: shares[index]!.amount }));
}

/**
 * The price shown: the first adjustment whose conditions hold replaces the amount or multiplies it (rounded to minor
 * units). A bundle's items are each rounded at the multiplier, and its amount is their sum, so the lines always add up.
 * `presentation.priceDisplay` is the configured text for this price: used unless an adjustment changed the amount it
 * describes.
 */
export function resolvePrice(price: OfferPrice, presentation: Pick<OfferPresentation, "priceDisplay">, facts: OfferFacts): ResolvedPrice {
  const priceDisplay = presentation.priceDisplay;
  const adjustment = price.adjustments?.find((candidate) => conditionsMismatch(candidate.when, facts) === null);
  let amount: number;
  let items: ResolvedPrice["items"];
  if (price.bundle) {
    const multiplier = price.bundle.multiplier * (adjustment?.multiplier ?? 1);
    items = price.bundle.items.map((item) => ({ name: item.name, stripeProductId: item.stripeProductId, amount: Math.round(item.amount * multiplier) }));
    if (adjustment?.amount !== undefined) items = itemsSummingTo(items, adjustment.amount);
    amount = items.reduce((acc, item) => acc + item.amount, 0);
  } else {
    const base = price.amount ?? 0;
    amount = adjustment === undefined ? base : adjustment.amount !== undefined ? adjustment.amount : Math.round(base * adjustment.multiplier!);
  }
  const resolved: ResolvedPrice = {
    amount,
    currency: price.currency,
    adjusted: adjustment !== undefined,
    display: adjustment === undefined && priceDisplay !== undefined ? priceDisplay : formatPrice(amount, price.currency, price.interval),
  };
  if (price.interval) resolved.interval = price.interval;
  if (items) resolved.items = items;
  return resolved;
}

/** An eligible offer as this identity sees it: variant, merged presentation, price and the Stripe price charging it. */
export function resolveOffer(offer: SnapshotOffer, facts: OfferFacts): ResolvedOffer {
  const variant = variantFor(offer, facts.identity.testGroup100);
  const presentation: OfferPresentation = variant?.presentation ? { ...offer.presentation, ...variant.presentation } : offer.presentation;
  const configured = variant?.price ?? offer.price;
  // The offer's price text describes the offer's price: a variant with a price of its own needs its own text.
  const priceDisplay = variant?.price ? variant.presentation?.priceDisplay : presentation.priceDisplay;
  const price = configured ? resolvePrice(configured, { priceDisplay }, facts) : null;
  const redemption = offer.redemption;
  let stripePriceId: string | null = null;
  if (redemption.method !== "workflow" && price && !price.adjusted && !price.items) {
    // A variant with its own price is charged by its own Stripe price only: the offer's would charge another amount.
    stripePriceId = variant?.stripePriceId ?? (variant?.price ? null : (redemption.stripePriceId ?? null));
  }
  return { offer: offer.slug, variant: variant?.slug ?? null, presentation, price, method: redemption.method, stripePriceId, fingerprint: offer.fingerprint };
}

/** An offer filtered out of a resolution, and why. */
export interface FilteredOffer {
  offer: string;
  reason: OfferFilterReason;
}

export interface ResolvedOfferSlot {
  slot: number;
  name: string | null;
  offer: ResolvedOffer | null;
}

export interface ResolvedOfferGroup {
  slug: string;
  name: string;
  slots: ResolvedOfferSlot[];
}

export interface OfferResolution {
  /** By group slug, in the order asked for; an unknown group is left out. */
  groups: ResolvedOfferGroup[];
  /** Each offer that was considered and not shown, once, with the first condition that failed. */
  filtered: FilteredOffer[];
}

/** Eligibility per offer, computed at most once per request (an offer may be ranked in several slots and groups). */
export class OfferEligibility {
  private readonly verdicts = new Map<string, ResolvedOffer | OfferFilterReason>();

  constructor(
    private readonly prepared: PreparedSnapshot,
    readonly facts: OfferFacts,
  ) {}

  /** The offer resolved for this request, or why it is not shown. */
  check(slug: string): ResolvedOffer | OfferFilterReason {
    let verdict = this.verdicts.get(slug);
    if (verdict === undefined) {
      const offer = this.prepared.offerBySlug.get(slug);
      if (!offer) verdict = "unknown offer";
      else {
        // A subscription change needs a subscription, which only a signed-in customer has: never shown to anyone else.
        const changesSubscription = offer.redemption.method === "subscription_change" || offer.redemption.method === "scheduled_change";
        const mismatch = changesSubscription && !this.facts.identity.isAuthenticated ? "redemption: needs a signed-in identity" : conditionsMismatch(offer.targeting, this.facts);
        verdict = mismatch ?? resolveOffer(offer, this.facts);
      }
      this.verdicts.set(slug, verdict);
    }
    return verdict;
  }

  /** Offers checked and not shown, with why. */
  filtered(): FilteredOffer[] {
    const filtered: FilteredOffer[] = [];
    for (const [offer, verdict] of this.verdicts) if (typeof verdict === "string") filtered.push({ offer, reason: verdict });
    return filtered;
  }
}

/** Each slot of each group: the first eligible offer of its ranked list that no earlier slot of the group shows. */
export function resolveOfferGroups(prepared: PreparedSnapshot, groupSlugs: readonly string[], facts: OfferFacts, eligibility = new OfferEligibility(prepared, facts)): OfferResolution {
  const groups: ResolvedOfferGroup[] = [];
  for (const slug of groupSlugs) {
    const group = prepared.offerGroupBySlug.get(slug);
    if (!group) continue;
    const shown = new Set<string>();
    const slots = group.slots.map((slot, index): ResolvedOfferSlot => {
      for (const candidate of slot.offers) {
        if (shown.has(candidate)) continue;
        const verdict = eligibility.check(candidate);
        if (typeof verdict === "string") continue;
        shown.add(candidate);
        return { slot: index, name: slot.name ?? null, offer: verdict };
      }
      return { slot: index, name: slot.name ?? null, offer: null };
    });
    groups.push({ slug, name: group.name, slots });
  }
  return { groups, filtered: eligibility.filtered() };
}

/** The view clients render and redeem: presentation, price and redemption method, with the token minted for it. */
export function offerViewOf(resolved: ResolvedOffer, token: string, expiresAt: string): OfferView {
  const { presentation, price } = resolved;
  const priceDisplay = price ? price.display : presentation.priceDisplay;
  return {
    offer: resolved.offer,
    variant: resolved.variant,
    title: presentation.title,
    ...(presentation.description !== undefined ? { description: presentation.description } : {}),
    ...(priceDisplay !== undefined ? { priceDisplay } : {}),
    ...(presentation.callToAction !== undefined ? { callToAction: presentation.callToAction } : {}),
    ...(presentation.imageUrl !== undefined ? { imageUrl: presentation.imageUrl } : {}),
    ...(presentation.fields !== undefined ? { fields: presentation.fields } : {}),
    ...(price
      ? {
          price: {
            amount: price.amount,
            currency: price.currency,
            ...(price.interval ? { interval: price.interval } : {}),
            ...(price.items ? { items: price.items.map((item) => ({ name: item.name, amount: item.amount })) } : {}),
          },
        }
      : {}),
    redemption: { method: resolved.method },
    token,
    expiresAt,
  };
}
