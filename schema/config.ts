/**
 * The declarative configuration document: the whole draft of one organization (features, plans, surfaces,
 * authentication methods, workflows). It is what `export` returns, what `apply` accepts, and what a version freezes.
 *
 * Collections are records keyed by slug so that a validation error's path reads like the document
 * (`plans.premium.features.widget.enabled`) and so that a YAML file stays short.
 */
import { Validator, type Schema } from "@cfworker/json-schema";
import { z } from "zod";

export const SLUG_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const Slug = z.string().regex(SLUG_PATTERN, "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit");
export const FeatureId = z.string().regex(/^feat_[a-z0-9]{8,32}$/, "must look like feat_ followed by 8-32 characters of a-z0-9");

export const PERIODS = ["lifetime", "minute", "hour", "day", "week", "month", "year"] as const;
export const Period = z.enum(PERIODS);
export type Period = z.infer<typeof Period>;

/** Who a plan is handed to automatically. */
export const AUTO_ASSIGN_CATEGORIES = ["anonymous", "authenticated", "search-crawler", "ai-agent"] as const;
export const AutoAssignCategory = z.enum(AUTO_ASSIGN_CATEGORIES);
export type AutoAssignCategory = z.infer<typeof AutoAssignCategory>;

export const ConflictRule = z.enum(["higher", "lower"]);
export type ConflictRule = z.infer<typeof ConflictRule>;

const Name = z.string().min(1).max(200);
const Description = z.string().max(2000);

// ---------------------------------------------------------------------------------------------------------------
// Feature properties

/** What happens to a metered property when its meter cannot be reached in time. */
export const MeterFailureMode = z.enum(["open", "closed"]);

export const EnabledPropertyDefinition = z.strictObject({
  type: z.literal("enabled"),
  fallback: z.enum(["on", "off"]).default("off"),
  conflict: ConflictRule.default("higher"),
  /** Fail open (grant) or closed (deny) when the meter is unreachable. */
  onMeterFailure: MeterFailureMode.default("closed"),
});
export const BooleanPropertyDefinition = z.strictObject({
  type: z.literal("boolean"),
  fallback: z.boolean().default(false),
  conflict: ConflictRule.default("higher"),
});
export const NumberPropertyDefinition = z.strictObject({
  type: z.literal("number"),
  fallback: z.number().finite().default(0),
  conflict: ConflictRule.default("higher"),
});
export const StringPropertyDefinition = z
  .strictObject({
    type: z.literal("string"),
    /** Allowed values, ordered from lowest to highest; conflicts are resolved by this order when present. */
    values: z.array(z.string().max(200)).min(1).max(100).optional(),
    fallback: z.string().max(1000).default(""),
    conflict: ConflictRule.default("higher"),
  })
  .superRefine((def, ctx) => {
    if (!def.values) return;
    if (new Set(def.values).size !== def.values.length) {
      ctx.addIssue({ code: "custom", path: ["values"], message: "values must be unique" });
    }
    if (!def.values.includes(def.fallback)) {
      ctx.addIssue({ code: "custom", path: ["fallback"], message: `fallback must be one of the allowed values (${def.values.join(", ")})` });
    }
  });

/** A resource attribute condition of a cost multiplier: every field given must match. */
export const CostMultiplierCondition = z
  .strictObject({
    /** Matches `resource.meta.type` or `resource.type`. */
    type: z.string().min(1).max(200).optional(),
    /** Contained in `resource.meta.tags` or `resource.tags`. */
    tag: z.string().min(1).max(200).optional(),
  })
  .refine((when) => when.type !== undefined || when.tag !== undefined, "when needs a type or a tag");
export const CreditCosts = z.strictObject({
  /** Price of a request that names no action, or an action without its own price. */
  base: z.number().finite().min(0).max(1_000_000_000).default(1),
  /** action → price, replacing `base` for that action. */
  actions: z.record(z.string().min(1).max(100), z.number().finite().min(0).max(1_000_000_000)).optional(),
  /** Applied in order, each whose `when` matches the request's resource. */
  multipliers: z
    .array(z.strictObject({ when: CostMultiplierCondition, factor: z.number().finite().gt(0).max(1_000_000) }))
    .max(50)
    .optional(),
  /**
   * Asset prices: a request whose resource names several assets (`resource.assets` or `resource.meta.assets`, a list of
   * asset ids) costs the sum of their prices (an asset not listed here costs what the action costs).
   */
  assets: z.record(z.string().min(1).max(200), z.number().finite().min(0).max(1_000_000_000)).optional(),
  /**
   * Matrix entries: a combination of assets priced differently from its parts. Each bundle (in order) whose assets the
   * request all names, and none of which an earlier bundle took, multiplies the price of those assets by `factor`.
   */
  bundles: z
    .array(z.strictObject({ assets: z.array(z.string().min(1).max(200)).min(2).max(50), factor: z.number().finite().gt(0).max(1_000_000) }))
    .max(50)
    .optional(),
});
export type CreditCosts = z.infer<typeof CreditCosts>;

/**
 * A balance per user: plans grant a periodic allowance (`{credits: {amount, period}}`), admin grants top it up, and
 * each decision that consumes it deducts the price of its action (see `costs`), never below zero.
 */
