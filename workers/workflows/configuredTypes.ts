/**
 * The declarations a workflow editor needs for one organization: the global workflow types (authorTypes.ts, as
 * generated into workflowTypesText.ts) plus a `DeclaredConfiguration` made from its configuration document, which
 * narrows `FeatureStates`, `PlanSlug`, `SurfaceSlug` and `CustomTriggerName` by declaration merging. With it,
 * `features.widget?.properties.enabled` autocompletes and `features.nope` or a returned plan that does not exist is a
 * type error.
 */
import type { ConfigDocument } from "../../schema/config";
import { WORKFLOW_TYPES_DTS } from "./workflowTypesText";

/** The global declarations narrowed to `document`'s features, plans, surfaces and custom triggers. */
export function workflowTypesFor(document: ConfigDocument): string {
  return `${WORKFLOW_TYPES_DTS}\n${declaredConfiguration(document)}`;
}

/** A name as a TypeScript string literal: slugs are validated, but nothing from a document is pasted in unquoted. */
const literal = (name: string) => JSON.stringify(name);

const union = (names: readonly string[]) => (names.length === 0 ? "never" : names.map(literal).join(" | "));

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);

/** The keys of a collection that is a record; anything else (null, a list, a string) declares nothing. */
const keysOf = (collection: unknown): string[] => (isRecord(collection) ? Object.keys(collection) : []);

/** What a property whose definition this build cannot read renders as: any property state. */
const ANY_PROPERTY = "PropertyState";

/** The state a property renders as on the wire (engine/meters.ts renderFeatures). */
function renderedState(property: unknown): string {
  if (!isRecord(property)) return ANY_PROPERTY;
  switch (property.type) {
    case "enabled":
      return "MeterableProperty";
    case "credits":
      return "CreditsProperty";
    case "string": {
      // Values from a closed list: the value is one of them (plans' values and the fallback were validated against it).
      const { values } = property;
      const closed = Array.isArray(values) && values.length > 0 && values.every((value): value is string => typeof value === "string");
      return closed ? `{ type: "string"; value: ${union(values)}; isFallback: boolean }` : `Extract<ValueProperty, { type: "string" }>`;
    }
    case "boolean":
    case "number":
      return `Extract<ValueProperty, { type: ${literal(property.type)} }>`;
    default:
      return ANY_PROPERTY;
  }
}

/** A feature's properties by name, with the implicit `enabled` first when the feature does not declare its own. */
function propertiesOf(feature: unknown): [string, unknown][] {
  const declared = isRecord(feature) && isRecord(feature.properties) ? Object.entries(feature.properties) : [];
  return declared.some(([name]) => name === "enabled") ? declared : [["enabled", { type: "enabled" }], ...declared];
}

/**
 * A draft is served as stored, and one saved under older rules (or by hand) may not fit today's schema: every field is
 * read as unknown, and what cannot be read declares the generic type instead of failing the request.
 */
export function declaredConfiguration(document: ConfigDocument): string {
  const stored: unknown = document;
  const draft = isRecord(stored) ? stored : {};
  const features = (isRecord(draft.features) ? Object.entries(draft.features) : []).map(([slug, feature]) => {
    const properties = propertiesOf(feature).map(([name, property]) => `            ${literal(name)}: ${renderedState(property)};`);
    return `        ${literal(slug)}: {\n${properties.join("\n")}\n        };`;
  });
  return [
    "/** This organization's configuration (its draft): narrows FeatureStates, PlanSlug, SurfaceSlug and CustomTriggerName. */",
    "interface DeclaredConfiguration {",
    features.length === 0 ? "    features: {};" : `    features: {\n${features.join("\n")}\n    };`,
    `    plans: ${union(keysOf(draft.plans))};`,
    `    surfaces: ${union(keysOf(draft.surfaces))};`,
    `    customTriggers: ${union(keysOf(draft.triggers))};`,
    "}",
    "",
  ].join("\n");
}
