/**
 * The commercial product's open-source edge proxy must keep working against this platform unchanged. These are its
 * calls as it makes them — its surface-decision body (the path as the resource, the page's meta, `proxyOrigin`, any
 * client metadata spread at the top level), its marker headers, and its relayed redemption route
 * (`/mos-api/offer-redemptions` → `POST /api/v1/offer-redemptions` under `PublicBearer <secret key>`, the identity
 * built from the visitor's cookies and the request facts added) — and the response fields it checks before it uses one.
 */
import { describe, expect, it } from "vitest";
import { call } from "../../support/api";
import { redemptionShop, ORIGIN } from "../offers/redemptionShop";

const proxyHeaders = { "x-mos-proxy-version": "1.5.0", "x-mos-proxy-client": "cloudflare-workers" };

describe("the commercial edge proxy's calls", () => {
  it("gets a surface decision it accepts, mints the anonymous visitor it then keeps in a cookie, and redeems through its relay", async () => {
    const shop = await redemptionShop();
    const decide = (identity: Record<string, unknown>) =>
      call("POST", "/api/v1/surface-decisions", {
        key: shop.key,
        headers: proxyHeaders,
        body: {
          country: "FR", // a client-metadata provider's fields land at the top level
          surfaceSlug: "article-page",
          identity,
          resource: { id: "/articles/42", meta: { "og:type": "article", author: "Ada" } },
          http: { url: `${ORIGIN}/articles/42`, userAgent: "Mozilla/5.0", proxyOrigin: { status: 200 } },
        },
      });

    const first = await decide({ createAnonymousIdentifier: true });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    // What it checks before using a decision (anything else and it serves the origin's page as is).
    expect(first.body).toMatchObject({ status: "success", componentsSkipped: false });
    for (const field of ["identity", "features", "customer", "surfaceBehavior", "componentBehaviors"]) {
      expect(typeof first.body[field], field).toBe("object");
    }
    expect(first.body.identity).toMatchObject({ isAuthenticated: false, authType: "anonymous" });
    const visitor: string = first.body.identity.identifier;
    expect(visitor).toMatch(/^anon_/);
    expect(first.body.componentBehaviors.paywall.metadata).toEqual({ cssSelector: "#paywall" });

    // The next page view sends the cookie's identifier; the offers it shows are that visitor's.
    const second = await decide({ anonymousIdentifier: visitor });
    expect(second.status).toBe(200);
    expect(second.body.identity.identifier).toBe(visitor);
    const offer = second.body.offers.paywall.slots[0].offer;
    expect(offer.token).toEqual(expect.any(String));

    // Its relay: the browser's body, then the proxy's own identity and request facts, under PublicBearer.
    const relayed = await call("POST", "/api/v1/offer-redemptions", {
      headers: { ...proxyHeaders, authorization: `PublicBearer ${shop.key}` },
      body: {
        offerToken: offer.token,
        successUrl: `${ORIGIN}/welcome`,
        cancelUrl: `${ORIGIN}/articles/42`,
        identity: { anonymousIdentifier: visitor },
        http: { url: `${ORIGIN}/mos-api/offer-redemptions`, userAgent: "Mozilla/5.0", clientIP: "203.0.113.7", referer: `${ORIGIN}/articles/42` },
      },
    });
    expect(relayed.status, JSON.stringify(relayed.body)).toBe(201);
    expect(relayed.body).toMatchObject({ status: "success", identity: { identifier: visitor }, redemption: { offer: offer.offer, state: "started" } });
    expect(relayed.body.checkout.url).toEqual(expect.any(String));
  });
});