export const CreditsPropertyDefinition = z
  .strictObject({
    type: z.literal("credits"),
    costs: CreditCosts.default({ base: 1 }),
    conflict: ConflictRule.default("higher"),
    /** Fail open (grant) or closed (deny) when the meter is unreachable. */
    onMeterFailure: MeterFailureMode.default("closed"),
    /**
     * Credits for money: a paid one-time purchase of the Stripe product adds `amount` credits to the buyer's balance
     * (once per payment, however often its webhook arrives); a refund or dispute that revokes the purchase takes them
     * back (down to 0).
     */
    packs: z
      .array(z.strictObject({ stripeProductId: z.string().min(1).max(255), amount: z.number().int().min(1).max(1_000_000_000) }))
      .max(50)
      .optional(),
    /**
     * Automatic top-up: when a deduction leaves a signed-in user's balance below `below`, the pack of `pack` (one of
     * `packs`) is bought in the background with the user's saved payment method (at most once per 10 minutes).
     */
    autoTopUp: z.strictObject({ below: z.number().int().min(0).max(1_000_000_000), pack: z.string().min(1).max(255) }).optional(),
  })
  .superRefine((definition, ctx) => {
    const seen = new Set<string>();
    definition.packs?.forEach((pack, index) => {
      if (seen.has(pack.stripeProductId)) ctx.addIssue({ code: "custom", path: ["packs", index, "stripeProductId"], message: `${pack.stripeProductId} already has a pack` });
      seen.add(pack.stripeProductId);
    });
    if (definition.autoTopUp && !seen.has(definition.autoTopUp.pack)) {
      ctx.addIssue({ code: "custom", path: ["autoTopUp", "pack"], message: `${definition.autoTopUp.pack} is not one of this property's packs` });
    }
  });

export const PropertyDefinition = z.discriminatedUnion("type", [
  EnabledPropertyDefinition,
  BooleanPropertyDefinition,
  NumberPropertyDefinition,
  StringPropertyDefinition,
  CreditsPropertyDefinition,
]);
export type PropertyDefinition = z.infer<typeof PropertyDefinition>;
export type PropertyType = PropertyDefinition["type"];

export const FeatureDefinition = z
  .strictObject({
    /** Stable id; counters are keyed by it, so renaming the slug keeps usage. Assigned on first save when absent. */
    id: FeatureId.optional(),
    name: Name.optional(),
    description: Description.optional(),
    /** `enabled` exists on every feature; declare it here only to change its fallback or conflict rule. */
    properties: z.record(Slug, PropertyDefinition).default({}),
  })
  .superRefine((feature, ctx) => {
    for (const [slug, def] of Object.entries(feature.properties)) {
      if (slug === "enabled" && def.type !== "enabled") {
        ctx.addIssue({ code: "custom", path: ["properties", slug, "type"], message: "the enabled property must have type \"enabled\"" });
      }
      if (slug !== "enabled" && def.type === "enabled") {
        ctx.addIssue({ code: "custom", path: ["properties", slug, "type"], message: "only the property named enabled may have type \"enabled\"" });
      }
    }
  });
export type FeatureDefinition = z.infer<typeof FeatureDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// Plans

export const MeteredValue = z.strictObject({
  metered: z
    .strictObject({
      limit: z.number().int().min(0).max(1_000_000_000),
      period: Period.default("month"),
      /** Count each resource id once per period. */
      uniqueResources: z.boolean().default(false),
      /**
       * Past the limit: `cap` (the default) refuses, `overflow` keeps granting and reports the units beyond the limit
       * (`overageUnits`), to Stripe when `stripeMeterEvent` is set.
       */
      overage: z.enum(["cap", "overflow"]).optional(),
      /** The `event_name` of the Stripe Billing Meter the overage units are reported to (overflow only). */
      stripeMeterEvent: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, "a Stripe meter event name: 1-100 of A-Z a-z 0-9 _ -").optional(),
    })
    .refine((metered) => metered.stripeMeterEvent === undefined || metered.overage === "overflow", {
      message: "stripeMeterEvent needs overage: overflow (a capped allowance has no units beyond its limit to report)",
      path: ["stripeMeterEvent"],
    }),
});
/** `on`/`off` (or true/false) or a metered allowance. */
export const EnabledValue = z.union([z.enum(["on", "off"]), z.boolean(), MeteredValue]);
export type EnabledValue = z.infer<typeof EnabledValue>;
/**
 * A credits property's periodic allowance: `amount` credits added once per `period`. `carryOver`: at most this many
 * credits of a period's unused allowance stay when the next period begins (0: use it or lose it); absent, all stay.
 * Credits from elsewhere (packs, top-ups) are spent after the allowance and never expire.
 */
export const CreditsValue = z.strictObject({
  credits: z.strictObject({
    amount: z.number().int().min(0).max(1_000_000_000),
    period: Period.default("month"),
    carryOver: z.number().int().min(0).max(1_000_000_000).optional(),
  }),
});
export type CreditsValue = z.infer<typeof CreditsValue>;
export const PlanPropertyValue = z.union([z.string().max(1000), z.number().finite(), z.boolean(), MeteredValue, CreditsValue]);
export type PlanPropertyValue = z.infer<typeof PlanPropertyValue>;

/**
 * What a plan's crawlers and agents pay per decision on a surface: `"USD 0.01"` (an ISO 4217 code, a space, at most
 * nine integer digits and six decimals — the form pay-per-crawl's headers use), or `"forbidden"`.
 */
export const CRAWL_PRICE_PATTERN = /^[A-Z]{3} \d{1,9}(\.\d{1,6})?$/;
export const CrawlPrice = z.union([z.literal("forbidden"), z.string().regex(CRAWL_PRICE_PATTERN, 'must be a price such as "USD 0.01" (ISO currency code in capitals, a space, an amount with at most 6 decimals) or "forbidden"')]);

export const PlanDefinition = z.strictObject({
  name: Name.optional(),
  description: Description.optional(),
  autoAssign: z.array(AutoAssignCategory).default([]),
  stripeProductIds: z.array(z.string().min(1).max(255)).default([]),
  /** featureSlug → propertySlug → value. Properties a plan does not list stay unassigned by this plan. */
  features: z.record(Slug, z.record(Slug, PlanPropertyValue)).default({}),
  /**
   * surfaceSlug → what one decision on that surface costs this plan's crawlers and agents (pay-per-crawl, x402).
   * Meant for plans auto-assigned to `ai-agent` / `search-crawler`: verified agents pay instead of being metered.
   */
  payPerCrawl: z.record(Slug, CrawlPrice).optional(),
});
export type PlanDefinition = z.infer<typeof PlanDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// Surfaces

