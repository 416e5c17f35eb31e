/**
 * Stage 9b — offers (surface decisions only), after the surface workflow and before the component workflows, which
 * receive them: the offer groups the surface and its components name, each slot resolved by the engine
 * (engine/offers.ts) for this identity, plans, feature states, country and bot tag, and each shown offer's token
 * minted. A version without offers, or a surface that names no group, costs nothing here.
 *
 * Also what `utils.offers.list` answers in surface and component workflows (offersLister): the same engine, for
 * offers named by the workflow rather than by slots.
 */
import {
  OfferEligibility,
  offerViewOf,
  resolveOfferGroups,
  type FeatureStates,
  type FilteredOffer,
  type OfferFacts,
  type OfferGroupsView,
  type OfferView,
  type PreparedSnapshot,
  type ResolvedOffer,
} from "../../engine";
import type { Configured, DecisionRequest, Featured, Identified, OfferImpression, Planned, RequestFacts, WithOffers } from "../context";
import type { Services } from "../services";

/** The country Cloudflare (or the trusted caller's `cloudflare.cf`) says the request came from. */
function countryOf(facts: RequestFacts): string | undefined {
  const country = facts.cf?.country;
  return typeof country === "string" && /^[A-Z]{2}$/.test(country) ? country : undefined;
}

function offerFactsOf(context: Identified & { decision: { planSlugs: string[] }; features: FeatureStates }, now: number): OfferFacts {
  const { identity, bot, facts, decision, features } = context;
  return {
    identity: { isAuthenticated: identity.isAuthenticated, testGroup100: identity.testGroup100 },
    bot,
    country: countryOf(facts),
    planSlugs: decision.planSlugs,
    features,
    now,
  };
}

interface TokenScope {
  environmentId: string;
  identity: { identifier: string; isAuthenticated: boolean };
}

/** One offer's view with a token minted for it (bound to the environment, identity, price and, for a slot, its place). */
async function viewWithToken(services: Services, scope: TokenScope, resolved: ResolvedOffer, place: { group: string; slot: number } | null) {
  const price = resolved.price;
  const { token, claims } = await services.offerTokens.mint({
    env: scope.environmentId,
    offer: resolved.offer,
    variant: resolved.variant,
    group: place?.group ?? null,
    slot: place?.slot ?? null,
    sub: scope.identity.identifier,
    anon: !scope.identity.isAuthenticated,
    amt: price?.amount ?? null,
    cur: price?.currency ?? null,
    int: price?.interval ?? null,
    fp: resolved.fingerprint,
  });
  return { view: offerViewOf(resolved, token, new Date(claims.exp * 1000).toISOString()), tokenId: claims.jti };
}

/** Shared by every surface decision that resolves no group; frozen, since it is never anyone's to change. */
const NO_OFFER_GROUPS_NAMED: NonNullable<WithOffers["offers"]> = Object.freeze({ views: Object.freeze({}), impressions: Object.freeze([]) as unknown as OfferImpression[], filtered: Object.freeze([]) as unknown as FilteredOffer[] });

export function resolveOffers<C extends DecisionRequest & Configured & Identified & Planned & Featured>(services: Services, context: C): (C & WithOffers) | Promise<C & WithOffers> {
  const surface = context.decision.surface;
  if (!surface) return { ...context, offers: undefined };
  // Versions before offers, and surfaces without groups, are the common case: one map lookup, no allocation.
  const groups = context.prepared.offerGroupsBySurface.get(surface.slug);
  if (groups === undefined) return { ...context, offers: NO_OFFER_GROUPS_NAMED };
  return resolveNamedGroups(services, context, groups);
}

