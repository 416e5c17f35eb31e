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
    // A crawler or agent on a priced surface: the platform's pay-per-crawl / x402 answer is the protocol's, not ours.
    const payment = paymentAnswerOf("surfaceBehavior" in result.data ? result.data.surfaceBehavior : undefined);
    if (payment?.replace) return c.body(payment.replace.body, payment.replace.status as 400, { ...payment.replace.headers, ...PER_VISITOR });
    if (monetization.client.hasAccess(result, property)) {
      await next();
      // The charge's receipt (`crawler-charged`, `payment-response`) goes out with whatever the route answered.
      for (const [name, value] of Object.entries(payment?.receipt ?? {})) c.res.headers.set(name, value);
      return;
    }
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

/** Headers only the platform's pay-per-crawl / x402 answers carry: what tells them from a surface workflow's behaviour. */
const REFUSAL_HEADERS = ["crawler-price", "crawler-error", "payment-required"];
const RECEIPT_HEADERS = new Set(["crawler-charged", "payment-response"]);

/**
 * What a priced surface's decision asks of the response: a replacement (402/400/403/503 with the protocol's headers)
 * or the receipt headers of a paid one. Read defensively: anything else is not a payment answer.
 */
function paymentAnswerOf(behavior: { http?: unknown } | undefined): { replace?: { status: number; headers: Record<string, string>; body: string }; receipt?: Record<string, string> } | undefined {
  const http = behavior?.http as { status?: unknown; headers?: unknown; body?: unknown; addHeaders?: unknown } | undefined;
  if (!http || typeof http !== "object") return undefined;
  if (typeof http.body === "string" && typeof http.headers === "object" && http.headers !== null) {
    const headers = Object.fromEntries(Object.entries(http.headers as Record<string, unknown>).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
    const status = typeof http.status === "number" && Number.isInteger(http.status) && http.status >= 400 && http.status <= 599 ? http.status : undefined;
    // A paid decision whose surface workflow replaced the page: the route still answers, with the receipt.
    const receipt = receiptOf(Object.entries(headers).map(([name, value]) => ({ name, value })));
    if (receipt) return { receipt };
    if (status === undefined || !REFUSAL_HEADERS.some((name) => name in headers) && status !== 503) return undefined;
    if (status === 503 && !("retry-after" in headers)) return undefined;
    return { replace: { status, headers, body: http.body } };
  }
  if (!Array.isArray(http.addHeaders)) return undefined;
  const receipt = receiptOf(http.addHeaders as { name?: unknown; value?: unknown }[]);
  return receipt ? { receipt } : undefined;
}

function receiptOf(headers: readonly { name?: unknown; value?: unknown }[]): Record<string, string> | undefined {
  const receipt: Record<string, string> = {};
  for (const header of headers) {
    if (typeof header?.name === "string" && typeof header.value === "string" && RECEIPT_HEADERS.has(header.name.toLowerCase())) receipt[header.name] = header.value;
  }
  return Object.keys(receipt).length > 0 ? receipt : undefined;
}
