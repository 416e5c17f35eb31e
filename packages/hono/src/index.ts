/**
 * Hono middleware for the edge monetization platform: `monetization()` puts the request's identity and memoised
 * decisions on the context, `requireFeature()` gates a route by a feature property (402 with offers, 403, or the
 * client's failure mode when the platform cannot answer). Web standards only: Workers, Node, Deno, Bun.
 */
export { monetization } from "./monetization";
export { requireFeature, type RequireFeatureOptions } from "./require-feature";
export type {
  CookieOptions,
  Decision,
  DecideOptions,
  DenialReason,
  FeatureDeniedBody,
  IdentityRequest,
  Monetization,
  MonetizationOptions,
  MonetizationVariables,
  Resource,
  ServiceUnavailableBody,
} from "./types";
