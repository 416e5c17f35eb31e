/**
 * The React entry in chromium against the platform global-setup started: a page bundled from
 * fixtures/react-app.tsx (React's development build, in StrictMode) asks for decisions with the environment's
 * publishable key from its own 127.0.0.1 origin. It must consume once per article although StrictMode runs every
 * effect twice, keep the visitor's minted identifier in the anonymous cookie, and show the paywall's offers.
 */
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { baseUrl, openConsole } from "../../../test/browser/support";
import { articlesLeft, bundle, createPaywallTenant, html, javascript, readArticles, serveSite, type PaywallTenant } from "./support";

let tenant: PaywallTenant;
let appScript: string;
let casesScript: string;

beforeAll(async () => {
  [tenant, appScript, casesScript] = await Promise.all([
    createPaywallTenant("Browser package React"),
    bundle("test/fixtures/react-app.tsx"),
    bundle("test/fixtures/react-cases.tsx"),
  ]);
});

/** The provider's edge cases (fixtures/react-cases.tsx), one page per path. */
async function casesSite(page: Page): Promise<string> {
  const app = html(
    `<script>window.pageConfig = ${JSON.stringify({ baseUrl, publishableKey: tenant.publishableKey })};</script>
    <script type="module" src="/cases.js"></script>`,
  );
  return serveSite(page, { "/cases.js": javascript(casesScript), "/two-roots": app, "/remount": app, "/switch": app });
}

/** The identities of the page's access checks, in order. */
function accessCheckIdentities(page: Page): unknown[] {
  const identities: unknown[] = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url() === `${baseUrl}/api/v1/access-checks`) identities.push(request.postDataJSON().identity);
  });
  return identities;
}

/** The React page's site: the app on every page path, plus `extra` routes. */
async function reactSite(page: Page, extra: Parameters<typeof serveSite>[1] = {}): Promise<string> {
  const app = html(
    `<div id="root"></div>
    <script>window.pageConfig = ${JSON.stringify({ baseUrl, publishableKey: tenant.publishableKey })};</script>
    <script type="module" src="/app.js"></script>`,
  );
  return serveSite(page, { "/app.js": javascript(appScript), "/": app, "/pricing": app, ...extra });
}

/** The bodies of the page's surface decisions, in order. */
function surfaceDecisions(page: Page): unknown[] {
  const bodies: unknown[] = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url() === `${baseUrl}/api/v1/surface-decisions`) bodies.push(request.postDataJSON());
  });
  return bodies;
}

describe("the React hooks", () => {
  it("count a metered feature down once per article in StrictMode, keep the minted identifier in the cookie, then show the offers and redeem one", async () => {
    const { page } = await openConsole("/health");
    const decisions = surfaceDecisions(page);
    const redemptions: unknown[] = [];
    const site: string = await reactSite(page, {
      "/mos-api/offer-redemptions": (request) => {
        redemptions.push(request.postDataJSON());
        return { contentType: "application/json", body: JSON.stringify({ status: "success", checkout: { id: "cs_react", url: `${site}/checkout/cs_react`, mode: "payment" } }) };
      },
      "/checkout/cs_react": html("<h1>Checkout</h1>"),
    });
    await page.goto(`${site}/`);

    const article = (slug: string) => page.locator(`[data-testid=article][data-slug=${slug}]`);
    await article("article-1").waitFor();
    expect(await page.getByTestId("access").textContent()).toBe("granted");
    expect(await page.getByTestId("remaining").textContent()).toBe("2");
    const cookie = (await page.context().cookies(site)).find((candidate) => candidate.name === "mos_anon");
    expect(cookie?.value).toMatch(/\S/);
    expect(cookie).toMatchObject({ path: "/", sameSite: "Lax", httpOnly: false });

    for (const [slug, remaining] of [["article-2", "1"], ["article-3", "0"]] as const) {
      await page.getByTestId("next").click();
      await article(slug).waitFor();
      expect(await page.getByTestId("access").textContent()).toBe("granted");
      expect(await page.getByTestId("remaining").textContent()).toBe(remaining);
    }
    await page.getByTestId("next").click();
    await article("article-4").waitFor();
    expect(await page.getByTestId("access").textContent()).toBe("denied");
    const columns = page.locator(".mos-pricing-column");
    expect(await columns.locator(".mos-title").allTextContents()).toEqual(["Premium", "Premium for a year"]);
    expect(await columns.locator(".mos-button").allTextContents()).toEqual(["Start your free week", "Subscribe"]);

    // One request per article, StrictMode notwithstanding: the first mints the visitor, the others are that visitor.
    expect(decisions).toEqual([
      { surfaceSlug: "article-page", identity: { createAnonymousIdentifier: true }, resource: { id: "/articles/article-1" } },
      ...["article-2", "article-3", "article-4"].map((slug) => ({ surfaceSlug: "article-page", identity: { anonymousIdentifier: cookie!.value }, resource: { id: `/articles/${slug}` } })),
    ]);
    expect(await articlesLeft(tenant, cookie!.value)).toBe(0);

    await columns.first().getByRole("button").click();
    await page.waitForURL(`${site}/checkout/cs_react`);
    expect(redemptions).toEqual([{ offerToken: expect.any(String), successUrl: `${site}/`, cancelUrl: `${site}/` }]);
  });

  it("render a surface's offers with PricingTable and Offer from one shared decision for the visitor in the cookie", async () => {
    const reader = "reader-react-pricing";
    await readArticles(tenant, reader, 3);
    const { page } = await openConsole("/health");
    const decisions = surfaceDecisions(page);
    const site = await reactSite(page);
    await page.context().addCookies([{ name: "mos_anon", value: reader, url: site }]);
    await page.goto(`${site}/pricing`);

    const columns = page.locator(".mos-pricing-column");
    await expect.poll(() => columns.count()).toBe(2);
    expect(await columns.evaluateAll((items) => items.map((item) => item.getAttribute("data-offer")))).toEqual(["premium-monthly", "premium-yearly"]);
    expect(await columns.locator(".mos-title").allTextContents()).toEqual(["Premium", "Premium for a year"]);
    expect(await columns.locator(".mos-description").allTextContents()).toEqual(["Every article, every day. Cancel anytime.", "Two months free."]);
    const prices = await columns.locator(".mos-price").allTextContents();
    expect(prices).toHaveLength(2);
    expect(prices[1]).toMatch(/99/);

    const offer = page.getByTestId("first-offer").locator("mos-offer");
    expect(await offer.locator(".title").textContent()).toBe("Premium");
    expect(await offer.locator(".price").textContent()).toBe(prices[0]);
    expect(await offer.getAttribute("redemption-url")).toBe("/shop/redeem");
    expect(decisions).toEqual([{ surfaceSlug: "article-page", identity: { anonymousIdentifier: reader } }]);
  });
});

