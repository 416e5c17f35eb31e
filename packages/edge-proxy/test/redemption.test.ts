/**
 * The proxy's offer-redemption route end to end: a page served through the proxy shows the offers (as <mos-offer>
 * elements carrying their tokens), and the visitor redeems one on the site's own origin — with JSON (the browser
 * package's request) or a plain form — against the real platform and the fake Stripe.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fetchWorker } from "../../../test/support/api";
import { type CapturedPayments, capturePayments } from "../../../test/support/payments";
import { ORIGIN as SHOP_SITE, type RedemptionShop, redemptionShop } from "../../../test/integration/offers/redemptionShop";
import { createEdgeProxy } from "../src/index";
import { decodeAttribute } from "../src/content/rewrite";
import { originDouble, PLATFORM, recordedPlatform, recordingLogger, setCookie } from "./support";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

// The paywall component places every offer its group shows as an element.
const OFFERS_AS_ELEMENTS = `export default ({ offers }) => ({
  content: { append: Object.values(offers).flatMap((group) => group.slots.flatMap((slot) => (slot.offer ? [{ type: "element", schema: "offer", props: slot.offer }] : []))) },
});`;

const ARTICLE = `<!doctype html><html><head><title>Article</title></head><body><article id="story"><p>Text</p></article><div id="paywall"></div></body></html>`;

async function shopBehindProxy() {
  const shop = await redemptionShop((document) => {
    document.workflows = { "offers-as-elements": { type: "component", surface: "article-page", component: "paywall", source: OFFERS_AS_ELEMENTS } };
  });
  const platform = recordedPlatform(fetchWorker);
  const proxy = createEdgeProxy(
    { platformUrl: PLATFORM, secretKey: shop.key, originUrl: "https://origin.example", surfaceSlug: "article-page" },
    { platform: platform.fetch, origin: originDouble({ "/article": ARTICLE }).fetch, logger: recordingLogger().logger },
  );
  return { shop, proxy, platform };
}

/** Reads the article through the proxy: the visitor's cookie and the offers' props on the page. */
async function readArticle(proxy: { fetch(request: Request): Promise<Response> }) {
  const response = await proxy.fetch(new Request(`${SHOP_SITE}/article`));
  const html = await response.text();
  const offers = [...html.matchAll(/<mos-offer version="" props="([^"]*)"><\/mos-offer>/g)].map((match) => JSON.parse(decodeAttribute(match[1]!)));
  const cookie = setCookie(response, "mos_anon")!.split(";")[0]!;
  return { cookie, offers: offers as { offer: string; token: string }[] };
}

function redemptionRequest(cookie: string, body: BodyInit, contentType: string, method = "POST") {
  return new Request(`${SHOP_SITE}/mos-api/offer-redemptions`, {
    method,
    headers: { cookie, "content-type": contentType, referer: `${SHOP_SITE}/article` },
    ...(method === "POST" ? { body } : {}),
  });
}

