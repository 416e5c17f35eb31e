/**
 * @edge-monetization/client — the platform's decision API (access checks, surface decisions, counter updates,
 * identity links, offer redemptions, custom endpoints) with per-attempt timeouts, safe retries, errors as values and
 * an explicit failure mode, plus the typed admin API. Web standards only: Workers, Node, Deno, Bun, browsers.
 */
export { AGENT_HEADER_LIMITS, MAX_DECISION_BODY_BYTES, agentHeadersOf, requestMethodOf, withAgentHeaders } from "./agentHeaders";
export { createClient } from "./client";
export type { CallOptions, ClientOptions, FetchLike, MonetizationClient, PropertyPath, Result } from "./client";
export { PLATFORM_LIMITS, denialReason, offersOf, type DenialReason } from "./decisions";
export { describeError, isUnavailable } from "./errors";
export type { ClientError } from "./errors";
export { environmentIdOfKey } from "./keys";
export type * from "./types";