describe("the provider", () => {
  it("mints one visitor for two providers in two roots, and warns once when an HttpOnly cookie keeps the identifier out", async () => {
    const { page } = await openConsole("/health");
    const identities = accessCheckIdentities(page);
    const warnings: string[] = [];
    page.on("console", (message) => void (message.type() === "warning" && message.text().includes("@edge-monetization/browser") && warnings.push(message.text())));
    const site = await casesSite(page);
    const ready = async () => {
      await page.locator("[data-testid=one][data-status=ready]").waitFor();
      await page.locator("[data-testid=two][data-status=ready]").waitFor();
    };

    await page.goto(`${site}/two-roots`);
    await ready();
    const cookie = (await page.context().cookies(site)).find((candidate) => candidate.name === "mos_anon");
    expect(identities).toEqual([{ createAnonymousIdentifier: true }, { anonymousIdentifier: cookie!.value }]);
    expect(warnings).toEqual([]);

    // The server's cookie of the same name, HttpOnly: the script neither reads it nor overwrites it.
    await page.context().clearCookies();
    await page.context().addCookies([{ name: "mos_anon", value: "server-visitor", url: site, httpOnly: true }]);
    identities.length = 0;
    await page.reload();
    await ready();
    expect(identities).toHaveLength(2);
    expect(identities[0]).toEqual({ createAnonymousIdentifier: true });
    // The page still has one visitor; the next load will not find it, and says so.
    expect(identities[1]).toEqual({ anonymousIdentifier: expect.not.stringMatching(/^server-visitor$/) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/HttpOnly/);
  });

  it("asks again for a failed decision when a component mounts again, and starts over with a new client", async () => {
    const { page, expectConsoleError } = await openConsole("/health");
    expectConsoleError(/status of 503/);
    let unavailable = true;
    await page.route(`${baseUrl}/api/v1/access-checks`, (route) =>
      unavailable && route.request().method() === "POST"
        ? route.fulfill({
            status: 503,
            headers: { "access-control-allow-origin": "*", "content-type": "application/json" },
            body: JSON.stringify({ status: "error", statusCode: 503, code: "service_unavailable", message: "down", requestId: "req_test" }),
          })
        : route.fallback(),
    );
    const site = await casesSite(page);
    const feature = page.getByTestId("feature");

    await page.goto(`${site}/remount`);
    await page.locator("[data-testid=feature][data-status=error]").waitFor();
    expect(await feature.getAttribute("data-failed-open")).toBe("true");
    unavailable = false;
    await page.getByTestId("toggle").click();
    await feature.waitFor({ state: "detached" });
    await page.getByTestId("toggle").click();
    await page.locator("[data-testid=feature][data-status=ready]").waitFor();
    expect(await feature.getAttribute("data-failed-open")).toBe("false");

    await page.goto(`${site}/switch`);
    await page.locator("[data-testid=feature][data-status=ready]").waitFor();
    expect(await page.evaluate(() => (globalThis as any).secondClientCalls)).toBe(0);
    await page.getByTestId("switch").click();
    await expect.poll(() => page.evaluate(() => (globalThis as any).secondClientCalls)).toBe(1);
    await page.locator("[data-testid=feature][data-status=ready]").waitFor();
  });
});
