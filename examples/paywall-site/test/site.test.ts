/**
 * The example site end to end: site.yaml and the two component workflows deployed to a new tenant, the edge proxy
 * with the example's own vars (wrangler.toml) in front of the example's origin pages. The metered paywall: three
 * articles read in full, then the fourth is a teaser (its first paragraph) with the offers as <mos-offer> elements
 * carrying their tokens; the anonymous cookie is minted on the first visit and carries the reader through.
 */
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { call, createOrganization, fetchWorker, publish } from "../../../test/support/api";
import { newAgent } from "../../../test/support/agents";
import { configFromEnv, createEdgeProxy } from "../../../packages/edge-proxy/src/index";
import { decodeAttribute } from "../../../packages/edge-proxy/src/content/rewrite";
import siteYaml from "../site.yaml?raw";
import proxyToml from "../wrangler.toml?raw";
import articleTeaser from "../../workflows/article-teaser.ts?raw";
import paywallOffers from "../../workflows/paywall-offers.ts?raw";
import indexPage from "../origin/index.html?raw";
import firstSnow from "../origin/articles/first-snow.html?raw";
import harbourLights from "../origin/articles/harbour-lights.html?raw";
import nightMarket from "../origin/articles/night-market.html?raw";
import oldBridge from "../origin/articles/old-bridge.html?raw";
import cityOrchard from "../origin/articles/city-orchard.html?raw";

const SITE = "http://localhost:8788";
const ARTICLES: Record<string, string> = { "first-snow": firstSnow, "harbour-lights": harbourLights, "night-market": nightMarket, "old-bridge": oldBridge, "city-orchard": cityOrchard };

