/**
 * Offers in surface decisions: the groups a surface and its components name, each slot resolved for the identity
 * (targeting by feature state, plans, country, verified bot category; A/B variants by testGroup100), each shown offer
 * with a token bound to the identity and the price; the impressions on the decision record; component workflows
 * receiving their groups; `utils.offers.list` in a surface workflow.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { testGroup100 } from "../../../workers/engine/testGroup";
import { verifyOfferToken } from "../../../workers/offers/tokens";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";

const GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot";

const checkout = (stripePriceId: string) => ({ method: "checkout", plan: "premium", stripePriceId });

const COMPONENT_WORKFLOW = `export default ({ offers }) => {
  const shown = Object.values(offers).flatMap((group) => group.slots.flatMap((slot) => (slot.offer ? [slot.offer] : [])));
  return { properties: { groups: Object.keys(offers) }, content: { append: shown.map((offer) => ({ type: "element", schema: "offer", props: offer })) } };
};`;

const SURFACE_WORKFLOW = `export default async ({ utils }) => {
  const all = await utils.offers.list();
  const inGroup = await utils.offers.list({ groups: ["sidebar-group"] });
  const named = await utils.offers.list({ offers: ["yearly", "used-up", "nope"] });
  return { properties: { all: all.map((offer) => offer.offer), inGroup: inGroup.map((offer) => offer.offer), named: named.map((offer) => offer.offer), token: all[0]?.token ?? null } };
};`;

const FEATURE_WORKFLOW = `export default async ({ utils }) => {
  try {
    await utils.offers.list();
    return { premium: true };
  } catch (error) {
    return { premium: false, label: String(error.message ?? error).slice(0, 200) };
  }
};`;

function document() {
  return {
    features: {
      articles: {
        properties: {
          enabled: { type: "enabled", fallback: "off", onMeterFailure: "open" },
          premium: { type: "boolean", fallback: false },
          label: { type: "string", fallback: "" },
        },
      },
    },
    plans: {
      anonymous: { autoAssign: ["anonymous"], features: { articles: { enabled: { metered: { limit: 2, period: "month", uniqueResources: true } } } } },
      registered: { autoAssign: ["authenticated"], features: { articles: { enabled: "on" } } },
      premium: { stripeProductIds: ["prod_premium"], features: { articles: { enabled: "on", premium: true } } },
      crawlers: { autoAssign: ["ai-agent"], features: { articles: { enabled: "on" } } },
    },
    surfaces: {
      "article-page": {
        consumes: ["articles.enabled"],
        offerGroups: ["paywall"],
        components: { sidebar: { cssSelector: "#sidebar", offerGroups: ["sidebar-group"] }, footer: {} },
      },
      plain: { consumes: ["articles.enabled"] },
    },
    offers: {
      "used-up": {
        presentation: { title: "Keep reading", callToAction: "Subscribe" },
        price: { currency: "usd", amount: 999, interval: "month" },
        redemption: checkout("price_monthly"),
        targeting: { featureState: { property: "articles.enabled", hasAccess: false } },
        variants: {
          "lower-price": { testGroups: { from: 0, to: 49 }, presentation: { title: "Keep reading for less" }, price: { currency: "usd", amount: 799, interval: "month" }, stripePriceId: "price_lower" },
        },
      },
      yearly: {
        presentation: { title: "A year of reading" },
        price: { currency: "usd", amount: 9900, interval: "year" },
        redemption: checkout("price_yearly"),
        targeting: { plans: { include: ["anonymous", "registered"], exclude: ["premium"] } },
      },
      germany: {
        presentation: { title: "Angebot für Deutschland" },
        price: { currency: "eur", amount: 500, interval: "month" },
        redemption: checkout("price_eur"),
        targeting: { countries: ["DE"] },
      },
      crawler: {
        presentation: { title: "Crawl licence" },
        price: { currency: "usd", amount: 100 },
        redemption: checkout("price_crawl"),
        targeting: { userTypes: ["bot"], botCategories: ["ai-crawler"] },
      },
    },
    offerGroups: {
      paywall: { name: "Paywall", slots: [{ name: "first", offers: ["used-up", "crawler", "yearly"] }, { name: "second", offers: ["used-up", "yearly"] }] },
      "sidebar-group": { slots: [{ offers: ["germany"] }] },
    },
    workflows: {
      sidebar: { type: "component", surface: "article-page", component: "sidebar", source: COMPONENT_WORKFLOW },
      lister: { type: "surface", surface: "article-page", source: SURFACE_WORKFLOW },
      early: { type: "feature", feature: "articles", source: FEATURE_WORKFLOW },
      payers: { type: "provisioning", source: `export default ({ identity }) => (identity.identifier.startsWith("payer-") ? ["premium"] : []);` },
    },
  };
}

let org: TestOrganization;
const key = () => org.live.secretKey;

type Body = Record<string, unknown>;
const decide = (identity: Body, extra: Body = {}, surfaceSlug = "article-page") =>
  call("POST", "/api/v1/surface-decisions", { key: key(), body: { surfaceSlug, identity, ...extra } });
const slotsOf = (body: any, group = "paywall") => body.offers[group].slots.map((slot: any) => slot.offer?.offer ?? null);

/** An anonymous identifier whose testGroup100 satisfies `wanted`. */
function identifierIn(wanted: (bucket: number) => boolean): string {
  for (;;) {
    const identifier = `visitor-${crypto.randomUUID()}`;
    if (wanted(testGroup100(identifier))) return identifier;
  }
}

