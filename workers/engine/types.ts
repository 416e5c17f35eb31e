/**
 * Types shared by the stages of a decision. The engine is pure: nothing here touches Hono, D1 or Durable Objects.
 */
import type { AutoAssignCategory, Period } from "../../schema/config";

export type AuthType = "anonymous" | "provided" | "jwt" | "agent";

export interface ResolvedIdentity {
  authType: AuthType;
  identifier: string;
  isAuthenticated: boolean;
  jwtClaims: Record<string, unknown>;
  /** Stable 0-99 bucket of the identifier, for A/B tests. */
  testGroup100: number;
}

export type BotCategory =
  | "search-crawler"
  | "ai-crawler"
  | "ai-assistant"
  | "ai-agent"
  | "analytics-monitor"
  | "page-previewer"
  | "other";

export interface BotTag {
  category: BotCategory;
  /** Stable short code of the bot, e.g. "googlebot", "gptbot". */
  code: string;
  isVerified: boolean;
  operator: string;
  product: string;
}

/** What the request tells us about who sent it, besides the identity. */
export interface RequestContext {
  userAgent?: string;
  clientIp?: string;
  url?: string;
  referer?: string;
  country?: string;
  /** Present when the request looks like a bot (verified or not). */
  bot?: BotTag;
  /** True only for bots whose identity Cloudflare (or the caller's cf object) verified. */
  isVerifiedBotRequest: boolean;
}

export type { AutoAssignCategory, Period };

// ---------------------------------------------------------------------------------------------------------------
// Feature state

/** A metered `enabled` setting: a limit per period. */
export type MeteredSetting = Extract<import("./snapshot").EnabledSetting, { kind: "metered" }>;

/** The stacked, conflict-resolved value of one property before meters are read. */
export type BasePropertyState =
  | {
      type: "enabled";
      setting: import("./snapshot").EnabledSetting;
      isFallback: boolean;
      /**
       * Set when a plan's `on` beats a metered setting another of the identity's plans gives (the best of them): the
       * access is unlimited, but its counter keeps counting in that setting's period and unique-resources rule, so
       * the readings are reported and a later downgrade starts from the true usage.
       */
      overriddenMeter?: MeteredSetting;
    }
  | { type: "boolean"; value: boolean; isFallback: boolean }
  | { type: "number"; value: number; isFallback: boolean }
  | { type: "string"; value: string; isFallback: boolean }
  /** `allowance` is the winning plan's periodic grant; none (isFallback) means a balance from top-ups only. */
  | { type: "credits"; allowance: import("./snapshot").CreditsSetting | undefined; isFallback: boolean };

export interface BaseFeatureState {
  featureId: string;
  featureSlug: string;
  properties: Record<string, BasePropertyState>;
}

/** Wire shape of a meterable property (docs/public-api.md). */
export interface MeterableProperty {
  type: "meterable";
  counterId: string;
  hasAccess: boolean;
  isFallback: boolean;
  consumedUnits?: number;
  remainingUnits?: number;
  totalUnits?: number;
  periodStart?: string;
  uniqueResources?: boolean;
  resourceIdUsed?: boolean;
  consumedInRequest?: boolean;
  consumedUnitsInRequest?: number;
  excessUnitsInRequest?: number;
  /** Only for an `overage: overflow` setting with a reading: the units consumed beyond its limit this period (≥ 0). */
  overageUnits?: number;
}

export type ValueProperty =
  | { type: "boolean"; value: boolean; isFallback: boolean }
  | { type: "number"; value: number; isFallback: boolean }
  | { type: "string"; value: string; isFallback: boolean };

/**
 * Wire shape of a credits property. With a reading: the balance after this request, the price of the request's
 * action, whether it was deducted, and `reason: "insufficient_credits"` when the balance does not cover the price.
 * When the meter failed: `hasAccess` per the property's `onMeterFailure`, `isFallback: true`, no balance.
 */
export interface CreditsProperty {
  type: "credits";
  creditId: string;
  hasAccess: boolean;
  isFallback: boolean;
  balance?: number;
  cost?: number;
  deductedInRequest?: boolean;
  reason?: "insufficient_credits";
}

export type PropertyState = MeterableProperty | ValueProperty | CreditsProperty;

export interface FeatureState {
  featureId: string;
  featureSlug: string;
  properties: Record<string, PropertyState>;
}

export type FeatureStates = Record<string, FeatureState>;

// ---------------------------------------------------------------------------------------------------------------
// Meters: the interface between the engine and the meter Durable Object (durable-objects/meter)

/** One metered property that a decision reads, and consumes when `consume` is set. */
export interface MeterRequest {
  counterId: string;
  limit: number;
  period: Period;
  uniqueResources: boolean;
  consume: boolean;
  /**
   * Only on a counter sent without a limit (`limit` UNLIMITED_UNITS): an unlimited counter (a plan's `on` over another
   * plan's metered setting) or an overflow setting. The limit its readings report (reportedReading): the overridden
   * setting's, or the overflow setting's own. The meter object never reads it.
   */
  overriddenLimit?: number;
  /** Only on an `overage: overflow` setting's request: units past `overriddenLimit` are overage (never refused). */
  overage?: "overflow";
  /** With `overage`: the Stripe Billing Meter event the overage units are reported to. */
  stripeMeterEvent?: string;
  /**
   * With `overage` (the same value as `overriddenLimit`, but sent for the meter object to read): the limit past which
   * consumed units are overage. The object keeps the overage it already billed per period and returns what is new on
   * the reading (`overageBilledUnits`), so a unit given back and consumed again is billed once.
   */
  overflowLimit?: number;
}

export interface MeterReading {
  counterId: string;
  hasAccess: boolean;
  consumedUnits: number;
  remainingUnits: number;
  totalUnits: number;
  /** ISO-8601 start of the current period. */
  periodStart: string;
  uniqueResources: boolean;
  resourceIdUsed: boolean;
  consumedInRequest: boolean;
  consumedUnitsInRequest: number;
  excessUnitsInRequest: number;
  /** Never from the meter object: set by reportedReading for an overflow setting (units past its limit, ≥ 0). */
  overageUnits?: number;
  /**
   * Only from the meter object, for a counter sent with `overflowLimit`: the overage units this request adds to what
   * was already billed this period — max(0, consumedUnits − limit − billed so far), decided and recorded atomically
   * with the consumption (0 when nothing was consumed). What usage-based billing reports; never on the wire.
   */
  overageBilledUnits?: number;
}

/**
 * A credits property a decision reads, and deducts `cost` from when `consume` is set — in the same meter call and
 * all-or-nothing with the MeterRequests (the meter object's RPC uses this type).
 */
export interface CreditRequest {
  creditId: string;
  /** Price of the request's action under the property's cost rules (priceAction); ≥ 0. */
  cost: number;
  consume: boolean;
  /** The resolved plan allowance, granted once per period before the balance is read; absent: top-ups only. */
  grant?: { amount: number; period: Period; carryOver?: number };
}

export interface CreditReading {
  creditId: string;
  hasAccess: boolean;
  /** After this request's deduction (and any periodic grant). */
  balance: number;
  cost: number;
  deductedInRequest: boolean;
  reason?: "insufficient_credits";
}

/**
 * The attributes of a request's resource that cost multipliers look at: `type` and `tags`, from `meta` or from the
 * resource itself (the decision body's `resource` fits).
 */
export interface PricedResource {
  type?: unknown;
  tags?: unknown;
  meta?: { type?: unknown; tags?: unknown; [key: string]: unknown } | Record<string, unknown>;
  [key: string]: unknown;
}
