/**
 * Builds prepared snapshots from readable config documents, the way the admin API does: validate with the zod
 * document schema, give every feature an id, compile.
 */
import { ConfigDocument, type ConfigDocumentInput } from "../../schema/config";
import { compileSnapshot } from "../../workers/config/compile";
import { prepareSnapshot, type PreparedSnapshot } from "../../workers/engine";
import type { ConfigSnapshot } from "../../workers/engine/snapshot";

/** feat_ + 8 characters derived from the slug, so tests can predict counter ids. */
export function featureIdFor(slug: string): string {
  return `feat_${slug.replace(/[^a-z0-9]/g, "").padEnd(8, "0").slice(0, 8)}`;
}

export async function snapshotOf(input: ConfigDocumentInput, versionId = "ver_test"): Promise<ConfigSnapshot> {
  const doc = ConfigDocument.parse(input);
  for (const [slug, feature] of Object.entries(doc.features)) feature.id ??= featureIdFor(slug);
  return compileSnapshot(doc, { versionId, organizationId: "org_test" });
}

export async function preparedOf(input: ConfigDocumentInput, versionId = "ver_test"): Promise<PreparedSnapshot> {
  return prepareSnapshot(await snapshotOf(input, versionId));
}

/** The news-site example, inline (examples/news-site.yaml): anonymous 3/month, registered on, premium via Stripe. */
export const NEWS_SITE: ConfigDocumentInput = {
  features: {
    articles: {
      properties: {
        enabled: { type: "enabled", fallback: "off", onMeterFailure: "open" },
        premium: { type: "boolean", fallback: false },
        quality: { type: "string", values: ["standard", "high", "ultra"], fallback: "standard" },
      },
    },
    comments: {},
  },
  plans: {
    anonymous: {
      autoAssign: ["anonymous"],
      features: { articles: { enabled: { metered: { limit: 3, period: "month", uniqueResources: true } }, premium: false, quality: "standard" } },
    },
    registered: { autoAssign: ["authenticated"], features: { articles: { enabled: "on", quality: "high" }, comments: { enabled: "on" } } },
    premium: {
      stripeProductIds: ["prod_premium_monthly", "prod_premium_yearly"],
      features: { articles: { enabled: "on", premium: true, quality: "ultra" } },
    },
    "search-crawlers": { autoAssign: ["search-crawler"], features: { articles: { enabled: "on" } } },
    "ai-agents": { autoAssign: ["ai-agent"], features: { articles: { enabled: { metered: { limit: 10, period: "day", uniqueResources: true } } } } },
  },
  surfaces: { "article-page": { consumes: ["articles.enabled"] } },
};
