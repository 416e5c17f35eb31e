import { describe, expect, it } from "vitest";
import { call, createOrganization, publish } from "../../support/api";
import { eventsFor } from "../../support/events";
import { newsSite } from "../../support/examples";

const GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot";

async function newsOrg() {
  const org = await createOrganization("News");
  await publish(org.adminKey, newsSite(), [org.live.id]);
  return org;
}

const check = (key: string, body: Record<string, unknown>) => call("POST", "/api/v1/access-checks", { key, body });

describe("plan provisioning", () => {
  it("stacks the auto-assigned plan with Stripe-linked plans and resolves conflicts", async () => {
    const org = await newsOrg();
    const key = org.live.secretKey;
    const registered = await check(key, { identity: { userIdentifier: "reader@example.com" } });
    expect(registered.body.features.articles.properties).toMatchObject({
      enabled: { type: "meterable", hasAccess: true, isFallback: false },
      premium: { type: "boolean", value: false, isFallback: true },
      quality: { type: "string", value: "high", isFallback: false },
    });
    expect(registered.body.customer).toEqual({ isCustomer: false, hasProducts: false, customerIdentifiers: [] });

    const put = await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/subscriber@example.com`, {
      key,
      body: { stripeCustomerId: "cus_123", stripeProductIds: ["prod_premium_monthly"] },
    });
    expect(put.status).toBe(200);
    const premium = await check(key, { identity: { userIdentifier: "subscriber@example.com" } });
    expect(premium.body.customer).toEqual({ isCustomer: true, hasProducts: true, customerIdentifiers: ["cus_123"] });
    expect(premium.body.features.articles.properties).toMatchObject({
      premium: { type: "boolean", value: true, isFallback: false },
      quality: { type: "string", value: "ultra", isFallback: false },
    });
    // Customers belong to the production store: the preview environment does not see them.
    await publish(org.adminKey, newsSite(), [org.preview.id]);
    const preview = await check(org.preview.secretKey, { identity: { userIdentifier: "subscriber@example.com" } });
    expect(preview.body.customer.isCustomer).toBe(false);
    expect(preview.body.features.articles.properties.enabled.counterId).toMatch(/^preview:feat_/);
  });

  it("gives crawler and agent plans only to verified bots", async () => {
    const org = await newsOrg();
    const key = org.live.secretKey;
    const verifiedGoogle = await check(key, {
      identity: { anonymousIdentifier: "crawler-1" },
      http: { userAgent: GOOGLEBOT },
      cloudflare: { cf: { verifiedBotCategory: "Search Engine Crawler", botManagement: { verifiedBot: true } } },
    });
    expect(verifiedGoogle.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, type: "meterable" });
    expect(verifiedGoogle.body.features.articles.properties.enabled.totalUnits).toBeUndefined();

    const spoofed = await check(key, { identity: { anonymousIdentifier: "crawler-2" }, http: { userAgent: GOOGLEBOT } });
    expect(spoofed.body.features.articles.properties.enabled).toMatchObject({ totalUnits: 3, uniqueResources: true });

    const gptbot = await check(key, {
      identity: { anonymousIdentifier: "agent-1" },
      http: { userAgent: GPTBOT },
      cloudflare: { cf: { verifiedBotCategory: "AI Crawler", botManagement: { verifiedBot: true } } },
    });
    expect(gptbot.body.features.articles.properties.enabled).toMatchObject({ totalUnits: 10 });

    // A publishable key (a browser) cannot vouch for a bot through the body.
    const forged = await check(org.live.publishableKey, {
      identity: { anonymousIdentifier: "crawler-3" },
      http: { userAgent: GOOGLEBOT },
      cloudflare: { cf: { verifiedBotCategory: "Search Engine Crawler", botManagement: { verifiedBot: true } } },
    });
    expect(forged.body.features.articles.properties.enabled).toMatchObject({ totalUnits: 3 });

    const events = await eventsFor(key, `identifier=crawler-2&kind=access_check`, 1);
    expect(events[0].record.bot).toMatchObject({ category: "search-crawler", code: "googlebot", isVerified: false });
    expect(events[0].record.category).toBe("anonymous");
  });
});

describe("decision records", () => {
  it("records every decision with plans, features and denials, queryable with filters", async () => {
    const org = await newsOrg();
    const key = org.live.secretKey;
    const decisions = [];
    for (let i = 1; i <= 4; i++) {
      decisions.push(
        await call("POST", "/api/v1/surface-decisions", {
          key: org.live.publishableKey,
          body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "reader-9" }, resource: { id: `article-${i}` } },
        }),
      );
    }
    expect(decisions.map((d) => d.body.features.articles.properties.enabled.hasAccess)).toEqual([true, true, true, false]);
    expect(decisions[3]!.body.componentBehaviors).toEqual({ "article-body": { metadata: { cssSelector: "article" } }, paywall: { metadata: { cssSelector: "#paywall" } } });

    const events = await eventsFor(key, `identifier=reader-9&surface=article-page`, 4);
    expect(events).toHaveLength(4);
    const ids = decisions.map((d) => d.body.eventId).reverse();
    expect(events.map((e: any) => e.id)).toEqual(ids);
    const denied = await eventsFor(key, `identifier=reader-9&outcome=denied`, 1);
    expect(denied).toHaveLength(1);
    expect(denied[0].record).toMatchObject({
      plans: ["anonymous"],
      denials: [{ featureSlug: "articles", property: "enabled", reason: "limit_reached" }],
      meter: { status: "ok" },
    });
    expect(Object.keys(denied[0].record.timings)).toEqual(expect.arrayContaining(["auth", "config", "identity", "meter"]));
    const granted = await eventsFor(key, `identifier=reader-9&outcome=granted&limit=2`, 2);
    expect(granted).toHaveLength(2);
    const page = await call("GET", `/api/v1/admin/events?identifier=reader-9&outcome=granted&limit=2`, { key });
    const next = await call("GET", `/api/v1/admin/events?identifier=reader-9&outcome=granted&limit=2&cursor=${encodeURIComponent(page.body.nextCursor)}`, { key });
    expect(next.body.events).toHaveLength(1);
    expect((await call("GET", `/api/v1/admin/events?from=2999-01-01T00:00:00Z&identifier=reader-9`, { key })).body.events).toEqual([]);

    // Another organization sees none of it.
    const other = await createOrganization("Other");
    expect((await call("GET", `/api/v1/admin/events?identifier=reader-9`, { key: other.live.secretKey })).body.events).toEqual([]);
    expect((await call("GET", `/api/v1/admin/events?environmentId=${org.live.id}`, { key: other.live.secretKey })).status).toBe(404);
  });
});