async function resolveNamedGroups<C extends DecisionRequest & Configured & Identified & Planned & Featured>(services: Services, context: C, groups: readonly string[]): Promise<C & WithOffers> {
  const { groups: resolved, filtered } = resolveOfferGroups(context.prepared, groups, offerFactsOf(context, services.clock.now()));
  const scope: TokenScope = { environmentId: context.environment.id, identity: context.identity };
  let minted;
  try {
    minted = await Promise.all(
      resolved.map((group) =>
        Promise.all(group.slots.map((slot) => (slot.offer ? viewWithToken(services, scope, slot.offer, { group: group.slug, slot: slot.slot }) : null))),
      ),
    );
  } catch (error) {
    // Tokens that cannot be signed (a malformed platform secret) must not fail the decision: its slots show no offer.
    services.logger.error("offer_tokens_not_minted", { environmentId: scope.environmentId, error: String(error) });
    const empty: OfferGroupsView = {};
    for (const group of resolved) empty[group.slug] = { name: group.name, slots: group.slots.map((slot) => ({ slot: slot.slot, name: slot.name, offer: null })) };
    services.timing.mark("offers");
    return { ...context, offers: { views: empty, impressions: [], filtered } };
  }
  const views: OfferGroupsView = {};
  const impressions: OfferImpression[] = [];
  resolved.forEach((group, groupIndex) => {
    const slots = group.slots.map((slot, slotIndex) => {
      const shown = minted[groupIndex]![slotIndex];
      if (!shown || !slot.offer) return { slot: slot.slot, name: slot.name, offer: null };
      const price = slot.offer.price;
      impressions.push({ group: group.slug, slot: slot.slot, offer: slot.offer.offer, variant: slot.offer.variant, tokenId: shown.tokenId, amount: price?.amount ?? null, currency: price?.currency ?? null });
      return { slot: slot.slot, name: slot.name, offer: shown.view };
    });
    views[group.slug] = { name: group.name, slots };
  });
  services.timing.mark("offers");
  return { ...context, offers: { views, impressions, filtered } };
}

/** The groups of one component, from the decision's resolved groups (`{}` when it names none). */
export function offersOfComponent(views: OfferGroupsView | undefined, groups: readonly string[] | undefined): OfferGroupsView {
  const own: OfferGroupsView = {};
  if (!views || !groups) return own;
  for (const group of groups) if (Object.hasOwn(views, group)) own[group] = views[group]!;
  return own;
}

export interface OfferListOptions {
  groups?: string[];
  offers?: string[];
}

export type OffersLister = (options: OfferListOptions) => Promise<OfferView[]>;

/**
 * `utils.offers.list` for this decision: the offers whose targeting the identity meets, in slug order (or in the
 * groups' slot order when `groups` is given), each with its own token (no group, no slot: a workflow's own placement).
 */
export function offersLister(services: Services, context: Configured & Identified & { environment: { id: string }; decision: { planSlugs: string[] }; features: FeatureStates }): OffersLister {
  let eligibility: OfferEligibility | undefined;
  return async (options) => {
    const prepared: PreparedSnapshot = context.prepared;
    eligibility ??= new OfferEligibility(prepared, offerFactsOf(context, services.clock.now()));
    let slugs: Iterable<string>;
    if (options.groups) {
      const ranked = new Set<string>();
      for (const group of options.groups) for (const slot of prepared.offerGroupBySlug.get(group)?.slots ?? []) for (const offer of slot.offers) ranked.add(offer);
      slugs = ranked;
    } else slugs = prepared.offerBySlug.keys();
    const named = options.offers ? new Set(options.offers) : undefined;
    const eligible: ResolvedOffer[] = [];
    for (const slug of slugs) {
      if (named && !named.has(slug)) continue;
      const verdict = eligibility.check(slug);
      if (typeof verdict !== "string") eligible.push(verdict);
    }
    const scope: TokenScope = { environmentId: context.environment.id, identity: context.identity };
    return Promise.all(eligible.map(async (resolved) => (await viewWithToken(services, scope, resolved, null)).view));
  };
}

/**
 * Before the surface workflow: from here on (surface and component workflows) `utils.offers.list` answers for this
 * decision's identity, plans and feature states; earlier workflows' calls reject.
 */
export function enableOfferUtils<C extends DecisionRequest & Configured & Identified & Planned & Featured>(services: Services, context: C): C {
  if (context.surfaceSlug !== undefined && context.workflows) context.workflows.listOffersWith(offersLister(services, context));
  return context;
}