export const ComponentDefinition = z.strictObject({
  name: Name.optional(),
  cssSelector: z.string().max(500).optional(),
  /** Offer groups this component shows: its workflow receives them resolved (`offers`) to place as elements. */
  offerGroups: z.array(Slug).max(20).optional(),
});
export const PropertyReference = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}\.[a-z0-9][a-z0-9_-]{0,62}$/, "must be featureSlug.propertySlug");
export const SurfaceDefinition = z.strictObject({
  name: Name.optional(),
  description: Description.optional(),
  /** Metered (`enabled`) and `credits` properties (`feature.property`) that one decision on this surface consumes. */
  consumes: z.array(PropertyReference).default([]),
  components: z.record(Slug, ComponentDefinition).default({}),
  /** Offer groups a decision on this surface resolves and returns (`offers`), with its components' own. */
  offerGroups: z.array(Slug).max(20).default([]),
});
export type SurfaceDefinition = z.infer<typeof SurfaceDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// Authentication methods (JWT)

export const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"] as const;
export const JwtAlgorithm = z.enum(JWT_ALGORITHMS);
export type JwtAlgorithm = z.infer<typeof JwtAlgorithm>;

export const AuthMethodDefinition = z
  .strictObject({
    name: Name.optional(),
    type: z.literal("jwt").default("jwt"),
    publicKey: z.string().min(1).max(20_000).optional(),
    /** https only: a key set fetched in the clear could be swapped in transit. */
    jwksUrl: z.url({ protocol: /^https$/ }).optional(),
    algorithms: z.array(JwtAlgorithm).min(1).default(["RS256"]),
    /** The claim whose value becomes the identity's identifier. */
    identifierClaim: z.string().min(1).max(200).default("sub"),
    issuer: z.string().min(1).max(500).optional(),
    audience: z.string().min(1).max(500).optional(),
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    /** Refuse tokens without an `exp` claim (off by default: some identity providers issue tokens that never expire). */
    requireExpiry: z.boolean().optional(),
  })
  .superRefine((method, ctx) => {
    if (!!method.publicKey === !!method.jwksUrl) {
      ctx.addIssue({ code: "custom", path: ["publicKey"], message: "exactly one of publicKey and jwksUrl is required" });
    }
    if (method.publicKey && !/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/.test(method.publicKey)) {
      ctx.addIssue({ code: "custom", path: ["publicKey"], message: "must be a PEM-encoded SPKI public key (-----BEGIN PUBLIC KEY-----)" });
    }
  });
export type AuthMethodDefinition = z.infer<typeof AuthMethodDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// Workflows (stored and versioned with the config; executed by the workflow runtime)

export const WORKFLOW_TYPES = ["middleware", "provisioning", "feature", "surface", "component", "endpoint", "action", "redemption"] as const;
export const WorkflowType = z.enum(WORKFLOW_TYPES);
export type WorkflowType = z.infer<typeof WorkflowType>;

/** The platform's ceiling on a workflow call's CPU time (ms), whatever the workflow asks for. */
export const WORKFLOW_CPU_MS_CAP = 5_000;

export const WorkflowDefinition = z.strictObject({
  name: Name.optional(),
  type: WorkflowType,
  /** TypeScript source; the default export is the workflow function. */
  source: z.string().min(1).max(200_000),
  /** feature workflows: the feature they adjust. */
  feature: Slug.optional(),
  /** surface and component workflows: the surface (and component) they decide for. */
  surface: Slug.optional(),
  component: Slug.optional(),
  /** endpoint workflows: path under /api/v1/envs/{environmentId}/endpoints/ and who may call it. */
  path: z.string().regex(/^[A-Za-z0-9._~\-/]{1,200}$/).optional(),
  access: z.enum(["none", "publishable", "secret"]).optional(),
  /** action workflows: the trigger names that run them. */
  triggers: z.array(z.string().min(1).max(100)).optional(),
  /** A required workflow fails the request (531) instead of degrading to its fallback. */
  required: z.boolean().default(false),
  deadlineMs: z.number().int().min(1).max(30_000).optional(),
  /**
   * CPU time one call may use (ms). Without it: 50 for the synchronous types, 200 for redemptions, 1,000 for actions (see the workflow
   * runner); never above WORKFLOW_CPU_MS_CAP. The operation budget of the call scales with it.
   */
  cpuMs: z.number().int().min(1).max(WORKFLOW_CPU_MS_CAP).optional(),
});
export type WorkflowDefinition = z.infer<typeof WorkflowDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// Triggers

/** Fired by the platform itself; action workflows may listen to them, customer code may not fire them. */
export const SYSTEM_TRIGGERS = ["decision.made", "counters.updated", "plans.changed", "user.added"] as const;
export const TRIGGER_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,99}$/;
export const TriggerName = z.string().regex(TRIGGER_NAME_PATTERN, "must be 1-100 characters of a-z, 0-9, '.', '_' or '-'");

/** How deep a free-form value of the document (a trigger's schema) may nest: beyond any real schema, far below the stack. */
export const MAX_JSON_DEPTH = 64;

/**
 * Why `value` is not plain JSON nested at most MAX_JSON_DEPTH levels, or undefined. A document may come from YAML,
 * whose aliases can build cycles and whose tags build dates, byte arrays and sets; none of them survives storage as
 * JSON, and a cycle or a very deep value overflows the stack of every later read, diff and edit.
 */
