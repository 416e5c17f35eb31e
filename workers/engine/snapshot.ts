/**
 * The compiled snapshot: the immutable, JSON-serialisable form of one config version that the decision path reads.
 * `compileSnapshot` (workers/config/compile.ts) produces it from a validated document when a version is created;
 * the engine never sees the document itself.
 */
import type { CrawlerPrice } from "./payPerCrawl";
import type { AutoAssignCategory, ConflictRule, JwtAlgorithm, OfferConditions, OfferPresentation, OfferPrice, OfferRedemption, Period, WorkflowType } from "../../schema/config";

export const SNAPSHOT_SCHEMA_VERSION = 1;

export type EnabledSetting =
  | { kind: "on" }
  | { kind: "off" }
  | {
      kind: "metered";
      limit: number;
      period: Period;
      uniqueResources: boolean;
      /**
       * `overflow`: never refused; the units past `limit` are overage (reported, to `stripeMeterEvent` when set).
       * Absent (every snapshot compiled before overage existed, and every capped setting since) or `cap`: refused at
       * the limit. An optional field that old snapshots lack means what they meant, so the schema version stays.
       */
      overage?: "cap" | "overflow";
      /** The `event_name` of the Stripe Billing Meter the overage units are reported to; only with `overflow`. */
      stripeMeterEvent?: string;
    };

/** A plan's periodic allowance of a credits property: `amount` credits once per `period`. */
export interface CreditsSetting {
  kind: "credits";
  amount: number;
  period: Period;
  /** At most this much of a period's unused allowance is kept when the next begins; absent: all of it. */
  carryOver?: number;
}

/** The cost rules of a credits property (schema/config.ts CreditCosts, defaults applied). */
export interface CreditCosts {
  base: number;
  actions?: Record<string, number>;
  multipliers?: { when: { type?: string; tag?: string }; factor: number }[];
  /** Asset id → price; a request naming several assets costs their sum (absent in older versions). */
  assets?: Record<string, number>;
  /** Combinations of assets priced at `factor` times their parts (absent in older versions). */
  bundles?: { assets: string[]; factor: number }[];
}

export type SnapshotProperty =
  | { slug: "enabled"; type: "enabled"; fallback: "on" | "off"; conflict: ConflictRule; onMeterFailure: "open" | "closed" }
  | { slug: string; type: "boolean"; fallback: boolean; conflict: ConflictRule }
  | { slug: string; type: "number"; fallback: number; conflict: ConflictRule }
  | { slug: string; type: "string"; fallback: string; conflict: ConflictRule; values?: string[] }
  | {
      slug: string;
      type: "credits";
      costs: CreditCosts;
      conflict: ConflictRule;
      onMeterFailure: "open" | "closed";
      /** Credits bought with money: a paid one-time purchase of the product adds `amount` (absent in older versions). */
      packs?: { stripeProductId: string; amount: number }[];
      /** Buy the pack of `pack` with the saved payment method when a deduction leaves the balance below `below`. */
      autoTopUp?: { below: number; pack: string };
    };

export interface SnapshotFeature {
  id: string;
  slug: string;
  name: string;
  /** `enabled` first, then the others in slug order. */
  properties: SnapshotProperty[];
}

/** A plan's value for one property: an EnabledSetting for `enabled`, a CreditsSetting for credits, else the scalar. */
export type SnapshotPlanValue = EnabledSetting | CreditsSetting | boolean | number | string;

export interface SnapshotPlan {
  slug: string;
  name: string;
  autoAssign: AutoAssignCategory[];
  stripeProductIds: string[];
  /** featureId → propertySlug → value. */
  values: Record<string, Record<string, SnapshotPlanValue>>;
  /** surfaceSlug → what a decision there costs the plan's crawlers and agents; null: they are refused (absent: not priced). */
  payPerCrawl?: Record<string, CrawlerPrice | null>;
}

