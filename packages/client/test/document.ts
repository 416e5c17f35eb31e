/**
 * The configuration the client's tests decide against (workerd and Node alike): articles metered 3 a month, a surface
 * whose paywall shows a workflow offer (redeemable without Stripe), and a custom endpoint that echoes what it received.
 */
export function clientSite(): Record<string, any> {
  return {
    version: 1,
    settings: { timeZone: "UTC" },
    features: {
      articles: {
        name: "Articles",
        properties: { enabled: { type: "enabled", fallback: "off" }, premium: { type: "boolean", fallback: false } },
      },
    },
    plans: {
      readers: {
        name: "Readers",
        autoAssign: ["anonymous", "authenticated"],
        features: { articles: { enabled: { metered: { limit: 3, period: "month" } } } },
      },
    },
    surfaces: {
      "article-page": {
        name: "Article page",
        consumes: ["articles.enabled"],
        offerGroups: ["paywall"],
        components: { paywall: { name: "Paywall", cssSelector: "#paywall", offerGroups: ["paywall"] } },
      },
    },
    workflows: {
      "redeem-gift": { type: "redemption", source: `export default async () => ({ result: { granted: true } });`, deadlineMs: 2_000 },
      echo: {
        type: "endpoint",
        path: "echo",
        access: "publishable",
        source: `export default async (request: Request, { identity, path }: any) => Response.json({
          method: request.method, body: await request.text(), path, authType: identity.authType, identifier: identity.identifier,
          proxy: request.headers.get("x-mos-proxy-version"), query: new URL(request.url).search,
        }, { status: 201, headers: { "x-workflow": "echo" } });`,
      },
    },
    offers: {
      gift: {
        name: "Gift",
        presentation: { title: "A gift" },
        price: { currency: "usd", amount: 0 },
        redemption: { method: "workflow", workflow: "redeem-gift" },
      },
    },
    offerGroups: { paywall: { name: "Paywall", slots: [{ name: "only", offers: ["gift"] }] } },
  };
}