export function jsonValueProblem(value: unknown, depth = 0): string | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "numbers must be finite";
  if (typeof value !== "object") return `not a JSON value (${typeof value})`;
  if (depth >= MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels (or refers to itself)`;
  const prototype = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null) return `not a JSON value (${Object.prototype.toString.call(value)})`;
  for (const child of Object.values(value)) {
    const problem = jsonValueProblem(child, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Trigger payloads are validated on the platform's shared isolate, so a schema must not be able to make that cost
 * more than its size: no regular expressions (a backtracking `pattern` stalls the isolate), no references (`$ref`
 * chains fan out exponentially) and no `uniqueItems` (compares every item with every other). Keywords are found wherever a validator could read them — every key of every object
 * except property names (`properties` and other name maps) and data (`const`, `enum`, `default`, `examples`) — so
 * no unusual keyword or non-string value hides one.
 */
const FORBIDDEN_SCHEMA_KEYWORDS = new Set(["pattern", "patternProperties", "$ref", "$dynamicRef", "$recursiveRef", "$anchor", "$dynamicAnchor", "$id", "uniqueItems"]);
const NAME_MAPS = new Set(["properties", "$defs", "definitions", "dependentSchemas", "dependentRequired", "dependencies"]);
const DATA_KEYWORDS = new Set(["const", "enum", "default", "examples"]);
export const MAX_TRIGGER_SCHEMA_BYTES = 8 * 1024;

/** The path of the first keyword trigger schemas may not use, or null. */
function forbiddenKeywordIn(node: unknown, path: (string | number)[] = [], namesOnly = false): (string | number)[] | null {
  if (Array.isArray(node)) {
    for (const [index, item] of node.entries()) {
      const found = forbiddenKeywordIn(item, [...path, index]);
      if (found) return found;
    }
    return null;
  }
  if (typeof node !== "object" || node === null) return null;
  for (const [key, value] of Object.entries(node)) {
    if (!namesOnly && FORBIDDEN_SCHEMA_KEYWORDS.has(key)) return [...path, key];
    if (!namesOnly && DATA_KEYWORDS.has(key)) continue;
    const found = forbiddenKeywordIn(value, [...path, key], !namesOnly && NAME_MAPS.has(key));
    if (found) return found;
  }
  return null;
}

/** A custom trigger: workflows fire it with `utils.triggers.fire(name, payload)`; the payload must match `schema`. */
export const TriggerDefinition = z
  .strictObject({
    description: Description.optional(),
    /** JSON Schema (draft 2020-12) of the payload; `{}` accepts any JSON. */
    schema: z.record(z.string(), z.unknown()).default({}),
  })
  .superRefine((trigger, ctx) => checkPlatformSchema(trigger.schema, "trigger", ctx));
export type TriggerDefinition = z.infer<typeof TriggerDefinition>;

/**
 * Refines a JSON Schema that the platform validates customer data against on its shared isolate (trigger payloads,
 * redemption inputs): plain JSON, at most MAX_TRIGGER_SCHEMA_BYTES, none of the keywords that could stall the
 * isolate, and one the validator accepts. Issues go to `schema` (and below).
 */
function checkPlatformSchema(schema: Record<string, unknown>, what: string, ctx: z.RefinementCtx): void {
  const problem = jsonValueProblem(schema);
  if (problem) {
    ctx.addIssue({ code: "custom", path: ["schema"], message: `not a usable JSON Schema: ${problem}` });
    return;
  }
  const size = new TextEncoder().encode(JSON.stringify(schema)).byteLength;
  if (size > MAX_TRIGGER_SCHEMA_BYTES) {
    ctx.addIssue({ code: "custom", path: ["schema"], message: `${what} schemas are limited to ${MAX_TRIGGER_SCHEMA_BYTES} bytes (this one is ${size})` });
    return;
  }
  const forbidden = forbiddenKeywordIn(schema);
  if (forbidden) {
    ctx.addIssue({
      code: "custom",
      path: ["schema", ...forbidden],
      message: `${String(forbidden.at(-1))} is not supported in ${what} schemas: data is validated on the platform's shared isolate, where regular expressions (pattern, patternProperties) and references ($ref and the like) could stall other tenants`,
    });
    return;
  }
  try {
    new Validator(schema as Schema, "2020-12").validate(null);
  } catch (error) {
    ctx.addIssue({ code: "custom", path: ["schema"], message: `not a usable JSON Schema: ${error instanceof Error ? error.message : String(error)}` });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Offers: purchase options shown to the people (and agents) a decision is about, and how each is redeemed

export const USER_TYPES = ["anonymous", "authenticated", "bot"] as const;
export const UserType = z.enum(USER_TYPES);
export type UserType = z.infer<typeof UserType>;
export const BOT_CATEGORIES = ["search-crawler", "ai-crawler", "ai-assistant", "ai-agent", "analytics-monitor", "page-previewer", "other"] as const;
const CountryCode = z.string().regex(/^[A-Z]{2}$/, "must be an ISO 3166-1 alpha-2 country code such as US or DE");
const Instant = z.iso.datetime({ offset: true, error: "must be an ISO 8601 date-time such as 2026-12-01T00:00:00Z" });
const StripeObjectId = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[A-Za-z0-9_]{1,250}$`), `must be a Stripe id (${prefix}_…)`);
const MinorAmount = z.number().int().min(0).max(100_000_000);

/** A condition on one property of the decision's feature state; every field given must hold. */
export const FeatureStateCondition = z
  .strictObject({
    /** `feature.property`. */
    property: PropertyReference,
    /** Whether access is left (meterable and credits properties, and `enabled` in general). */
    hasAccess: z.boolean().optional(),
    /** Usage volume of a meterable property this period (`consumedUnits`) at least / below. */
    consumedAtLeast: z.number().int().min(0).optional(),
    consumedBelow: z.number().int().min(0).optional(),
    /** The value of a boolean, number or string property. */
    equals: z.union([z.string().max(1000), z.number().finite(), z.boolean()]).optional(),
  })
  .refine((condition) => Object.keys(condition).length > 1, "a feature-state condition needs hasAccess, consumedAtLeast, consumedBelow or equals");

/**
 * Who (and when) an offer is for, and when a price adjustment applies: every field given must hold. Plans: the
 * identity must hold one of `include` (when given) and none of `exclude` — exclude wins.
 */
export const OfferConditions = z
  .strictObject({
    /** Shown from this instant on (inclusive)… */
    from: Instant.optional(),
    /** …and before this one (exclusive). */
    until: Instant.optional(),
    /** `bot` is a request tagged as a verified bot; an unverified one counts as what its identity is. */
    userTypes: z.array(UserType).min(1).optional(),
    /** Bots only: the verified bot's category must be one of these. */
    botCategories: z.array(z.enum(BOT_CATEGORIES)).min(1).optional(),
    plans: z.strictObject({ include: z.array(Slug).max(100).optional(), exclude: z.array(Slug).max(100).optional() }).optional(),
    /** The request's country (Cloudflare's `cf.country`); a request without one never matches. */
    countries: z.array(CountryCode).min(1).max(250).optional(),
    featureState: FeatureStateCondition.optional(),
  })
  .refine((conditions) => !conditions.from || !conditions.until || Date.parse(conditions.from) < Date.parse(conditions.until), {
    message: "until must be after from",
    path: ["until"],
  });
export type OfferConditions = z.infer<typeof OfferConditions>;

/**
 * What an offer costs, in the currency's minor unit (cents). Either one `amount`, or a `bundle`: items (each its own
 * Stripe product) sold together at `multiplier` times their sum. `adjustments` make it dynamic: the first whose
 * conditions hold replaces the amount or multiplies it (segment, time window, usage volume). The price a visitor is
 * shown is what the offer token binds and what redemption charges.
 */
export const OfferPrice = z
  .strictObject({
    currency: z.string().regex(/^[a-z]{3}$/, "must be a lowercase ISO 4217 currency code such as usd"),
    amount: MinorAmount.optional(),
    /** Recurring (a subscription) every `interval`; absent: a one-time payment. */
    interval: z.enum(["day", "week", "month", "year"]).optional(),
    bundle: z
      .strictObject({
        items: z
          .array(z.strictObject({ name: Name, stripeProductId: StripeObjectId("prod"), amount: MinorAmount }))
          .min(2)
          .max(20),
        multiplier: z.number().finite().gt(0).max(10),
      })
      .optional(),
    adjustments: z
      .array(
        z
          .strictObject({ when: OfferConditions, amount: MinorAmount.optional(), multiplier: z.number().finite().gt(0).max(100).optional() })
          .refine((adjustment) => (adjustment.amount === undefined) !== (adjustment.multiplier === undefined), "an adjustment needs exactly one of amount and multiplier"),
      )
      .max(20)
      .optional(),
  })
  .refine((price) => (price.amount === undefined) !== (price.bundle === undefined), { message: "a price needs exactly one of amount and bundle", path: ["amount"] });
export type OfferPrice = z.infer<typeof OfferPrice>;

/** What the offer looks like where it is shown; `fields` carries anything else a client renders. */
export const OfferPresentation = z.strictObject({
  title: z.string().min(1).max(200),
  description: Description.optional(),
  /** The price as text (e.g. "$9.99 / month"); without it the price is formatted for the client. */
  priceDisplay: z.string().max(200).optional(),
  callToAction: z.string().max(100).optional(),
  imageUrl: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  fields: z.record(z.string().min(1).max(100), z.unknown()).optional(),
});
export type OfferPresentation = z.infer<typeof OfferPresentation>;

const RedirectUrl = z.url({ protocol: /^https?$/ }).max(2048);

/**
 * How an offer is redeemed. `checkout`: a Stripe Checkout session for the offer's price (one-time or subscription,
 * with an optional trial and coupon); the completed checkout grants `plan` through the payment webhooks.
 * `subscription_change`: the signed-in customer's current subscription moves to `stripePriceId` now, prorated.
 * `scheduled_change`: it moves at the end of the current period. `workflow`: the redemption workflow `workflow` runs
 * with the client's `input` (validated against `schema`) and its result goes back to the client.
 */
export const OfferRedemption = z.discriminatedUnion("method", [
  z.strictObject({
    method: z.literal("checkout"),
    /** The plan the purchase grants: the Stripe price's product must be one of its products. Optional for a bundle. */
    plan: Slug.optional(),
    /** The Stripe price charged while the offer's price is its plain `amount` (no adjustment, no bundle). */
    stripePriceId: StripeObjectId("price").optional(),
    trialDays: z.number().int().min(1).max(730).optional(),
    /** A Stripe coupon applied to the session. */
    coupon: z.string().min(1).max(255).optional(),
    /** Defaults for the redirect URLs; the redemption request may name others on the allowed origins. */
    successUrl: RedirectUrl.optional(),
    cancelUrl: RedirectUrl.optional(),
  }),
  z.strictObject({
    method: z.literal("subscription_change"),
    plan: Slug,
    stripePriceId: StripeObjectId("price"),
    proration: z.enum(["create_prorations", "always_invoice", "none"]).default("create_prorations"),
  }),
  z.strictObject({
    method: z.literal("scheduled_change"),
    plan: Slug,
    stripePriceId: StripeObjectId("price"),
  }),
  z
    .strictObject({
      method: z.literal("workflow"),
      workflow: Slug,
      /** JSON Schema (draft 2020-12) of the client's `input`; `{}` accepts any JSON. */
      schema: z.record(z.string(), z.unknown()).default({}),
    })
    .superRefine((redemption, ctx) => checkPlatformSchema(redemption.schema, "redemption input", ctx)),
]);
export type OfferRedemption = z.infer<typeof OfferRedemption>;

/** An A/B variant: identities whose testGroup100 is in [from, to] see it, with its presentation and price. */
export const OfferVariant = z
  .strictObject({
    testGroups: z.strictObject({ from: z.number().int().min(0).max(99), to: z.number().int().min(0).max(99) }),
    presentation: OfferPresentation.partial().optional(),
    price: OfferPrice.optional(),
    /** The Stripe price of a checkout while this variant's price is its plain amount. */
    stripePriceId: StripeObjectId("price").optional(),
  })
  .refine((variant) => variant.testGroups.from <= variant.testGroups.to, { message: "from must not exceed to", path: ["testGroups", "to"] });

export const OfferDefinition = z
  .strictObject({
    name: Name.optional(),
    presentation: OfferPresentation,
    /** Required by the Stripe methods; a workflow redemption may go without. */
    price: OfferPrice.optional(),
    redemption: OfferRedemption,
    targeting: OfferConditions.default({}),
    /** Non-overlapping testGroup100 ranges; an identity outside every range sees the offer itself (variant null). */
    variants: z.record(Slug, OfferVariant).optional(),
  })
  .superRefine((offer, ctx) => {
    const method = offer.redemption.method;
    if (method !== "workflow" && !offer.price) ctx.addIssue({ code: "custom", path: ["price"], message: `a ${method} offer needs a price` });
    if (method !== "checkout" && offer.price?.bundle) {
      ctx.addIssue({ code: "custom", path: ["price", "bundle"], message: "only checkout offers can sell a bundle" });
    }
    if (method === "checkout" && offer.price && !offer.price.bundle && !offer.redemption.plan) {
      ctx.addIssue({ code: "custom", path: ["redemption", "plan"], message: "a checkout offer needs the plan it grants (unless its price is a bundle)" });
    }
    if (method === "checkout" && offer.price && !offer.price.bundle && !offer.redemption.stripePriceId) {
      ctx.addIssue({ code: "custom", path: ["redemption", "stripePriceId"], message: "a checkout offer needs the Stripe price it charges (unless its price is a bundle)" });
    }
    if (offer.targeting.botCategories && offer.targeting.userTypes && !offer.targeting.userTypes.includes("bot")) {
      ctx.addIssue({ code: "custom", path: ["targeting", "botCategories"], message: "botCategories only match bots: add bot to userTypes" });
    }
    const ranges = Object.entries(offer.variants ?? {}).sort(([, a], [, b]) => a.testGroups.from - b.testGroups.from);
    for (let index = 1; index < ranges.length; index++) {
      const [previousSlug, previous] = ranges[index - 1]!;
      const [slug, variant] = ranges[index]!;
      if (variant.testGroups.from <= previous.testGroups.to) {
        ctx.addIssue({ code: "custom", path: ["variants", slug, "testGroups"], message: `overlaps variant ${previousSlug}'s test groups` });
      }
    }
    // A subscription change moves the subscription to a Stripe price as it is: it cannot charge an adjusted amount.
    const changesSubscription = method === "subscription_change" || method === "scheduled_change";
    const noAdjustments = `a ${method} offer charges its Stripe price as it is: adjustments (dynamic prices) need a checkout offer`;
    if (changesSubscription && offer.price?.adjustments) ctx.addIssue({ code: "custom", path: ["price", "adjustments"], message: noAdjustments });
    for (const [slug, variant] of Object.entries(offer.variants ?? {})) {
      if (method !== "checkout" && variant.price?.bundle) {
        ctx.addIssue({ code: "custom", path: ["variants", slug, "price", "bundle"], message: "only checkout offers can sell a bundle" });
      }
      if (changesSubscription && variant.price?.adjustments) ctx.addIssue({ code: "custom", path: ["variants", slug, "price", "adjustments"], message: noAdjustments });
      if (changesSubscription && variant.price && !variant.stripePriceId) {
        ctx.addIssue({ code: "custom", path: ["variants", slug, "stripePriceId"], message: `a variant with a price of its own needs the Stripe price charging it (a ${method} offer moves the subscription to it)` });
      }
    }
  });
