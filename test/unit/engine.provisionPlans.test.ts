import { describe, expect, it } from "vitest";
import { provisionPlans } from "../../workers/engine";
import { NEWS_SITE, preparedOf } from "./engineFixtures";

describe("provisionPlans", async () => {
  const prepared = await preparedOf({
    ...NEWS_SITE,
    plans: {
      ...(NEWS_SITE.plans as Record<string, unknown>),
      // Auto-assigned to two categories and linked to a product, to check de-duplication across sources.
      trial: { autoAssign: ["anonymous", "authenticated"], stripeProductIds: ["prod_trial", "prod_premium_monthly"] },
    },
  } as typeof NEWS_SITE);

  it.each([
    ["anonymous", ["anonymous", "trial"]],
    ["authenticated", ["registered", "trial"]],
    ["search-crawler", ["search-crawlers"]],
    ["ai-agent", ["ai-agents"]],
  ] as const)("auto-assigns by category: %s → %j", (category, expected) => {
    const result = provisionPlans(prepared, { category });
    expect(result.planSlugs).toEqual(expected);
    for (const slug of expected) expect(result.sources[slug]).toEqual(["auto"]);
    expect(result.unknownPlanSlugs).toEqual([]);
  });

  it("adds the plans linked to the customer's Stripe products, each once, with every source", () => {
    const result = provisionPlans(prepared, { category: "authenticated", stripeProductIds: ["prod_premium_yearly", "prod_unknown", "prod_premium_monthly"] });
    expect(result.planSlugs).toEqual(["registered", "trial", "premium"]);
    expect(result.sources).toEqual({ registered: ["auto"], trial: ["auto", "stripe"], premium: ["stripe"] });
  });

  it("adds workflow slugs in order; unknown ones are dropped and reported once", () => {
    const result = provisionPlans(prepared, {
      category: "anonymous",
      workflowPlanSlugs: ["premium", "enterprise", "anonymous", "enterprise", "constructor", "__proto__"],
    });
    expect(result.planSlugs).toEqual(["anonymous", "trial", "premium"]);
    expect(result.sources).toEqual({ anonymous: ["auto", "workflow"], trial: ["auto"], premium: ["workflow"] });
    expect(result.unknownPlanSlugs).toEqual(["enterprise", "constructor", "__proto__"]);
  });

  it("a config without plans provisions nothing", async () => {
    const empty = await preparedOf({});
    expect(provisionPlans(empty, { category: "anonymous", stripeProductIds: ["prod_x"], workflowPlanSlugs: ["x"] })).toEqual({
      planSlugs: [],
      sources: {},
      unknownPlanSlugs: ["x"],
    });
  });
});
