/**
 * Credit costs per asset and bundles through HTTP: a surface decision whose resource names assets is priced at the sum
 * of their prices (an unlisted asset at the action's price), a bundle of named assets at its factor, multipliers after;
 * an access check shows the same price without deducting it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";

let org: TestOrganization;

const DOCUMENT = {
  features: {
    studio: {
      properties: {
        credits: {
          type: "credits",
          costs: {
            base: 1,
            actions: { render: 3 },
            multipliers: [{ when: { tag: "hd" }, factor: 2 }],
            assets: { logo: 4, font: 6, photo: 10 },
            bundles: [{ assets: ["logo", "font"], factor: 0.5 }],
          },
        },
      },
    },
  },
  plans: { free: { autoAssign: ["anonymous"], features: { studio: { enabled: "on", credits: { credits: { amount: 100, period: "month" } } } } } },
  surfaces: { editor: { consumes: ["studio.credits"] } },
};

const creditsOf = (body: any) => body.features.studio.properties.credits;
const decide = (identifier: string, extra: Record<string, unknown>) =>
  call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "editor", identity: { anonymousIdentifier: identifier }, ...extra } });

beforeAll(async () => {
  org = await createOrganization("Credit bundles");
  await publish(org.adminKey, DOCUMENT, [org.live.id]);
});

describe("credits priced per asset, with bundles", () => {
  it("deducts the sum of the assets' prices, the bundle at its factor, multipliers after", async () => {
    const identifier = `designer-${crypto.randomUUID()}`;
    // logo + font form the bundle: (4 + 6) × 0.5 = 5; photo 10; an unlisted asset costs the action (render: 3).
    const first = await decide(identifier, { action: "render", resource: { id: "poster", assets: ["logo", "font", "photo", "banner"] } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(creditsOf(first.body)).toMatchObject({ hasAccess: true, cost: 18, balance: 82, deductedInRequest: true });

    // From resource.meta.assets, with an hd multiplier: (4 + 10) × 2 = 28.
    const second = await decide(identifier, { resource: { id: "card", meta: { assets: ["logo", "photo", 42], tags: ["hd"] } } });
    expect(creditsOf(second.body)).toMatchObject({ cost: 28, balance: 54, deductedInRequest: true });

    // No assets: the action's price, as before.
    const third = await decide(identifier, { action: "render", resource: { id: "plain" } });
    expect(creditsOf(third.body)).toMatchObject({ cost: 3, balance: 51 });

    // An access check prices the same request and deducts nothing.
    const check = await call("POST", "/api/v1/access-checks", {
      key: org.live.secretKey,
      body: { identity: { anonymousIdentifier: identifier }, resource: { assets: ["logo", "font"] } },
    });
    expect(creditsOf(check.body)).toMatchObject({ cost: 5, balance: 51, deductedInRequest: false });
  });
});
