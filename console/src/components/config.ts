/**
 * The configuration document as the console reads it (the API validates it; schema/config.ts is the authority).
 * Loose on purpose: the console keeps fields it has no form for and sends them back untouched.
 */
export type PropertyType = "enabled" | "boolean" | "number" | "string" | "credits";

export interface PropertyDefinition {
  type: PropertyType;
  fallback?: unknown;
  conflict?: "higher" | "lower";
  onMeterFailure?: "open" | "closed";
  values?: string[];
  [key: string]: unknown;
}

export interface FeatureDefinition {
  id?: string;
  name?: string;
  description?: string;
  properties?: Record<string, PropertyDefinition>;
}

export interface PlanDefinition {
  name?: string;
  description?: string;
  autoAssign?: string[];
  stripeProductIds?: string[];
  features?: Record<string, Record<string, unknown>>;
}

export interface ComponentDefinition {
  name?: string;
  cssSelector?: string;
  offerGroups?: string[];
}

export interface SurfaceDefinition {
  name?: string;
  description?: string;
  consumes?: string[];
  components?: Record<string, ComponentDefinition>;
  offerGroups?: string[];
}

export interface ConfigDocument {
  version?: number;
  settings?: { timeZone?: string };
  features: Record<string, FeatureDefinition>;
  plans: Record<string, PlanDefinition>;
  surfaces: Record<string, SurfaceDefinition>;
  authMethods: Record<string, Record<string, unknown>>;
  workflows: Record<string, Record<string, unknown>>;
  triggers?: Record<string, unknown>;
  offers: Record<string, Record<string, unknown> & { name?: string }>;
  offerGroups: Record<string, { name?: string; slots?: { name?: string; offers: string[] }[] }>;
}

export const PERIODS = ["lifetime", "minute", "hour", "day", "week", "month", "year"] as const;
export const AUTO_ASSIGN_CATEGORIES = ["anonymous", "authenticated", "search-crawler", "ai-agent"] as const;
export const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"] as const;
export const PROPERTY_TYPES: PropertyType[] = ["boolean", "number", "string", "credits"];

/** Every feature has `enabled`, declared or not (with these defaults). */
export function propertiesOf(feature: FeatureDefinition): Record<string, PropertyDefinition> {
  const properties = feature.properties ?? {};
  if (properties.enabled) return properties;
  return { enabled: { type: "enabled", fallback: "off", conflict: "higher", onMeterFailure: "closed" }, ...properties };
}

/** `feature.property` references a surface may consume: metered `enabled` and `credits` properties. */
export function consumableProperties(document: ConfigDocument): { feature: string; property: string; type: PropertyType }[] {
  return Object.entries(document.features).flatMap(([feature, definition]) =>
    Object.entries(propertiesOf(definition))
      .filter(([, property]) => property.type === "enabled" || property.type === "credits")
      .map(([property, { type }]) => ({ feature, property, type })),
  );
}

/** Fills the collections an exported document leaves out. */
export function normalizeDocument(raw: Record<string, unknown>): ConfigDocument {
  const record = (key: string) => (raw[key] && typeof raw[key] === "object" ? (raw[key] as Record<string, never>) : {});
  return {
    ...(raw as object),
    features: record("features"),
    plans: record("plans"),
    surfaces: record("surfaces"),
    authMethods: record("authMethods"),
    workflows: record("workflows"),
    offers: record("offers"),
    offerGroups: record("offerGroups"),
  } as ConfigDocument;
}

/** The draft's collection keys with their admin API paths. */
export const COLLECTIONS = {
  features: { path: "features", singular: "feature" },
  plans: { path: "plans", singular: "plan" },
  surfaces: { path: "surfaces", singular: "surface" },
  authMethods: { path: "auth-methods", singular: "authentication method" },
  workflows: { path: "workflows", singular: "workflow" },
  offers: { path: "offers", singular: "offer" },
  offerGroups: { path: "offer-groups", singular: "offer group" },
} as const;
export type CollectionKey = keyof typeof COLLECTIONS;

export interface DiffEntry {
  path: string;
  change: "added" | "removed" | "changed";
  from?: unknown;
  to?: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** What changed from one document to another, path by path (as the API's diff names them). */
export function diffValues(from: unknown, to: unknown, path = ""): DiffEntry[] {
  if (isRecord(from) && isRecord(to)) {
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])];
    return keys.flatMap((key) => {
      const child = path ? `${path}.${key}` : key;
      if (!(key in from)) return [{ path: child, change: "added" as const, to: to[key] }];
      if (!(key in to)) return [{ path: child, change: "removed" as const, from: from[key] }];
      return diffValues(from[key], to[key], child);
    });
  }
  return JSON.stringify(from) === JSON.stringify(to) ? [] : [{ path: path || "(root)", change: "changed", from, to }];
}