export type OfferDefinition = z.infer<typeof OfferDefinition>;

/** Slots in display order; each shows the first eligible offer of its ranked list not already shown by an earlier slot. */
export const OfferGroupDefinition = z.strictObject({
  name: Name.optional(),
  slots: z
    .array(z.strictObject({ name: z.string().min(1).max(100).optional(), offers: z.array(Slug).min(1).max(20) }))
    .min(1)
    .max(20),
});
export type OfferGroupDefinition = z.infer<typeof OfferGroupDefinition>;

// ---------------------------------------------------------------------------------------------------------------
// The document

export const SettingsDefinition = z.strictObject({
  /** IANA time zone that calendar periods (day, week, month, year) align to. */
  timeZone: z
    .string()
    .default("UTC")
    .refine((tz) => {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, "must be an IANA time zone such as UTC or Europe/Berlin"),
  /**
   * Invoicing of pay-per-crawl: each charge a crawler's signature agreed to (not x402 payments, settled already) is
   * reported to the payer's Stripe customer as a Billing Meter event of this name, valued in micro-units of the price's
   * currency (1 USD = 1,000,000).
   */
  payPerCrawl: z.strictObject({ stripeMeterEvent: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, "a Stripe meter event name: 1-100 of A-Z a-z 0-9 _ -") }).optional(),
});

