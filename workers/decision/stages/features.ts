/**
 * Stage 8 — features: the wire state of every feature once the meter answered (or failed), then the feature
 * workflows, each adjusting its own feature's properties. A value that does not fit the property's type is ignored
 * and recorded as a refused result. The workflows run side by side, each given the state before any of them, and their
 * results are applied one after the other in the snapshot's order: a later workflow's value for a property replaces
 * an earlier one's, and the other properties keep what the earlier ones set.
 */
import { finish, type FeatureStates, type PropertyState, type SnapshotProperty } from "../../engine";
import type { FeatureArgs } from "../../workflows/authorTypes";
import { validatePropertyOverrides } from "../../workflows/stages";
import type { Configured, Featured, Identified, Metered, Planned, PropertyOverride } from "../context";
import type { Services } from "../services";
import { applyCrawlToSurface, paymentRecorded, type Crawled } from "./crawl";

const NO_OVERRIDES: readonly PropertyOverride[] = Object.freeze([]);

export async function resolveFeatures<C extends Configured & Identified & Planned & Metered & Partial<Crawled>>(services: Services, context: C): Promise<C & Featured> {
  const { decision, meter } = context;
  const rendered = finish(decision, meter.readings, meter.failure ? "unreachable" : undefined, meter.creditReadings);
  // A priced crawl's surface is granted (paid) or denied (refused) before feature workflows see it.
  const features: FeatureStates = { ...(context.crawl ? applyCrawlToSurface(rendered, { decision, crawl: context.crawl }, paymentRecorded(meter)) : rendered) };
  const session = context.workflows;
  const workflows = session?.of("feature") ?? [];
  if (!session || workflows.length === 0) return { ...context, features, overrides: NO_OVERRIDES };

  const plans = decision.planSlugs;
  const results = await Promise.all(
    workflows.map(async (workflow) => {
      const feature = workflow.feature ? features[workflow.feature] : undefined;
      if (!feature) return undefined;
      const overrides = await session.run(workflow, (): FeatureArgs => ({ ...session.args(plans), feature, features }), validatePropertyOverrides);
      return { featureSlug: feature.featureSlug, overrides, workflow };
    }),
  );
  // Rendered states may be shared, frozen objects (the engine memoises them): build new ones instead of mutating.
  // Keyed by feature and property, so a later workflow's override of the same property replaces the earlier entry:
  // only the overrides that stand are listed (and explain a denial as `workflow_override`).
  const standing = new Map<string, PropertyOverride>();
  for (const result of results) {
    if (!result?.overrides) continue;
    const { featureSlug } = result;
    // The state as the earlier workflows left it, not as it was before them.
    const current = features[featureSlug]!;
    const properties = { ...current.properties };
    const definitions = context.prepared.featureBySlug.get(featureSlug)?.propertyBySlug;
    const refused: string[] = [];
    for (const [slug, value] of Object.entries(result.overrides)) {
      const property = properties[slug];
      const definition = definitions?.get(slug)?.definition;
      const next = property && definition ? overridden(property, definition, value) : undefined;
      if (next) {
        properties[slug] = next;
        const key = JSON.stringify([featureSlug, slug]);
        standing.delete(key); // re-inserted last: the list keeps the order in which the standing values were set
        standing.set(key, { featureSlug, property: slug, workflow: result.workflow.slug });
      } else refused.push(`${slug} to ${JSON.stringify(value)}`);
    }
    // One record per workflow, however many values it got wrong: a workflow cannot grow the decision record at will.
    if (refused.length > 0) {
      const listed = refused.slice(0, MAX_REFUSALS_LISTED).map((text) => (text.length > 200 ? `${text.slice(0, 200)}…` : text));
      const more = refused.length > MAX_REFUSALS_LISTED ? ` (and ${refused.length - MAX_REFUSALS_LISTED} more)` : "";
      await session.recordRefusal(result.workflow, `cannot set ${listed.join(", ")}${more}`);
    }
    features[featureSlug] = { ...current, properties };
  }
  services.timing.mark("feature_workflows");
  return { ...context, features, overrides: [...standing.values()] };
}

const MAX_REFUSALS_LISTED = 10;

/**
 * A property with a workflow's value applied, or undefined when the value does not fit the property: its type, and
 * for a string property with declared `values`, one of them.
 */
function overridden(current: PropertyState, definition: SnapshotProperty, value: unknown): PropertyState | undefined {
  switch (current.type) {
    case "meterable":
    case "credits":
      // Access only: a workflow can grant or deny, but counters and balances change only through the meter.
      if (typeof value === "boolean") return { ...current, hasAccess: value, isFallback: false };
      if (value === "on" || value === "off") return { ...current, hasAccess: value === "on", isFallback: false };
      return undefined;
    case "boolean":
      return typeof value === "boolean" ? { type: "boolean", value, isFallback: false } : undefined;
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? { type: "number", value, isFallback: false } : undefined;
    case "string":
      if (typeof value !== "string") return undefined;
      if (definition.type === "string" && definition.values && !definition.values.includes(value)) return undefined;
      return { type: "string", value, isFallback: false };
  }
}
