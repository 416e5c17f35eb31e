import { describe, expect, it } from "vitest";
import { ConfigDocument, type ConfigDocumentInput, type OfferConditions } from "../../schema/config";
import {
  conditionsMismatch,
  formatPrice,
  offerGroupsOfSurface,
  offerViewOf,
  prepareSnapshot,
  resolveOffer,
  resolveOfferGroups,
  resolvePrice,
  type BotTag,
  type FeatureStates,
  type OfferFacts,
} from "../../workers/engine";
import type { OfferGroupsView as AuthorOfferGroupsView, OfferView as AuthorOfferView } from "../../workers/workflows/authorTypes";
import type { OfferGroupsView, OfferView } from "../../workers/engine";
import { resolveOffers } from "../../workers/decision/stages/offers";
import type { Services } from "../../workers/decision/services";
import { NEWS_SITE, preparedOf, snapshotOf } from "./engineFixtures";

const NOW = Date.parse("2026-06-15T12:00:00Z");

const meterable = (hasAccess: boolean, consumedUnits?: number) => ({
  type: "meterable" as const,
  counterId: "default:feat_articles.enabled",
  hasAccess,
  isFallback: consumedUnits === undefined,
  ...(consumedUnits === undefined ? {} : { consumedUnits, remainingUnits: Math.max(0, 3 - consumedUnits), totalUnits: 3 }),
});

function featuresWith(enabled: ReturnType<typeof meterable>, extra: { premium?: boolean; quality?: string } = {}): FeatureStates {
  return {
    articles: {
      featureId: "feat_articles",
      featureSlug: "articles",
      properties: {
        enabled,
        premium: { type: "boolean", value: extra.premium ?? false, isFallback: false },
        quality: { type: "string", value: extra.quality ?? "standard", isFallback: false },
      },
    },
    ai: {
      featureId: "feat_ai000000",
      featureSlug: "ai",
      properties: { tokens: { type: "credits", creditId: "default:feat_ai000000.tokens", hasAccess: true, isFallback: false, balance: 5 } },
    },
  };
}

const VERIFIED_CRAWLER: BotTag = { category: "ai-crawler", code: "gptbot", isVerified: true, operator: "OpenAI", product: "GPTBot" };

function facts(overrides: Partial<OfferFacts> = {}): OfferFacts {
  return {
    identity: { isAuthenticated: false, testGroup100: 50 },
    bot: undefined,
    country: "DE",
    planSlugs: ["anonymous"],
    features: featuresWith(meterable(false, 3)),
    now: NOW,
    ...overrides,
  };
}

const mismatch = (conditions: OfferConditions, overrides: Partial<OfferFacts> = {}) => conditionsMismatch(conditions, facts(overrides));