const ConfigDocumentShape = z.strictObject({
  version: z.literal(1).default(1),
  settings: SettingsDefinition.default({ timeZone: "UTC" }),
  features: z.record(Slug, FeatureDefinition).default({}),
  plans: z.record(Slug, PlanDefinition).default({}),
  surfaces: z.record(Slug, SurfaceDefinition).default({}),
  authMethods: z.record(Slug, AuthMethodDefinition).default({}),
  workflows: z.record(Slug, WorkflowDefinition).default({}),
  triggers: z.record(TriggerName, TriggerDefinition).default({}),
  offers: z.record(Slug, OfferDefinition).default({}),
  offerGroups: z.record(Slug, OfferGroupDefinition).default({}),
});

/** The enabled property every feature has, with the defaults used when the document does not declare it. */
export function propertiesOf(feature: FeatureDefinition): Record<string, PropertyDefinition> {
  if (feature.properties.enabled) return feature.properties;
  return { enabled: { type: "enabled", fallback: "off", conflict: "higher", onMeterFailure: "closed" }, ...feature.properties };
}

/**
 * `record[key]` if `record` has it as its own key. References are user input, and a slug such as `constructor` is
 * valid: a plain lookup would find Object.prototype's member instead of reporting a missing item.
 */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Checks that need the whole document: references between collections and value types. */
