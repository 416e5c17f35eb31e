/**
 * Stage 8 — features: the wire state of every feature once the meter answered (or failed), then the feature
 * workflows, each adjusting its own feature's properties. A value that does not fit the property's type is ignored
 * and recorded as a refused result.
 */
import { finish, type FeatureStates, type PropertyState, type SnapshotProperty } from "../../engine";
import type { FeatureArgs } from "../../workflows/authorTypes";
import { validatePropertyOverrides } from "../../workflows/stages";
import type { Configured, Featured, Identified, Metered, Planned, PropertyOverride } from "../context";
import type { Services } from "../services";

const NO_OVERRIDES: readonly PropertyOverride[] = Object.freeze([]);

export async function resolveFeatures<C extends Configured & Identified & Planned & Metered>(services: Services, context: C): Promise<C & Featured> {
  const { decision, meter } = context;
  const features: FeatureStates = { ...finish(decision, meter.readings, meter.failure ? "unreachable" : undefined, meter.creditReadings) };
  const session = context.workflows;
  const workflows = session?.of("feature") ?? [];
  if (!session || workflows.length === 0) return { ...context, features, overrides: NO_OVERRIDES };

  const plans = decision.planSlugs;
  const results = await Promise.all(
    workflows.map(async (workflow) => {
      const feature = workflow.feature ? features[workflow.feature] : undefined;
      if (!feature) return undefined;
      const overrides = await session.run(workflow, (): FeatureArgs => ({ ...session.args(plans), feature, features }), validatePropertyOverrides);
      return { feature, overrides, workflow };
    }),
  );
  // Rendered states may be shared, frozen objects (the engine memoises them): build new ones instead of mutating.
  const overrides: PropertyOverride[] = [];
  for (const result of results) {
    if (!result?.overrides) continue;
    const properties = { ...result.feature.properties };
    const definitions = context.prepared.featureBySlug.get(result.feature.featureSlug)?.propertyBySlug;
    const refused: string[] = [];
    for (const [slug, value] of Object.entries(result.overrides)) {
      const current = properties[slug];
      const definition = definitions?.get(slug)?.definition;
      const next = current && definition ? overridden(current, definition, value) : undefined;
      if (next) {
        properties[slug] = next;
        overrides.push({ featureSlug: result.feature.featureSlug, property: slug, workflow: result.workflow.slug });
      } else refused.push(`${slug} to ${JSON.stringify(value)}`);
    }
    // One record per workflow, however many values it got wrong: a workflow cannot grow the decision record at will.
    if (refused.length > 0) {
      const listed = refused.slice(0, MAX_REFUSALS_LISTED).map((text) => (text.length > 200 ? `${text.slice(0, 200)}…` : text));
      const more = refused.length > MAX_REFUSALS_LISTED ? ` (and ${refused.length - MAX_REFUSALS_LISTED} more)` : "";
      await session.recordRefusal(result.workflow, `cannot set ${listed.join(", ")}${more}`);
    }
    features[result.feature.featureSlug] = { ...result.feature, properties };
  }
  services.timing.mark("feature_workflows");
  return { ...context, features, overrides };
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