describe("offer targeting: every given condition must hold", () => {
  it("no conditions: eligible", () => {
    expect(mismatch({})).toBeNull();
  });

  it("from is inclusive, until exclusive", () => {
    expect(mismatch({ from: "2026-06-15T12:00:00Z" })).toBeNull();
    expect(mismatch({ from: "2026-06-15T12:00:01Z" })).toBe("from: not yet");
    expect(mismatch({ until: "2026-06-15T12:00:01Z" })).toBeNull();
    expect(mismatch({ until: "2026-06-15T12:00:00Z" })).toBe("until: over");
  });

  it("userTypes: anonymous, authenticated, and bot only for a verified bot tag", () => {
    expect(mismatch({ userTypes: ["anonymous"] })).toBeNull();
    expect(mismatch({ userTypes: ["authenticated"] })).toBe("userTypes");
    expect(mismatch({ userTypes: ["authenticated"] }, { identity: { isAuthenticated: true, testGroup100: 1 } })).toBeNull();
    expect(mismatch({ userTypes: ["bot"] }, { bot: VERIFIED_CRAWLER })).toBeNull();
    expect(mismatch({ userTypes: ["anonymous"] }, { bot: VERIFIED_CRAWLER })).toBe("userTypes");
    // An unverified tag is only a guess: the request counts as its identity.
    const unverified = { ...VERIFIED_CRAWLER, isVerified: false };
    expect(mismatch({ userTypes: ["bot"] }, { bot: unverified })).toBe("userTypes");
    expect(mismatch({ userTypes: ["anonymous"] }, { bot: unverified })).toBeNull();
  });

  it("botCategories: only verified bots of those categories", () => {
    expect(mismatch({ botCategories: ["ai-crawler"] }, { bot: VERIFIED_CRAWLER })).toBeNull();
    expect(mismatch({ botCategories: ["search-crawler"] }, { bot: VERIFIED_CRAWLER })).toBe("botCategories");
    expect(mismatch({ botCategories: ["ai-crawler"] }, { bot: { ...VERIFIED_CRAWLER, isVerified: false } })).toBe("botCategories");
    expect(mismatch({ botCategories: ["ai-crawler"] })).toBe("botCategories");
  });

  it("plans: include needs one of them, exclude none of them, and exclude wins", () => {
    expect(mismatch({ plans: { include: ["anonymous", "registered"] } })).toBeNull();
    expect(mismatch({ plans: { include: ["premium"] } })).toBe("plans.include");
    expect(mismatch({ plans: { exclude: ["premium"] } })).toBeNull();
    expect(mismatch({ plans: { exclude: ["anonymous"] } })).toBe("plans.exclude");
    expect(mismatch({ plans: { include: ["anonymous"], exclude: ["premium"] } }, { planSlugs: ["anonymous", "premium"] })).toBe("plans.exclude");
  });

  it("countries: the request's country must be listed; no country never matches", () => {
    expect(mismatch({ countries: ["DE", "AT"] })).toBeNull();
    expect(mismatch({ countries: ["US"] })).toBe("countries");
    expect(mismatch({ countries: ["DE"] }, { country: undefined })).toBe("countries");
  });

  it("featureState.hasAccess: meterable and credits hasAccess, boolean value", () => {
    expect(mismatch({ featureState: { property: "articles.enabled", hasAccess: false } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.enabled", hasAccess: true } })).toMatch(/^featureState.hasAccess/);
    expect(mismatch({ featureState: { property: "articles.enabled", hasAccess: false } }, { features: featuresWith(meterable(true, 1)) })).toMatch(/^featureState.hasAccess/);
    expect(mismatch({ featureState: { property: "ai.tokens", hasAccess: true } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.premium", hasAccess: false } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.premium", hasAccess: true } })).toMatch(/^featureState.hasAccess/);
    expect(mismatch({ featureState: { property: "articles.missing", hasAccess: true } })).toBe("featureState: articles.missing is not in the decision");
    expect(mismatch({ featureState: { property: "articles.quality", hasAccess: true } })).toBe("featureState.hasAccess: articles.quality is a string property");
    expect(mismatch({ featureState: { property: "nothing.enabled", hasAccess: true } })).toMatch(/not in the decision/);
  });

  it("featureState.consumedAtLeast / consumedBelow on consumedUnits; a fallback reading without it matches neither", () => {
    expect(mismatch({ featureState: { property: "articles.enabled", consumedAtLeast: 3 } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.enabled", consumedAtLeast: 4 } })).toMatch(/^featureState.consumedAtLeast/);
    expect(mismatch({ featureState: { property: "articles.enabled", consumedBelow: 4 } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.enabled", consumedBelow: 3 } })).toMatch(/^featureState.consumedBelow/);
    const fallback = { features: featuresWith(meterable(true)) };
    expect(mismatch({ featureState: { property: "articles.enabled", consumedAtLeast: 0 } }, fallback)).toMatch(/no usage reading/);
    expect(mismatch({ featureState: { property: "articles.enabled", consumedBelow: 100 } }, fallback)).toMatch(/no usage reading/);
  });

  it("featureState.equals compares value properties", () => {
    expect(mismatch({ featureState: { property: "articles.quality", equals: "standard" } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.quality", equals: "ultra" } })).toBe('featureState.equals: articles.quality is "standard"');
    expect(mismatch({ featureState: { property: "articles.premium", equals: false } })).toBeNull();
    expect(mismatch({ featureState: { property: "articles.enabled", equals: true } })).toMatch(/^featureState.equals/);
  });

  it("reports the first failing condition", () => {
    expect(mismatch({ userTypes: ["authenticated"], countries: ["US"] })).toBe("userTypes");
  });
});

const checkout = (stripePriceId: string) => ({ method: "checkout" as const, plan: "premium", stripePriceId });

const OFFERS: ConfigDocumentInput = {
  ...NEWS_SITE,
  offers: {
    "used-up": {
      presentation: { title: "Keep reading", callToAction: "Subscribe" },
      price: { currency: "usd", amount: 999, interval: "month" },
      redemption: checkout("price_monthly"),
      targeting: { featureState: { property: "articles.enabled", hasAccess: false } },
    },
    yearly: {
      presentation: { title: "A year of reading", priceDisplay: "$99 a year" },
      price: { currency: "usd", amount: 9900, interval: "year" },
      redemption: checkout("price_yearly"),
    },
    germany: {
      presentation: { title: "Für Leser in Deutschland", priceDisplay: "8 € im Monat" },
      price: {
        currency: "eur",
        amount: 800,
        interval: "month",
        adjustments: [
          { when: { plans: { include: ["registered"] } }, amount: 500 },
          { when: { userTypes: ["anonymous"] }, multiplier: 0.755 },
        ],
      },
      redemption: checkout("price_eur"),
      targeting: { countries: ["DE"] },
    },
    "ab-test": {
      presentation: { title: "Control", description: "The offer itself", priceDisplay: "$10 once" },
      price: { currency: "usd", amount: 1000 },
      redemption: checkout("price_control"),
      variants: {
        cheap: { testGroups: { from: 0, to: 49 }, presentation: { title: "Cheaper" }, price: { currency: "usd", amount: 700 }, stripePriceId: "price_cheap" },
        "same-price": { testGroups: { from: 50, to: 59 }, presentation: { description: "Same price, other words" } },
        "own-text": { testGroups: { from: 60, to: 69 }, presentation: { priceDisplay: "Six dollars" }, price: { currency: "usd", amount: 600 } },
      },
    },
    bundle: {
      presentation: { title: "Everything" },
      price: {
        currency: "usd",
        bundle: {
          items: [
            { name: "News", stripeProductId: "prod_news", amount: 333 },
            { name: "Puzzles", stripeProductId: "prod_puzzles", amount: 333 },
            { name: "Cooking", stripeProductId: "prod_cooking", amount: 334 },
          ],
          multiplier: 0.85,
        },
        adjustments: [{ when: { countries: ["US"] }, multiplier: 0.5 }],
      },
      redemption: { method: "checkout" },
    },
    "yen-once": {
      presentation: { title: "One issue" },
      price: { currency: "jpy", amount: 500 },
      redemption: checkout("price_yen"),
    },
    "for-bots": {
      presentation: { title: "Licence for crawlers" },
      price: { currency: "usd", amount: 100 },
      redemption: checkout("price_bots"),
      targeting: { userTypes: ["bot"], botCategories: ["ai-crawler"] },
    },
  },
  offerGroups: {
    paywall: { name: "Paywall", slots: [{ name: "main", offers: ["used-up", "yearly"] }, { offers: ["used-up", "yearly", "germany"] }, { offers: ["for-bots"] }] },
    other: { slots: [{ offers: ["yearly"] }] },
  },
  surfaces: {
    "article-page": { consumes: ["articles.enabled"], offerGroups: ["paywall"], components: { sidebar: { offerGroups: ["other", "paywall"] } } },
  },
};

describe("offer groups and slots", async () => {
  const prepared = await preparedOf(OFFERS);

  it("never shows a subscription change to an anonymous visitor: there is no subscription to change", async () => {
    const document = structuredClone(OFFERS) as Record<string, any>;
    document.offers.upgrade = {
      presentation: { title: "Upgrade" },
      price: { currency: "usd", amount: 1500, interval: "month" },
      redemption: { method: "subscription_change", plan: "premium", stripePriceId: "price_upgrade" },
    };
    document.offerGroups.upgrades = { slots: [{ offers: ["upgrade"] }] };
    const withUpgrade = await preparedOf(document as ConfigDocumentInput);
    const anonymous = resolveOfferGroups(withUpgrade, ["upgrades"], facts());
    expect(anonymous.groups[0]!.slots[0]!.offer).toBeNull();
    expect(anonymous.filtered).toEqual([{ offer: "upgrade", reason: "redemption: needs a signed-in identity" }]);
    const signedIn = resolveOfferGroups(withUpgrade, ["upgrades"], facts({ identity: { isAuthenticated: true, testGroup100: 50 }, planSlugs: ["registered"] }));
    expect(signedIn.groups[0]!.slots[0]!.offer?.offer).toBe("upgrade");
  });

  it("each slot shows the first eligible offer of its list not shown by an earlier slot of the group", () => {
    const { groups } = resolveOfferGroups(prepared, ["paywall"], facts());
    expect(groups).toHaveLength(1);
    expect(groups[0]!.name).toBe("Paywall");
    expect(groups[0]!.slots.map((slot) => [slot.slot, slot.name, slot.offer?.offer ?? null])).toEqual([
      [0, "main", "used-up"],
      [1, null, "yearly"],
      [2, null, null],
    ]);
  });

  it("an ineligible first choice moves the slot to the next; the trace says why it was filtered", () => {
    const { groups, filtered } = resolveOfferGroups(prepared, ["paywall"], facts({ features: featuresWith(meterable(true, 1)), country: "FR" }));
    expect(groups[0]!.slots.map((slot) => slot.offer?.offer ?? null)).toEqual(["yearly", null, null]);
    expect(filtered).toEqual([
      { offer: "used-up", reason: "featureState.hasAccess: articles.enabled has access" },
      { offer: "germany", reason: "countries" },
      { offer: "for-bots", reason: "userTypes" },
    ]);
  });

  it("a verified bot of the category sees the bots' offer", () => {
    const { groups } = resolveOfferGroups(prepared, ["paywall"], facts({ bot: VERIFIED_CRAWLER }));
    expect(groups[0]!.slots[2]!.offer?.offer).toBe("for-bots");
  });

  it("groups are resolved in the order asked; unknown groups are left out; the same offer may show in two groups", () => {
    const { groups } = resolveOfferGroups(prepared, ["other", "nope", "paywall"], facts());
    expect(groups.map((group) => group.slug)).toEqual(["other", "paywall"]);
    expect(groups[0]!.name).toBe("other");
    expect(groups[0]!.slots[0]!.offer?.offer).toBe("yearly");
    expect(groups[1]!.slots[1]!.offer?.offer).toBe("yearly");
  });

  it("the surface's groups with its components', each once", () => {
    expect(offerGroupsOfSurface(prepared.surfaceBySlug.get("article-page")!)).toEqual(["paywall", "other"]);
    expect(offerGroupsOfSurface({ components: [] })).toEqual([]);
  });

  it("a snapshot without offers (compiled before they existed) resolves nothing", async () => {
    const old = await snapshotOf(NEWS_SITE);
    delete old.offers;
    delete old.offerGroups;
    const preparedOld = prepareSnapshot(old);
    expect(preparedOld.offerBySlug.size).toBe(0);
    expect(preparedOld.offerGroupBySlug.size).toBe(0);
    expect(resolveOfferGroups(preparedOld, ["paywall"], facts())).toEqual({ groups: [], filtered: [] });
    expect(offerGroupsOfSurface(preparedOld.surfaceBySlug.get("article-page")!)).toEqual([]);
  });
});

describe("variants and prices", async () => {
  const prepared = await preparedOf(OFFERS);
  const offer = (slug: string) => prepared.offerBySlug.get(slug)!;
  const inBucket = (testGroup100: number, overrides: Partial<OfferFacts> = {}) => facts({ identity: { isAuthenticated: false, testGroup100 }, ...overrides });

  it("the variant by testGroup100 within [from, to], its presentation over the offer's, its price and Stripe price", () => {
    for (const bucket of [0, 49]) {
      const resolved = resolveOffer(offer("ab-test"), inBucket(bucket));
      expect(resolved.variant).toBe("cheap");
      expect(resolved.presentation).toEqual({ title: "Cheaper", description: "The offer itself", priceDisplay: "$10 once" });
      // The offer's price text describes the offer's price, not the variant's: the variant's price is formatted.
      expect(resolved.price).toEqual({ amount: 700, currency: "usd", adjusted: false, display: "$7.00" });
      expect(offerViewOf(resolved, "t", "x").priceDisplay).toBe("$7.00");
      expect(resolved.stripePriceId).toBe("price_cheap");
    }
    const same = resolveOffer(offer("ab-test"), inBucket(55));
    expect(same.variant).toBe("same-price");
    expect(same.presentation).toEqual({ title: "Control", description: "Same price, other words", priceDisplay: "$10 once" });
    expect(same.price).toMatchObject({ amount: 1000, display: "$10 once" });
    const ownText = resolveOffer(offer("ab-test"), inBucket(65));
    expect(ownText.price).toMatchObject({ amount: 600, display: "Six dollars" });
    // A variant with a price but no Stripe price of its own is never charged by the offer's Stripe price.
    expect(ownText.stripePriceId).toBeNull();
    expect(same.stripePriceId).toBe("price_control");
    const control = resolveOffer(offer("ab-test"), inBucket(70));
    expect(control.variant).toBeNull();
    expect(control.presentation.title).toBe("Control");
    expect(control.stripePriceId).toBe("price_control");
    expect(control.fingerprint).toBe(offer("ab-test").fingerprint);
  });

  it("the first matching adjustment applies: an amount replaces, a multiplier multiplies (rounded to minor units)", () => {
    const registered = resolveOffer(offer("germany"), facts({ planSlugs: ["registered"], identity: { isAuthenticated: true, testGroup100: 3 } }));
    // An adjusted amount is not what the configured text says: it is formatted instead.
    expect(registered.price).toMatchObject({ amount: 500, adjusted: true, display: "€5.00 / month" });
    expect(registered.stripePriceId).toBeNull();
    const anonymous = resolveOffer(offer("germany"), facts());
    expect(anonymous.price).toMatchObject({ amount: 604, adjusted: true });
    // Both match: the first listed wins.
    const both = resolveOffer(offer("germany"), facts({ planSlugs: ["registered"] }));
    expect(both.price?.amount).toBe(500);
    const none = resolveOffer(offer("germany"), facts({ planSlugs: ["premium"], identity: { isAuthenticated: true, testGroup100: 3 } }));
    expect(none.price).toMatchObject({ amount: 800, adjusted: false, display: "8 € im Monat" });
    expect(none.stripePriceId).toBe("price_eur");
  });

  it("a bundle: each item rounded at the multiplier, the amount their sum; never a fixed Stripe price", () => {
    const resolved = resolveOffer(offer("bundle"), facts());
    expect(resolved.price).toEqual({
      amount: 283 + 283 + 284,
      currency: "usd",
      adjusted: false,
      items: [
        { name: "News", stripeProductId: "prod_news", amount: 283 },
        { name: "Puzzles", stripeProductId: "prod_puzzles", amount: 283 },
        { name: "Cooking", stripeProductId: "prod_cooking", amount: 284 },
      ],
      display: "$8.50",
    });
    expect(resolved.stripePriceId).toBeNull();
    const adjusted = resolveOffer(offer("bundle"), facts({ country: "US" }));
    // 333 × 0.425 = 141.525 → 142; 334 × 0.425 = 141.95 → 142.
    expect(adjusted.price?.items?.map((item) => item.amount)).toEqual([142, 142, 142]);
    expect(adjusted.price).toMatchObject({ amount: 426, adjusted: true });
  });

  it("a bundle under an amount adjustment: shares in whole units that add up, none below zero", () => {
    const items = (amounts: number[]) => amounts.map((amount, index) => ({ name: `i${index}`, stripeProductId: `prod_${index}`, amount }));
    const priced = (amounts: number[], total: number) =>
      resolvePrice({ currency: "usd", bundle: { items: items(amounts), multiplier: 1 }, adjustments: [{ when: {}, amount: total }] }, {}, facts()).items?.map((item) => item.amount);
    // Rounding each share to nearest would give [1, 1, 1, -1].
    expect(priced([1, 1, 1, 1], 2)).toEqual([1, 1, 0, 0]);
    expect(priced([333, 333, 334], 1000)).toEqual([333, 333, 334]);
    expect(priced([100, 200, 300], 7)).toEqual([1, 2, 4]);
    // Free items share the total evenly.
    expect(priced([0, 0, 0], 10)).toEqual([4, 3, 3]);
    for (const total of [0, 1, 5, 999]) expect(priced([3, 1, 1], total)!.reduce((a, b) => a + b, 0)).toBe(total);
  });

  it("display: the presentation's priceDisplay, else the amount in its currency with the interval", () => {
    expect(resolveOffer(offer("yearly"), facts()).price?.display).toBe("$99 a year");
    expect(resolveOffer(offer("used-up"), facts()).price?.display).toBe("$9.99 / month");
    expect(resolveOffer(offer("yen-once"), facts()).price?.display).toBe("¥500");
    expect(formatPrice(123456, "eur", "week")).toBe("€1,234.56 / week");
    expect(formatPrice(5, "usd", "day")).toBe("$0.05 / day");
  });

  it("the view: presentation, price and method with the token; nothing absent is invented", () => {
    const view = offerViewOf(resolveOffer(offer("used-up"), facts()), "tok", "2026-06-15T12:30:00.000Z");
    expect(view).toEqual({
      offer: "used-up",
      variant: null,
      title: "Keep reading",
      priceDisplay: "$9.99 / month",
      callToAction: "Subscribe",
      price: { amount: 999, currency: "usd", interval: "month" },
      redemption: { method: "checkout" },
      token: "tok",
      expiresAt: "2026-06-15T12:30:00.000Z",
    });
    const bundle = offerViewOf(resolveOffer(offer("bundle"), facts()), "t", "x");
    expect(bundle.price?.items).toEqual([
      { name: "News", amount: 283 },
      { name: "Puzzles", amount: 283 },
      { name: "Cooking", amount: 284 },
    ]);
  });
});

describe("the offer types workflow authors see", () => {
  it("are the engine's, both ways (authorTypes spells them out for the generated declarations)", async () => {
    const prepared = await preparedOf(OFFERS);
    const engineView: OfferView = offerViewOf(resolveOffer(prepared.offerBySlug.get("bundle")!, facts()), "t", "x");
    const authorView: AuthorOfferView = engineView;
    const back: OfferView = authorView;
    const groups: AuthorOfferGroupsView = { g: { name: "G", slots: [{ slot: 0, name: null, offer: back }] } };
    const engineGroups: OfferGroupsView = groups;
    expect(engineGroups.g!.slots[0]!.offer).toBe(engineView);
  });
});

describe("the offers stage", () => {
  const stageServices = (mint: Services["offerTokens"]["mint"], errors: string[] = []) =>
    ({
      clock: { now: () => NOW },
      timing: { mark: () => {} },
      logger: { warn: () => {}, error: (event: string) => errors.push(event) },
      offerTokens: { mint },
    }) as unknown as Services;
  const contextFor = async (surface: string) => {
    const prepared = await preparedOf(OFFERS);
    return {
      prepared,
      environment: { id: "env_test" },
      identity: { identifier: "visitor-1", isAuthenticated: false, testGroup100: 50, authType: "anonymous", jwtClaims: {} },
      bot: undefined,
      facts: { cf: { country: "DE" } },
      decision: { planSlugs: ["anonymous"], surface: prepared.surfaceBySlug.get(surface) },
      features: featuresWith(meterable(false, 3)),
    } as never;
  };
  let minted = 0;
  const mint: Services["offerTokens"]["mint"] = async (input) => {
    minted++;
    return { token: `token-${input.offer}-${input.slot}`, claims: { ...input, jti: `jti-${input.offer}-${input.group}-${input.slot}`, iat: 1, exp: 1_800_000_000 } };
  };

  it("mints one token per shown offer, keeps slot order, and lists the impressions", async () => {
    minted = 0;
    const result = (await resolveOffers(stageServices(mint), await contextFor("article-page"))) as any;
    expect(Object.keys(result.offers.views)).toEqual(["paywall", "other"]);
    expect(result.offers.views.paywall.slots.map((slot: any) => slot.offer?.token ?? null)).toEqual(["token-used-up-0", "token-yearly-1", null]);
    expect(minted).toBe(3);
    expect(result.offers.impressions).toEqual([
      { group: "paywall", slot: 0, offer: "used-up", variant: null, tokenId: "jti-used-up-paywall-0", amount: 999, currency: "usd" },
      { group: "paywall", slot: 1, offer: "yearly", variant: null, tokenId: "jti-yearly-paywall-1", amount: 9900, currency: "usd" },
      { group: "other", slot: 0, offer: "yearly", variant: null, tokenId: "jti-yearly-other-0", amount: 9900, currency: "usd" },
    ]);
    expect(result.offers.views.paywall.slots[0].offer.expiresAt).toBe(new Date(1_800_000_000_000).toISOString());
  });

  it("a surface naming no group mints nothing and shows {}", async () => {
    minted = 0;
    const prepared = await preparedOf({ ...OFFERS, surfaces: { "article-page": { consumes: ["articles.enabled"] } } });
    const context = { ...((await contextFor("article-page")) as object), prepared, decision: { planSlugs: [], surface: prepared.surfaceBySlug.get("article-page") } } as never;
    const result = resolveOffers(stageServices(mint), context) as any;
    expect(result).not.toBeInstanceOf(Promise);
    expect(result.offers.views).toEqual({});
    expect(result.offers.impressions).toEqual([]);
    expect(minted).toBe(0);
  });

  it("tokens that cannot be minted leave the groups' slots empty and log an error, never failing the decision", async () => {
    const errors: string[] = [];
    const result = (await resolveOffers(
      stageServices(async () => {
        throw new Error("bad secret");
      }, errors),
      await contextFor("article-page"),
    )) as any;
    expect(result.offers.views.paywall.slots.map((slot: any) => slot.offer)).toEqual([null, null, null]);
    expect(result.offers.impressions).toEqual([]);
    expect(errors).toEqual(["offer_tokens_not_minted"]);
  });
});

describe("offer configuration checks", () => {
  const withCondition = (featureState: Record<string, unknown>) => {
    const document = structuredClone(OFFERS) as Record<string, any>;
    document.offers.yearly.targeting = { featureState };
    return ConfigDocument.safeParse(document);
  };
  const messagesOf = (result: ReturnType<typeof withCondition>) => (result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));

  it("refuses a feature-state condition the property's kind can never satisfy, naming the field", () => {
    expect(withCondition({ property: "articles.enabled", hasAccess: false }).success).toBe(true);
    expect(withCondition({ property: "articles.enabled", consumedAtLeast: 2 }).success).toBe(true);
    expect(withCondition({ property: "articles.quality", equals: "high" }).success).toBe(true);
    expect(messagesOf(withCondition({ property: "articles.quality", hasAccess: true }))).toEqual([
      "offers.yearly.targeting.featureState.hasAccess: hasAccess applies to enabled, credits and boolean properties; articles.quality is a string property",
    ]);
    expect(messagesOf(withCondition({ property: "articles.premium", consumedBelow: 3 }))).toEqual([
      "offers.yearly.targeting.featureState.consumedBelow: usage conditions apply to metered enabled properties; articles.premium is a boolean property",
    ]);
    expect(messagesOf(withCondition({ property: "articles.premium", equals: "yes" }))).toEqual([
      "offers.yearly.targeting.featureState.equals: articles.premium is a boolean property: equals must be a boolean",
    ]);
    expect(messagesOf(withCondition({ property: "articles.quality", equals: "extreme" }))).toEqual([
      "offers.yearly.targeting.featureState.equals: must be one of articles.quality's values (standard, high, ultra)",
    ]);
    expect(messagesOf(withCondition({ property: "articles.enabled", equals: true }))[0]).toMatch(/equals applies to boolean, number and string properties/);
  });
});