function checkReferences(doc: z.infer<typeof ConfigDocumentShape>, ctx: z.RefinementCtx): void {
  const seenIds = new Map<string, string>();
  for (const [slug, feature] of Object.entries(doc.features)) {
    if (!feature.id) continue;
    const other = seenIds.get(feature.id);
    if (other) ctx.addIssue({ code: "custom", path: ["features", slug, "id"], message: `id ${feature.id} is also used by feature ${other}` });
    seenIds.set(feature.id, slug);
  }

  for (const [planSlug, plan] of Object.entries(doc.plans)) {
    for (const [featureSlug, values] of Object.entries(plan.features)) {
      const feature = own(doc.features, featureSlug);
      if (!feature) {
        ctx.addIssue({ code: "custom", path: ["plans", planSlug, "features", featureSlug], message: `unknown feature ${featureSlug}` });
        continue;
      }
      const properties = propertiesOf(feature);
      for (const [propertySlug, value] of Object.entries(values)) {
        const path = ["plans", planSlug, "features", featureSlug, propertySlug];
        const def = own(properties, propertySlug);
        if (!def) {
          ctx.addIssue({ code: "custom", path, message: `feature ${featureSlug} has no property ${propertySlug}` });
          continue;
        }
        const problem = checkPlanValue(def, value);
        if (problem) ctx.addIssue({ code: "custom", path, message: problem });
      }
    }
  }

  // One currency for every crawl price: a crawler is asked, and charged, in one currency whichever plan prices it.
  const crawlCurrencies = new Set<string>();
  for (const [planSlug, plan] of Object.entries(doc.plans)) {
    for (const [surfaceSlug, price] of Object.entries(plan.payPerCrawl ?? {})) {
      if (!own(doc.surfaces, surfaceSlug)) ctx.addIssue({ code: "custom", path: ["plans", planSlug, "payPerCrawl", surfaceSlug], message: `unknown surface ${surfaceSlug}` });
      if (price !== "forbidden") crawlCurrencies.add(price.slice(0, 3));
    }
  }
  if (crawlCurrencies.size > 1) {
    ctx.addIssue({ code: "custom", path: ["plans"], message: `every payPerCrawl price must use one currency (found ${[...crawlCurrencies].sort().join(", ")})` });
  }

  for (const [surfaceSlug, surface] of Object.entries(doc.surfaces)) {
    surface.consumes.forEach((reference, index) => {
      const [featureSlug = "", propertySlug = ""] = reference.split(".");
      const feature = own(doc.features, featureSlug);
      const def = feature ? own(propertiesOf(feature), propertySlug) : undefined;
      if (!def) {
        ctx.addIssue({ code: "custom", path: ["surfaces", surfaceSlug, "consumes", index], message: `unknown property ${reference}` });
      } else if (def.type !== "enabled" && def.type !== "credits") {
        ctx.addIssue({ code: "custom", path: ["surfaces", surfaceSlug, "consumes", index], message: `${reference} is not a meterable or credits property` });
      }
    });
  }

  const endpointPaths = new Map<string, string>();
  for (const [workflowSlug, workflow] of Object.entries(doc.workflows)) {
    if (workflow.type !== "endpoint" || !workflow.path) continue;
    const path = workflow.path.replace(/^\/+|\/+$/g, "");
    const other = endpointPaths.get(path);
    if (other) ctx.addIssue({ code: "custom", path: ["workflows", workflowSlug, "path"], message: `path ${workflow.path} is also served by endpoint workflow ${other}` });
    endpointPaths.set(path, workflowSlug);
  }

  // A surface (and each component of it) has one behaviour: a second workflow for it would never run.
  const behaviourOwners = new Map<string, string>();
  for (const [workflowSlug, workflow] of Object.entries(doc.workflows)) {
    if ((workflow.type !== "surface" && workflow.type !== "component") || !workflow.surface) continue;
    const target = workflow.type === "surface" ? `surface ${workflow.surface}` : `component ${workflow.surface}.${workflow.component ?? ""}`;
    const other = behaviourOwners.get(target);
    if (other) ctx.addIssue({ code: "custom", path: ["workflows", workflowSlug, workflow.type], message: `${target} already has workflow ${other}: one workflow decides it` });
    behaviourOwners.set(target, workflowSlug);
  }

  for (const [workflowSlug, workflow] of Object.entries(doc.workflows)) {
    const path = (field: string) => ["workflows", workflowSlug, field];
    const surface = workflow.surface ? own(doc.surfaces, workflow.surface) : undefined;
    if (workflow.type === "feature" && (!workflow.feature || !own(doc.features, workflow.feature))) {
      ctx.addIssue({ code: "custom", path: path("feature"), message: "a feature workflow must name an existing feature" });
    }
    if ((workflow.type === "surface" || workflow.type === "component") && !surface) {
      ctx.addIssue({ code: "custom", path: path("surface"), message: `a ${workflow.type} workflow must name an existing surface` });
    }
    if (workflow.type === "component" && surface) {
      if (!workflow.component || !own(surface.components, workflow.component)) {
        ctx.addIssue({ code: "custom", path: path("component"), message: "a component workflow must name a component of its surface" });
      }
    }
    if (workflow.type === "endpoint" && !workflow.path) {
      ctx.addIssue({ code: "custom", path: path("path"), message: "an endpoint workflow needs a path" });
    }
    if (workflow.type === "action" && !workflow.triggers?.length) {
      ctx.addIssue({ code: "custom", path: path("triggers"), message: "an action workflow needs at least one trigger" });
    }
    workflow.triggers?.forEach((trigger, index) => {
      if (!(SYSTEM_TRIGGERS as readonly string[]).includes(trigger) && !own(doc.triggers, trigger)) {
        ctx.addIssue({
          code: "custom",
          path: ["workflows", workflowSlug, "triggers", index],
          message: `unknown trigger ${trigger}: use a system trigger (${SYSTEM_TRIGGERS.join(", ")}) or declare it under triggers`,
        });
      }
    });
  }
}

