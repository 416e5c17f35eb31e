/**
 * The declarations a workflow editor needs for one organization: the global workflow types (authorTypes.ts, as
 * generated into workflowTypesText.ts) plus a `DeclaredConfiguration` made from its configuration document, which
 * narrows `FeatureStates`, `PlanSlug`, `SurfaceSlug` and `CustomTriggerName` by declaration merging. With it,
 * `features.widget?.properties.enabled` autocompletes and `features.nope` or a returned plan that does not exist is a
 * type error.
 */
import { propertiesOf, type ConfigDocument, type PropertyDefinition } from "../../schema/config";
import { WORKFLOW_TYPES_DTS } from "./workflowTypesText";

/** The global declarations narrowed to `document`'s features, plans, surfaces and custom triggers. */
export function workflowTypesFor(document: ConfigDocument): string {
  return `${WORKFLOW_TYPES_DTS}\n${declaredConfiguration(document)}`;
}

/** A name as a TypeScript string literal: slugs are validated, but nothing from a document is pasted in unquoted. */
const literal = (name: string) => JSON.stringify(name);

const union = (names: readonly string[]) => (names.length === 0 ? "never" : names.map(literal).join(" | "));

/** The state a property renders as on the wire (engine/meters.ts renderFeatures). */
function renderedState(property: PropertyDefinition): string {
  switch (property.type) {
    case "enabled":
      return "MeterableProperty";
    case "credits":
      return "CreditsProperty";
    case "string":
      // Values from a closed list: the value is one of them (plans' values and the fallback were validated against it).
      return property.values ? `{ type: "string"; value: ${union(property.values)}; isFallback: boolean }` : `Extract<ValueProperty, { type: "string" }>`;
    case "boolean":
    case "number":
      return `Extract<ValueProperty, { type: ${literal(property.type)} }>`;
  }
}

export function declaredConfiguration(document: ConfigDocument): string {
  // A draft saved under older rules is served as stored: read every collection defensively.
  const features = Object.entries(document.features ?? {}).map(([slug, feature]) => {
    const properties = Object.entries(propertiesOf(feature)).map(([name, property]) => `            ${literal(name)}: ${renderedState(property)};`);
    return `        ${literal(slug)}: {\n${properties.join("\n")}\n        };`;
  });
  return [
    "/** This organization's configuration (its draft): narrows FeatureStates, PlanSlug, SurfaceSlug and CustomTriggerName. */",
    "interface DeclaredConfiguration {",
    features.length === 0 ? "    features: {};" : `    features: {\n${features.join("\n")}\n    };`,
    `    plans: ${union(Object.keys(document.plans ?? {}))};`,
    `    surfaces: ${union(Object.keys(document.surfaces ?? {}))};`,
    `    customTriggers: ${union(Object.keys(document.triggers ?? {}))};`,
    "}",
    "",
  ].join("\n");
}