/** The [vars] of the example's wrangler.toml (one `NAME = "…"` or `NAME = '…'` per line). */
function wranglerVars(toml: string): Record<string, string> {
  const section = toml.split(/^\[vars\]$/m)[1]!.split(/^\[/m)[0]!;
  const vars: Record<string, string> = {};
  for (const match of section.matchAll(/^([A-Z_]+) = ("(?:[^"\\]|\\.)*"|'[^']*')$/gm)) {
    const raw = match[2]!;
    vars[match[1]!] = raw.startsWith('"') ? JSON.parse(raw) : raw.slice(1, -1);
  }
  return vars;
}

/** The origin as the example's static-assets Worker serves it: /articles/x is articles/x.html. */
async function origin(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  const article = /^\/articles\/([a-z-]+)$/.exec(path)?.[1];
  const html = path === "/" ? indexPage : article ? ARTICLES[article] : undefined;
  return html === undefined ? new Response("Not found", { status: 404 }) : new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
}

async function exampleSite() {
  const org = await createOrganization("Paywall site");
  const document = parse(siteYaml);
  document.workflows = {
    "article-teaser": { type: "component", surface: "article-page", component: "story", source: articleTeaser },
    "paywall-offers": { type: "component", surface: "article-page", component: "paywall", source: paywallOffers },
  };
  await publish(org.adminKey, document, [org.preview.id]);
  const vars = wranglerVars(proxyToml);
  expect(vars.SURFACES).toBe('[{"pattern": "^/articles/", "surface": "article-page"}]');
  const proxy = createEdgeProxy(configFromEnv({ ...vars, SECRET_KEY: org.preview.secretKey }), { platform: fetchWorker, origin });
  return { org, proxy };
}

/** The paragraphs of the story, the story's markup and the paywall's, as the reader's browser receives them. */
function readPage(html: string) {
  const story = /<article id="story">([\s\S]*?)<\/article>/.exec(html)![1]!;
  const paywall = /<div id="paywall">([\s\S]*?)<\/div>\s*<\/main>/.exec(html)![1]!;
  const paragraphs = [...story.matchAll(/<p>(.*?)<\/p>/g)].map((match) => match[1]);
  const offers = [...paywall.matchAll(/<mos-offer version="" props="([^"]*)"><\/mos-offer>/g)].map((match) => JSON.parse(decodeAttribute(match[1]!)));
  return { story, paywall, paragraphs, offers };
}

describe("examples/paywall-site: the metered paywall", () => {
  it("shows three articles in full, then the fourth as a teaser with the offers", async () => {
    const { proxy } = await exampleSite();
    let cookie: string | undefined;
    const read = async (slug: string) => {
      const response = await proxy.fetch(new Request(`${SITE}/articles/${slug}`, { headers: cookie ? { cookie } : {} }));
      expect(response.status).toBe(200);
      expect(response.headers.get("cache-control")).toBe("private, no-store");
      return { response, page: readPage(await response.text()) };
    };

    for (const [index, slug] of ["first-snow", "harbour-lights", "night-market"].entries()) {
      const { response, page } = await read(slug);
      const minted = response.headers.getSetCookie().find((line) => line.startsWith("mos_anon="));
      if (index === 0) {
        // The first visit mints the reader's identity; plain http here, so no Secure.
        expect(minted).toMatch(/^mos_anon=anon_[A-Za-z0-9_-]+; Path=\/; Max-Age=34560000; SameSite=Lax$/);
        cookie = minted!.split(";")[0];
      } else expect(minted, "the cookie is reused, not minted again").toBeUndefined();
      expect(page.paragraphs).toHaveLength(5);
      expect(page.paywall.trim()).toBe("");
    }

    const fourth = await read("old-bridge");
    expect(fourth.page.paragraphs).toEqual(["The stone bridge over the river reopened to walkers this morning after two years of repairs."]);
    expect(fourth.page.story).toContain('<div class="fade" aria-hidden="true"></div>');
    expect(fourth.page.paywall).toContain("<h2>You have read all your free articles this month</h2>");
    expect(fourth.page.offers.map((offer) => [offer.offer, offer.title, offer.priceDisplay])).toEqual([
      ["premium-monthly", "Premium", expect.any(String)],
      ["day-pass", "Day pass", expect.any(String)],
    ]);
    for (const offer of fourth.page.offers) expect(offer.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(fourth.response.headers.getSetCookie()).toEqual([]);

    // A junk (or expired) JWT beside the cookie changes nothing: the platform refuses the token, and the proxy decides
    // again for the cookie's reader — still out of articles, not a new visitor with three fresh ones.
    const withJunkJwt = await proxy.fetch(new Request(`${SITE}/articles/city-orchard`, { headers: { cookie: `${cookie}; mos_jwt=junk.jwt.token` } }));
    const teaser = readPage(await withJunkJwt.text());
    expect(teaser.paragraphs).toHaveLength(1);
    expect(teaser.offers.length).toBeGreaterThan(0);
    expect(withJunkJwt.headers.getSetCookie()).toEqual([]);
  });

  it("leaves the home page and the stylesheet alone (no surface, ignored path)", async () => {
    const { proxy } = await exampleSite();
    const home = await proxy.fetch(new Request(`${SITE}/`));
    expect(await home.text()).toBe(indexPage);
    expect(home.headers.getSetCookie()).toEqual([]);
  });
});

describe("examples/paywall-site: crawlers pay per article", () => {
  it("answers a signed crawler 402 with the price, serves its paid retry whole with crawler-charged, and books the cent on its operator", async () => {
    const { org, proxy } = await exampleSite();
    const agent = await newAgent();
    const url = `${SITE}/articles/old-bridge`;
    const crawl = async (headers: Record<string, string>) => proxy.fetch(new Request(url, { headers: { "user-agent": "ExampleCrawler/1.0", ...headers } }));

    const asked = await crawl(await agent.sign(url));
    expect(asked.status).toBe(402);
    expect(asked.headers.get("crawler-price")).toBe("USD 0.01");
    expect(asked.headers.get("set-cookie")).toBeNull();
    expect(await asked.text()).not.toContain("<article");

    const paidHeaders = await agent.sign(url, { covered: { "crawler-max-price": "USD 0.05" } });
    const paid = await crawl(paidHeaders);
    expect(paid.status).toBe(200);
    expect(paid.headers.get("crawler-charged")).toBe("USD 0.01");
    const page = readPage(await paid.text());
    expect(page.paragraphs.length).toBeGreaterThan(1);
    expect(page.offers).toEqual([]);

    // A copy of the paid request is a replay: an unverified visitor offering to pay, refused, charged nothing.
    const replayed = await crawl(paidHeaders);
    expect(replayed.status).toBe(400);
    expect(replayed.headers.get("crawler-error")).toBe("InvalidSignature");

    const ledger = await call("GET", `/api/v1/admin/environments/${org.preview.id}/identities/${encodeURIComponent(agent.origin)}/charges?agent=true`, { key: org.adminKey });
    expect(ledger.body.totals).toEqual([{ currency: "USD", micros: 10_000, count: 1 }]);
    expect(ledger.body.charges[0]).toMatchObject({ method: "crawl", surface: "article-page", url });
  });
});