beforeAll(async () => {
  org = await createOrganization("Offers in decisions");
  await publish(org.adminKey, document(), [org.live.id]);
});

describe("offer groups in surface decisions", () => {
  it("an anonymous visitor who used up their articles sees the targeted offer in the first slot; before, it is absent", async () => {
    const visitor = { anonymousIdentifier: identifierIn((bucket) => bucket >= 50) };
    for (const article of ["a1", "a2"]) {
      const before = await decide(visitor, { resource: { id: article } });
      expect(before.status, JSON.stringify(before.body)).toBe(200);
      expect(before.body.features.articles.properties.enabled.hasAccess).toBe(true);
      expect(before.body.offers.paywall.name).toBe("Paywall");
      expect(before.body.offers.paywall.slots.map((slot: any) => [slot.slot, slot.name])).toEqual([
        [0, "first"],
        [1, "second"],
      ]);
      expect(slotsOf(before.body)).toEqual(["yearly", null]);
    }
    const after = await decide(visitor, { resource: { id: "a3" } });
    expect(after.body.features.articles.properties.enabled.hasAccess).toBe(false);
    expect(slotsOf(after.body)).toEqual(["used-up", "yearly"]);
    const shown = after.body.offers.paywall.slots[0].offer;
    expect(shown).toMatchObject({
      offer: "used-up",
      variant: null,
      title: "Keep reading",
      priceDisplay: "$9.99 / month",
      callToAction: "Subscribe",
      price: { amount: 999, currency: "usd", interval: "month" },
      redemption: { method: "checkout" },
    });
    expect(Date.parse(shown.expiresAt)).toBeGreaterThan(Date.now());
  });

  it("the token verifies and binds the environment, the identity, the offer, its place and its price", async () => {
    const identifier = identifierIn((bucket) => bucket >= 50);
    await decide({ anonymousIdentifier: identifier }, { resource: { id: "a1" } });
    await decide({ anonymousIdentifier: identifier }, { resource: { id: "a2" } });
    const decision = await decide({ anonymousIdentifier: identifier }, { resource: { id: "a3" } });
    const [first, second] = decision.body.offers.paywall.slots;
    const checked = await verifyOfferToken(env.SECRETS_KEY, org.live.id, first.offer.token, Date.now());
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(checked.claims).toMatchObject({ env: org.live.id, offer: "used-up", variant: null, group: "paywall", slot: 0, sub: identifier, anon: true, amt: 999, cur: "usd", int: "month" });
    expect(checked.claims.fp).toMatch(/^[0-9a-f]{64}$/);
    expect(new Date(checked.claims.exp * 1000).toISOString()).toBe(first.offer.expiresAt);
    // Another environment's key does not verify it.
    expect((await verifyOfferToken(env.SECRETS_KEY, org.preview.id, first.offer.token, Date.now())).ok).toBe(false);
    const secondClaims = await verifyOfferToken(env.SECRETS_KEY, org.live.id, second.offer.token, Date.now());
    expect(secondClaims.ok && secondClaims.claims).toMatchObject({ offer: "yearly", slot: 1, amt: 9900, int: "year" });
    expect(secondClaims.ok && secondClaims.claims.jti).not.toBe(checked.claims.jti);

    // The record carries the impressions: one per shown offer, with the token's id.
    const events = await eventsFor(key(), `identifier=${identifier}&kind=surface_decision`, 3);
    const latest = events.find((event) => event.id === decision.body.eventId);
    expect(latest.record.offers).toEqual([
      { group: "paywall", slot: 0, offer: "used-up", variant: null, tokenId: checked.claims.jti, amount: 999, currency: "usd" },
      { group: "paywall", slot: 1, offer: "yearly", variant: null, tokenId: secondClaims.ok ? secondClaims.claims.jti : "", amount: 9900, currency: "usd" },
    ]);
    // The trace: offers considered and not shown (the crawler offer never was: the slot above it was filled first).
    expect(latest.record.offersFiltered).toEqual([{ offer: "germany", reason: "countries" }]);
  });

  it("plans: include and exclude (exclude wins); a signed-in user is shown the offer, a premium customer is not", async () => {
    const registered = await decide({ userIdentifier: `reader-${crypto.randomUUID()}@example.com` });
    expect(slotsOf(registered.body)).toEqual(["yearly", null]);
    // registered (included) and premium (excluded): exclude wins.
    const premium = await decide({ userIdentifier: `payer-${crypto.randomUUID()}@example.com` });
    expect(premium.status, JSON.stringify(premium.body)).toBe(200);
    expect(slotsOf(premium.body)).toEqual([null, null]);
  });

  it("country from cloudflare.cf.country; a request without one never matches", async () => {
    const german = await decide({ anonymousIdentifier: `visitor-${crypto.randomUUID()}` }, { cloudflare: { cf: { country: "DE" } } });
    expect(slotsOf(german.body, "sidebar-group")).toEqual(["germany"]);
    expect(german.body.offers["sidebar-group"].name).toBe("sidebar-group");
    const french = await decide({ anonymousIdentifier: `visitor-${crypto.randomUUID()}` }, { cloudflare: { cf: { country: "FR" } } });
    expect(slotsOf(french.body, "sidebar-group")).toEqual([null]);
    const nowhere = await decide({ anonymousIdentifier: `visitor-${crypto.randomUUID()}` });
    expect(slotsOf(nowhere.body, "sidebar-group")).toEqual([null]);
  });

  it("a verified bot of the category sees the crawler offer; the same user agent unverified does not", async () => {
    const verified = await decide(
      { anonymousIdentifier: `bot-${crypto.randomUUID()}` },
      { http: { userAgent: GPTBOT }, cloudflare: { cf: { verifiedBotCategory: "AI Crawler", botManagement: { verifiedBot: true } } } },
    );
    expect(slotsOf(verified.body)[0]).toBe("crawler");
    const unverified = await decide({ anonymousIdentifier: `bot-${crypto.randomUUID()}` }, { http: { userAgent: GPTBOT } });
    expect(slotsOf(unverified.body)[0]).not.toBe("crawler");
  });

  it("the A/B variant by testGroup100: its presentation, price and token amount", async () => {
    const inVariant = identifierIn((bucket) => bucket <= 49);
    for (const article of ["a1", "a2", "a3"]) await decide({ anonymousIdentifier: inVariant }, { resource: { id: article } });
    const variant = await decide({ anonymousIdentifier: inVariant }, { resource: { id: "a4" } });
    const shown = variant.body.offers.paywall.slots[0].offer;
    expect(shown).toMatchObject({ offer: "used-up", variant: "lower-price", title: "Keep reading for less", priceDisplay: "$7.99 / month", price: { amount: 799 } });
    const checked = await verifyOfferToken(env.SECRETS_KEY, org.live.id, shown.token, Date.now());
    expect(checked.ok && checked.claims).toMatchObject({ variant: "lower-price", amt: 799, sub: inVariant });
  });

  it("a component workflow receives its own groups and places an element item in its content", async () => {
    const decision = await decide({ anonymousIdentifier: `visitor-${crypto.randomUUID()}` }, { cloudflare: { cf: { country: "DE" } } });
    const sidebar = decision.body.componentBehaviors.sidebar;
    expect(sidebar.properties).toEqual({ groups: ["sidebar-group"] });
    expect(sidebar.content.append).toEqual([{ type: "element", schema: "offer", props: decision.body.offers["sidebar-group"].slots[0].offer }]);
    expect(sidebar.metadata).toEqual({ cssSelector: "#sidebar" });
  });

  it("utils.offers.list in a surface workflow: every eligible offer, by groups, by slugs, with tokens; a feature workflow's call rejects", async () => {
    const identifier = `visitor-${crypto.randomUUID()}`;
    const decision = await decide({ anonymousIdentifier: identifier }, { cloudflare: { cf: { country: "DE" } } });
    expect(decision.body.surfaceBehavior.properties).toMatchObject({ all: ["germany", "yearly"], inGroup: ["germany"], named: ["yearly"] });
    const checked = await verifyOfferToken(env.SECRETS_KEY, org.live.id, decision.body.surfaceBehavior.properties.token, Date.now());
    expect(checked.ok && checked.claims).toMatchObject({ offer: "germany", group: null, slot: null, sub: identifier, amt: 500, cur: "eur" });
    expect(decision.body.features.articles.properties.premium.value).toBe(false);
    expect(decision.body.features.articles.properties.label.value).toMatch(/available to surface and component workflows only/);
  });

  it("a surface without groups returns offers: {}; access checks have no offers", async () => {
    const plain = await decide({ anonymousIdentifier: `visitor-${crypto.randomUUID()}` }, {}, "plain");
    expect(plain.status).toBe(200);
    expect(plain.body.offers).toEqual({});
    const check = await call("POST", "/api/v1/access-checks", { key: key(), body: { identity: { anonymousIdentifier: "x" } } });
    expect(check.status).toBe(200);
    expect(check.body).not.toHaveProperty("offers");
  });

  it("a version without offers at all returns offers: {} and records no impressions", async () => {
    const other = await createOrganization("No offers");
    const plain = document() as Record<string, any>;
    delete plain.offers;
    delete plain.offerGroups;
    delete plain.workflows;
    delete plain.surfaces["article-page"].offerGroups;
    delete plain.surfaces["article-page"].components.sidebar.offerGroups;
    await publish(other.adminKey, plain, [other.live.id]);
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: other.live.secretKey,
      body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "no-offers" } },
    });
    expect(decision.status).toBe(200);
    expect(decision.body.offers).toEqual({});
    const [recorded] = await eventsFor(other.live.secretKey, "identifier=no-offers&kind=surface_decision");
    expect(recorded.record.offers).toEqual([]);
    expect(recorded.record).not.toHaveProperty("offersFiltered");
  });
});