/** References of offers and offer groups: plans, properties, workflows, offers, groups. */
function checkOfferReferences(doc: z.infer<typeof ConfigDocumentShape>, ctx: z.RefinementCtx): void {
  const checkConditions = (conditions: OfferConditions, path: (string | number)[]) => {
    for (const list of ["include", "exclude"] as const) {
      conditions.plans?.[list]?.forEach((plan, index) => {
        if (!own(doc.plans, plan)) ctx.addIssue({ code: "custom", path: [...path, "plans", list, index], message: `unknown plan ${plan}` });
      });
    }
    const condition = conditions.featureState;
    if (condition) {
      const [featureSlug = "", propertySlug = ""] = condition.property.split(".");
      const feature = own(doc.features, featureSlug);
      const def = feature ? own(propertiesOf(feature), propertySlug) : undefined;
      if (!def) ctx.addIssue({ code: "custom", path: [...path, "featureState", "property"], message: `unknown property ${condition.property}` });
      else {
        // A condition the property's kind can never satisfy would hide the offer for good: refused here instead.
        const problem = featureStateConditionProblem(condition, def);
        if (problem) ctx.addIssue({ code: "custom", path: [...path, "featureState", problem.field], message: problem.message });
      }
    }
  };
  for (const [slug, offer] of Object.entries(doc.offers)) {
    const path = ["offers", slug];
    checkConditions(offer.targeting, [...path, "targeting"]);
    const prices = [
      { price: offer.price, at: [...path, "price"] },
      ...Object.entries(offer.variants ?? {}).map(([variant, definition]) => ({ price: definition.price, at: [...path, "variants", variant, "price"] })),
    ];
    for (const { price, at } of prices) price?.adjustments?.forEach((adjustment, index) => checkConditions(adjustment.when, [...at, "adjustments", index, "when"]));
    const redemption = offer.redemption;
    if (redemption.method === "workflow") {
      const workflow = own(doc.workflows, redemption.workflow);
      if (!workflow || workflow.type !== "redemption") {
        ctx.addIssue({ code: "custom", path: [...path, "redemption", "workflow"], message: `${redemption.workflow} is not a redemption workflow of this configuration` });
      }
    } else if (redemption.plan !== undefined) {
      const plan = own(doc.plans, redemption.plan);
      if (!plan) ctx.addIssue({ code: "custom", path: [...path, "redemption", "plan"], message: `unknown plan ${redemption.plan}` });
      else if (plan.stripeProductIds.length === 0) {
        ctx.addIssue({ code: "custom", path: [...path, "redemption", "plan"], message: `plan ${redemption.plan} is linked to no Stripe product (stripeProductIds): it cannot be bought` });
      }
    }
  }
  for (const [slug, group] of Object.entries(doc.offerGroups)) {
    group.slots.forEach((slot, slotIndex) =>
      slot.offers.forEach((offer, index) => {
        if (!own(doc.offers, offer)) ctx.addIssue({ code: "custom", path: ["offerGroups", slug, "slots", slotIndex, "offers", index], message: `unknown offer ${offer}` });
      }),
    );
  }
  for (const [surfaceSlug, surface] of Object.entries(doc.surfaces)) {
    surface.offerGroups.forEach((group, index) => {
      if (!own(doc.offerGroups, group)) ctx.addIssue({ code: "custom", path: ["surfaces", surfaceSlug, "offerGroups", index], message: `unknown offer group ${group}` });
    });
    for (const [componentSlug, component] of Object.entries(surface.components)) {
      component.offerGroups?.forEach((group, index) => {
        if (!own(doc.offerGroups, group)) {
          ctx.addIssue({ code: "custom", path: ["surfaces", surfaceSlug, "components", componentSlug, "offerGroups", index], message: `unknown offer group ${group}` });
        }
      });
    }
  }
}

/** Which field of a feature-state condition cannot hold for a property of this kind, and why; undefined when all can. */
function featureStateConditionProblem(condition: z.infer<typeof FeatureStateCondition>, def: PropertyDefinition): { field: string; message: string } | undefined {
  const reference = condition.property;
  if (condition.hasAccess !== undefined && def.type !== "enabled" && def.type !== "credits" && def.type !== "boolean") {
    return { field: "hasAccess", message: `hasAccess applies to enabled, credits and boolean properties; ${reference} is a ${def.type} property` };
  }
  if ((condition.consumedAtLeast !== undefined || condition.consumedBelow !== undefined) && def.type !== "enabled") {
    return { field: condition.consumedAtLeast !== undefined ? "consumedAtLeast" : "consumedBelow", message: `usage conditions apply to metered enabled properties; ${reference} is a ${def.type} property` };
  }
  if (condition.equals !== undefined) {
    if (def.type !== "boolean" && def.type !== "number" && def.type !== "string") {
      return { field: "equals", message: `equals applies to boolean, number and string properties; ${reference} is a ${def.type} property` };
    }
    if (typeof condition.equals !== def.type) return { field: "equals", message: `${reference} is a ${def.type} property: equals must be a ${def.type}` };
    if (def.type === "string" && def.values && !def.values.includes(condition.equals as string)) {
      return { field: "equals", message: `must be one of ${reference}'s values (${def.values.join(", ")})` };
    }
  }
  return undefined;
}

/** Why a plan's value does not fit a property definition, or undefined when it does. */
export function checkPlanValue(def: PropertyDefinition, value: PlanPropertyValue): string | undefined {
  switch (def.type) {
    case "enabled":
      return EnabledValue.safeParse(value).success ? undefined : "enabled takes on, off, true, false or {metered: {limit, period, uniqueResources, overage, stripeMeterEvent}} (stripeMeterEvent only with overage: overflow)";
    case "credits":
      return CreditsValue.safeParse(value).success ? undefined : "credits takes {credits: {amount, period}} (amount an integer ≥ 0)";
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be a boolean";
    case "number":
      return typeof value === "number" ? undefined : "must be a number";
    case "string":
      if (typeof value !== "string") return "must be a string";
      if (def.values && !def.values.includes(value)) return `must be one of ${def.values.join(", ")}`;
      return undefined;
  }
}

export const ConfigDocument = ConfigDocumentShape.superRefine((doc, ctx) => {
  checkReferences(doc, ctx);
  checkOfferReferences(doc, ctx);
});
export type ConfigDocument = z.infer<typeof ConfigDocument>;
export type ConfigDocumentInput = z.input<typeof ConfigDocument>;

export const EMPTY_DOCUMENT: ConfigDocument = ConfigDocument.parse({});