export interface SnapshotSurface {
  slug: string;
  name: string;
  consumes: { featureId: string; featureSlug: string; property: string }[];
  /** `offerGroups`: the groups the component shows (absent: none, and in versions before offers). */
  components: { slug: string; name: string; cssSelector?: string; offerGroups?: string[] }[];
  /** The offer groups a decision on the surface resolves (absent: none, and in versions before offers). */
  offerGroups?: string[];
}

/** An A/B variant of an offer: identities whose testGroup100 is in [from, to]. */
export interface SnapshotOfferVariant {
  slug: string;
  from: number;
  to: number;
  presentation?: Partial<OfferPresentation>;
  price?: OfferPrice;
  stripePriceId?: string;
}

/** An offer as the document defines it (schema/config.ts OfferDefinition, defaults applied). */
export interface SnapshotOffer {
  slug: string;
  name: string;
  presentation: OfferPresentation;
  price?: OfferPrice;
  redemption: OfferRedemption;
  targeting: OfferConditions;
  /** In testGroups order. */
  variants: SnapshotOfferVariant[];
  /**
   * SHA-256 (hex) of what the offer charges and how (its prices, variants and redemption). An offer token carries it:
   * a token minted before the operator changed any of it is refused at redemption rather than charging a price the
   * visitor was not shown.
   */
  fingerprint: string;
}

export interface SnapshotOfferGroup {
  slug: string;
  name: string;
  /** In display order; each a ranked list of offer slugs. */
  slots: { name?: string; offers: string[] }[];
}

export interface SnapshotAuthMethod {
  slug: string;
  name: string;
  publicKey?: string;
  jwksUrl?: string;
  algorithms: JwtAlgorithm[];
  identifierClaim: string;
  issuer?: string;
  audience?: string;
  clockSkewSeconds: number;
  requireExpiry?: boolean;
}

export interface SnapshotWorkflow {
  slug: string;
  name: string;
  type: WorkflowType;
  /** JavaScript after type stripping (filled by the workflow compiler). */
  code: string;
  /** SHA-256 of `code`: the cache key of its isolate. */
  codeHash: string;
  feature?: string;
  surface?: string;
  component?: string;
  path?: string;
  access?: "none" | "publishable" | "secret";
  triggers?: string[];
  required: boolean;
  deadlineMs?: number;
  /** CPU limit of one call (ms), as configured; absent means the type's default (workflows/runner.ts). */
  cpuMs?: number;
  /**
   * Never stored: set when a version is loaded if this build refused the workflow's stored code
   * (services/versions.ts). The runners answer its calls as `unavailable` without running anything.
   */
  refused?: string;
}

export interface ConfigSnapshot {
  schemaVersion: typeof SNAPSHOT_SCHEMA_VERSION;
  versionId: string;
  organizationId: string;
  timeZone: string;
  /** `settings.payPerCrawl`: the Stripe Billing Meter event pay-per-crawl charges are invoiced through (absent: none). */
  payPerCrawl?: { stripeMeterEvent: string };
  /** In slug order. */
  features: SnapshotFeature[];
  /** In slug order. */
  plans: SnapshotPlan[];
  surfaces: Record<string, SnapshotSurface>;
  authMethods: SnapshotAuthMethod[];
  workflows: SnapshotWorkflow[];
  /**
   * The generation of the workflow compiler that compiled `workflows` (config/workflowModule.ts
   * WORKFLOW_COMPILER_GENERATION); absent in snapshots compiled before it was stamped, or without a compiler.
   */
  workflowCompiler?: number;
  /** Declared custom triggers and the JSON Schema of their payload (absent in snapshots compiled before triggers existed). */
  triggers?: Record<string, { description?: string; schema: Record<string, unknown> }>;
  /** In slug order (absent in snapshots compiled before offers existed). */
  offers?: SnapshotOffer[];
  offerGroups?: Record<string, SnapshotOfferGroup>;
}
