import { describe, expect, it } from "vitest";
import { decide, enabledOrderKey, prepareSnapshot, SurfaceNotFoundError } from "../../workers/engine";
import { featureIdFor, NEWS_SITE, preparedOf, snapshotOf } from "./engineFixtures";

describe("prepareSnapshot", async () => {
  const prepared = await preparedOf(NEWS_SITE, "ver_news");

  it("indexes plans by slug, category and Stripe product, in plan order", () => {
    expect(prepared.versionId).toBe("ver_news");
    expect(prepared.plans.map((plan) => plan.slug)).toEqual(["ai-agents", "anonymous", "premium", "registered", "search-crawlers"]);
    expect(prepared.planBySlug.get("premium")?.slug).toBe("premium");
    expect(prepared.planBySlug.get("constructor")).toBeUndefined();
    expect(Object.fromEntries([...prepared.plansByCategory].map(([category, plans]) => [category, plans.map((plan) => plan.slug)]))).toEqual({
      anonymous: ["anonymous"],
      authenticated: ["registered"],
      "search-crawler": ["search-crawlers"],
      "ai-agent": ["ai-agents"],
    });
    expect(prepared.plansByStripeProductId.get("prod_premium_yearly")?.map((plan) => plan.slug)).toEqual(["premium"]);
    expect(prepared.plansByStripeProductId.get("prod_other")).toBeUndefined();
  });

  it("keeps features in order with their property definitions (enabled first)", () => {
    expect(prepared.features.map((feature) => feature.slug)).toEqual(["articles", "comments"]);
    const articles = prepared.featureBySlug.get("articles")!;
    expect(articles.id).toBe(featureIdFor("articles"));
    expect(prepared.featureById.get(articles.id)).toBe(articles);
    expect(articles.properties.map((property) => property.slug)).toEqual(["enabled", "premium", "quality"]);
    expect(articles.propertyBySlug.get("quality")?.valueRank?.get("ultra")).toBe(2);
    expect(articles.counterIds("default")).toEqual([`default:${articles.id}.enabled`, `default:${articles.id}.premium`, `default:${articles.id}.quality`]);
    expect(JSON.stringify({ definition: articles })).toBe(`{"definition":"${articles.id}"}`);
  });

  it("lists the surfaces some plan prices for crawlers (none in the news site; priced or forbidden ones otherwise)", async () => {
    expect([...prepared.pricedSurfaces]).toEqual([]);
    const snapshot = await snapshotOf(NEWS_SITE);
    const priced = prepareSnapshot({
      ...snapshot,
      plans: snapshot.plans.map((plan) => (plan.slug === "ai-agents" ? { ...plan, payPerCrawl: { "article-page": { currency: "USD", micros: 10_000 }, archive: null } } : plan)),
    });
    expect([...priced.pricedSurfaces].sort()).toEqual(["archive", "article-page"]);
  });

  it("survives a JSON round trip of the snapshot (as loaded from D1)", async () => {
    const fromJson = prepareSnapshot(JSON.parse(JSON.stringify(await snapshotOf(NEWS_SITE))));
    expect(fromJson.surfaceBySlug.get("article-page")?.consumes).toEqual([{ featureId: featureIdFor("articles"), featureSlug: "articles", property: "enabled" }]);
  });

  it("orders enabled settings off < metered (limit, then shorter period, then unique) < on", () => {
    const m = (limit: number, period: "minute" | "day" | "month" | "lifetime", uniqueResources = false) => enabledOrderKey({ kind: "metered", limit, period, uniqueResources });
    const ordered = [
      enabledOrderKey({ kind: "off" }),
      m(0, "lifetime"),
      m(0, "minute"),
      m(3, "lifetime"),
      m(3, "month"),
      m(3, "month", true),
      m(3, "day"),
      m(4, "lifetime"),
      m(1_000_000_000, "minute", true),
      enabledOrderKey({ kind: "on" }),
    ];
    expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
    expect(new Set(ordered).size).toBe(ordered.length);
  });
});

describe("decide: unknown surface", async () => {
  const prepared = await preparedOf(NEWS_SITE);
  it.each(["missing", "constructor", "toString"])("throws SurfaceNotFoundError for %s", (surfaceSlug) => {
    expect(() => decide({ prepared, storeId: "default", surfaceSlug })).toThrow(SurfaceNotFoundError);
    try {
      decide({ prepared, storeId: "default", surfaceSlug });
    } catch (error) {
      expect(error).toMatchObject({ code: "surface_not_found", surfaceSlug });
    }
  });
});