describe("POST /mos-api/offer-redemptions", () => {
  it("redeems a shown offer as the cookie's visitor (JSON): the platform's answer with the checkout URL", async () => {
    const { proxy, platform } = await shopBehindProxy();
    const { cookie, offers } = await readArticle(proxy);
    expect(offers.map((offer) => offer.offer)).toEqual(["premium-monthly", "premium-yearly"]);
    platform.requests.length = 0;

    // An identity in the body is not the proxy's to believe: the cookie says who redeems.
    const response = await proxy.fetch(redemptionRequest(cookie, JSON.stringify({ offerToken: offers[0]!.token, identity: { anonymousIdentifier: "someone-else" } }), "application/json"));
    const body = (await response.json()) as RedemptionShop["document"];
    expect(response.status, JSON.stringify(body)).toBe(201);
    expect(body).toMatchObject({ status: "success", redemption: { offer: "premium-monthly", method: "checkout", state: "started" }, checkout: { url: expect.stringMatching(/^http/) } });

    const sent = platform.requests[0]!;
    expect(sent.url).toBe(`${PLATFORM}/api/v1/offer-redemptions`);
    expect(await sent.json()).toEqual({
      identity: { anonymousIdentifier: cookie.slice("mos_anon=".length) },
      offerToken: offers[0]!.token,
      successUrl: `${SHOP_SITE}/article`,
      cancelUrl: `${SHOP_SITE}/article`,
    });
  });

  it("redeems as the anonymous cookie's visitor when a JWT beside it is refused (the token was shown to that visitor)", async () => {
    const { proxy, platform } = await shopBehindProxy();
    const { cookie, offers } = await readArticle(proxy);
    platform.requests.length = 0;
    const response = await proxy.fetch(redemptionRequest(`${cookie}; mos_jwt=junk.jwt.token`, JSON.stringify({ offerToken: offers[0]!.token }), "application/json"));
    expect(response.status, await response.clone().text()).toBe(201);
    const identities = await Promise.all(platform.requests.map(async (request) => ((await request.json()) as { identity: unknown }).identity));
    expect(identities).toEqual([{ userJwt: "junk.jwt.token" }, { anonymousIdentifier: cookie.slice("mos_anon=".length) }]);
  });

  it("sends a form back only to the site's own pages: a foreign successUrl or Referer becomes the Referer, else /", async () => {
    const completed = async () =>
      Response.json({ status: "success", eventId: "evt_1", identity: { authType: "anonymous", identifier: "reader", isAuthenticated: false, jwtClaims: {} }, redemption: { id: "r1", offer: "gift", variant: null, method: "workflow", state: "completed" } }, { status: 201 });
    const proxy = createEdgeProxy({ platformUrl: PLATFORM, secretKey: "sk_env_test_secret", originUrl: "https://origin.example" }, { platform: completed, origin: originDouble({}).fetch });
    const post = (body: string, referer: string) =>
      proxy.fetch(new Request(`${SHOP_SITE}/mos-api/offer-redemptions`, { method: "POST", body, headers: { cookie: "mos_anon=reader", "content-type": "application/x-www-form-urlencoded", referer } }));
    const foreign = `offerToken=t&successUrl=${encodeURIComponent("https://evil.example/phish")}`;
    expect((await post(foreign, `${SHOP_SITE}/article`)).headers.get("location")).toBe(`${SHOP_SITE}/article`);
    expect((await post(foreign, "https://evil.example/")).headers.get("location")).toBe("/");
    expect((await post("offerToken=t&successUrl=%2F%2Fevil.example%2Fx", "https://evil.example/")).headers.get("location")).toBe("/");
    expect((await post("offerToken=t&successUrl=%2Fthanks", "https://evil.example/")).headers.get("location")).toBe(`${SHOP_SITE}/thanks`);
  });

  it("redirects a form post (303) to the checkout", async () => {
    const { proxy } = await shopBehindProxy();
    const { cookie, offers } = await readArticle(proxy);
    const response = await proxy.fetch(redemptionRequest(cookie, new URLSearchParams({ offerToken: offers[1]!.token }).toString(), "application/x-www-form-urlencoded"));
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/c\/pay\/cs_/);
  });

  it("redirects a form post (303) to its successUrl, else the page it came from, when the redemption completed without a checkout", async () => {
    // A completed redemption (a workflow offer, a repeat of a paid one) has no checkout to go to.
    const completed = async () =>
      Response.json({ status: "success", eventId: "evt_1", identity: { authType: "anonymous", identifier: "reader", isAuthenticated: false, jwtClaims: {} }, redemption: { id: "r1", offer: "gift", variant: null, method: "workflow", state: "completed" } }, { status: 201 });
    const proxy = createEdgeProxy({ platformUrl: PLATFORM, secretKey: "sk_env_test_secret", originUrl: "https://origin.example" }, { platform: completed, origin: originDouble({}).fetch });
    const withSuccessUrl = await proxy.fetch(redemptionRequest("mos_anon=reader", `offerToken=t&successUrl=${encodeURIComponent(`${SHOP_SITE}/thanks`)}`, "application/x-www-form-urlencoded"));
    expect(withSuccessUrl.status).toBe(303);
    expect(withSuccessUrl.headers.get("location")).toBe(`${SHOP_SITE}/thanks`);
    const back = await proxy.fetch(redemptionRequest("mos_anon=reader", "offerToken=t", "application/x-www-form-urlencoded"));
    expect(back.headers.get("location")).toBe(`${SHOP_SITE}/article`);
  });

  it("passes the platform's refusal: JSON as its status and error body, a form as a small error page", async () => {
    const { proxy } = await shopBehindProxy();
    const { cookie } = await readArticle(proxy);
    const json = await proxy.fetch(redemptionRequest(cookie, JSON.stringify({ offerToken: "not-a-token" }), "application/json"));
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ status: "error", statusCode: 400, code: "invalid_offer_token", requestId: expect.any(String) });
    const form = await proxy.fetch(redemptionRequest(cookie, "offerToken=not-a-token", "application/x-www-form-urlencoded"));
    expect(form.status).toBe(400);
    expect(form.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await form.text()).toContain(`<a href="${SHOP_SITE}/article">Go back</a>`);
  });

  it("answers 405 to other methods and 400 without a token, without asking the platform", async () => {
    const { proxy, platform } = await shopBehindProxy();
    platform.requests.length = 0;
    const get = await proxy.fetch(redemptionRequest("mos_anon=x", "", "application/json", "GET"));
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    const empty = await proxy.fetch(redemptionRequest("mos_anon=x", "{}", "application/json"));
    expect(empty.status).toBe(400);
    expect(platform.requests).toEqual([]);
  });
});
