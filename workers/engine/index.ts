/**
 * The pure decision engine: compiled snapshot + identity + meter readings → feature states. It imports nothing from
 * Hono, D1, Durable Objects or `cloudflare:*`, so it runs in Node (unit tests, micro-benchmarks) as in workerd.
 */
export {
  prepareSnapshot,
  offerGroupsOfSurface,
  PreparedFeature,
  enabledOrderKey,
  creditsOrderKey,
  PERIOD_RANK,
  type PreparedSnapshot,
  type PreparedPlan,
  type PreparedProperty,
  type PlanPropertyEntry,
} from "./prepare";
export { classifyBot, autoAssignCategoryFor, userAgentVerdict, type BotSignals, type CfBotFields, type UserAgentVerdict, type VerdictMemo } from "./bots";
export { provisionPlans, type PlanSource, type ProvisionedPlans, type ProvisionInput } from "./provisionPlans";
export { resolveFeatureStates, resolveFeatureState, type BaseFeatureStates, type ResolvedFeatureState } from "./resolveFeatureStates";
export {
  counterIdFor,
  meterRequestsFor,
  UNLIMITED_UNITS,
  renderFeatures,
  denials,
  type ConsumedProperty,
  type CreditsRendering,
  type Denial,
  type DenialScope,
  type DenialReason,
  type MeterFailure,
} from "./meters";
export { explainFeatureStates, type PlanCandidate, type PropertyExplanation } from "./explain";
export { priceAction, creditRequestsFor, roundCredits } from "./credits";
export { decide, finish, SurfaceNotFoundError, type Decision, type DecideInput } from "./decide";
export { testGroup100 } from "./testGroup";
export {
  conditionsMismatch,
  formatPrice,
  OfferEligibility,
  offerViewOf,
  resolveOffer,
  resolveOfferGroups,
  resolvePrice,
  variantFor,
  type FilteredOffer,
  type OfferFacts,
  type OfferFilterReason,
  type OfferResolution,
  type ResolvedOfferGroup,
  type ResolvedOfferSlot,
} from "./offers";
export type * from "./offerTypes";
export {
  upgradeSnapshot,
  SNAPSHOT_SCHEMA,
  SNAPSHOT_UPGRADES,
  UnreadableSnapshotError,
  type SnapshotSchema,
  type SnapshotUpgradeStep,
  type StoredSnapshot,
} from "./snapshotUpgrade";
export type * from "./types";
export type * from "./snapshot";
