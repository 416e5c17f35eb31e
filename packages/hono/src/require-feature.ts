import { denialReason, describeError, isUnavailable, offersOf, type ClientError, type DenialReason } from "@edge-monetization/client";
import type { Context, Env, MiddlewareHandler } from "hono";
import type { FeatureDeniedBody, MonetizationVariables, Resource, ServiceUnavailableBody } from "./types";

export interface RequireFeatureOptions<E extends Env = any> {
  /** Decide with this surface (it consumes what the surface consumes, and shows its offers); default: the middleware's. */
  surfaceSlug?: string | ((c: Context<E>) => string | undefined);
  /** The resource the decision is about; default: the middleware's (`{ id: pathname }`). */
  resource?: (c: Context<E>) => Resource | undefined;
  /** The action that prices the request for a credits property (its `costs.actions`). */
  action?: string | ((c: Context<E>) => string | undefined);
}

/** Seconds a client should wait after a 503 when the platform named no Retry-After of its own. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/**
 * A refusal speaks of one visitor (their meter, offer tokens bound to them): no shared cache may keep it, and no
 * browser may show it again once the visitor subscribed.
 */
const PER_VISITOR = { "Cache-Control": "private, no-store" };

/** Properties already reported as missing from the configuration, so that a typo is logged once per isolate. */
const reportedUnknownProperties = new Set<string>();

/**
 * Lets the request through when the visitor has access to `property`; otherwise answers 402 with the offers that would
 * unlock it (a surface decision that shows offers), or 403. When the platform cannot answer, the client's failure
 * mode decides: open lets the request through, closed answers 503. Needs `monetization()` before it.
 */
export function requireFeature<E extends Env = any>(property: `${string}.${string}`, options: RequireFeatureOptions<E> = {}): MiddlewareHandler<E> {
  return async (c, next) => {
    const monetization = (c as unknown as Context<{ Variables: MonetizationVariables }>).get("monetization");
    if (!monetization) throw new Error(`requireFeature("${property}") needs app.use(monetization({…})) before it`);
    const surfaceSlug = typeof options.surfaceSlug === "function" ? options.surfaceSlug(c) : options.surfaceSlug;
    const action = typeof options.action === "function" ? options.action(c) : options.action;
    const result = await monetization.decide({ surfaceSlug, resource: options.resource?.(c), action });
    if (!result.ok) {
      if (result.failedOpen) return next();
      if (!isUnavailable(result.error)) reportRefusal(property, result.error);
      const retryAfter = result.error.kind === "api" ? (result.error.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS) : DEFAULT_RETRY_AFTER_SECONDS;
      const body: ServiceUnavailableBody = {
        status: "error",
        statusCode: 503,
        code: "service_unavailable",
        message: "The access check could not be made; try again shortly.",
        feature: property,
      };
      return c.json(body, 503, { ...PER_VISITOR, "Retry-After": String(retryAfter) });
    }
    if (monetization.client.hasAccess(result, property)) return next();
    const reason = denialReason(monetization.client.property(result, property));
    if (reason === "unknown_property" && !reportedUnknownProperties.has(property)) {
      reportedUnknownProperties.add(property);
      console.error(`@edge-monetization/hono: requireFeature("${property}"): the deployed configuration has no such property (a typo, or a configuration not deployed yet); every request is refused with 403`);
    }
    // No offer unlocks a property that does not exist, whatever the surface shows.
    const offers = "offers" in result.data && reason !== "unknown_property" ? offersOf(result.data.offers) : [];
    const body: FeatureDeniedBody =
      offers.length > 0
        ? { status: "error", statusCode: 402, code: "payment_required", message: `${messageFor(reason, property)} An offer unlocks it.`, feature: property, reason, offers }
        : { status: "error", statusCode: 403, code: "feature_denied", message: messageFor(reason, property), feature: property, reason, offers };
    return c.json(body, body.statusCode, PER_VISITOR);
  };
}

/**
 * A refusal is the operator's to fix (a revoked key, an unknown surface), so it is said loudly — once per isolate for
 * each property, status and code: a visitor who can provoke one must not be able to flood the log with it.
 */
const reportedRefusals = new Set<string>();
const MAX_REPORTED_REFUSALS = 256;

function reportRefusal(property: string, error: ClientError): void {
  const key = `${property} ${error.kind === "api" ? `${error.status} ${error.code}` : error.kind}`;
  if (reportedRefusals.has(key) || reportedRefusals.size >= MAX_REPORTED_REFUSALS) return;
  reportedRefusals.add(key);
  console.error(`@edge-monetization/hono: requireFeature("${property}"): the platform refused the decision: ${describeError(error)}`);
}

function messageFor(reason: DenialReason, property: string): string {
  switch (reason) {
    case "limit_reached":
      return `The limit of ${property} is reached for this period.`;
    case "insufficient_credits":
      return `The credits left do not cover ${property}.`;
    case "unknown_property":
      return `${property} is not a property of the deployed configuration.`;
    case "off":
      return `${property} is not included in your plan.`;
  }
}
