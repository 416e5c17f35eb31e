/**
 * The pipeline: endpoints (1) and offer redemptions (2) go to the platform; everything else is the origin's page (3),
 * decided (4), given the visitor's identity cookie (5), the surface's HTTP changes (6) and the components' content (7),
 * and marked private (8). A decision that cannot be had or applied never costs the visitor the page unless the
 * operator asked for that (9: FAILURE_MODE).
 */
import { type ClientError, createClient, type IdentityRequest, type SurfaceDecisionResponse } from "@edge-monetization/client";
import { type ProxyConfig, resolveConfig } from "./config";
import type { FetchLike, ProxyContext } from "./context";
import { headMeta } from "./content/rewrite";
import { consoleLogger, errorOnce, type Logger, warnOnce } from "./log";
import { htmlPage, prefetchRefused, unavailablePage } from "./pages";
import { markPersonalised } from "./stages/caching";
import { applyContent } from "./stages/content";
import { decide, refused } from "./stages/decision";
import { forwardToEndpoint, isEndpointRequest } from "./stages/endpoints";
import { modifiedResponseInit, replacementResponse } from "./stages/http";
import { identityCookie, NEW_VISITOR, type VisitorIdentity, visitorIdentity } from "./stages/identity";
import { fetchOrigin, MAX_PAGE_BYTES, onVisitorHost, passThroughReason, readPage, routeOf } from "./stages/origin";
import { isRedemptionRequest, redeemOffer } from "./stages/redemption";

export interface EdgeProxyDependencies {
  /** How the platform is reached: a service binding's fetch, a test double. Default: fetch over the internet. */
  platform?: FetchLike | undefined;
  /** How the origin is reached. Default: fetch. */
  origin?: FetchLike | undefined;
  logger?: Logger | undefined;
}

export interface EdgeProxy {
  fetch(request: Request, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response>;
}

const networkFetch: FetchLike = (request) => fetch(request);

/** A proxy for these settings; throws a ConfigError naming the first invalid one. */
export function createEdgeProxy(config: ProxyConfig, dependencies: EdgeProxyDependencies = {}): EdgeProxy {
  const resolved = resolveConfig(config);
  const platform = dependencies.platform ?? networkFetch;
  const context: ProxyContext = {
    config: resolved,
    client: createClient({
      baseUrl: resolved.platformUrl,
      apiKey: resolved.secretKey,
      failureMode: resolved.failureMode,
      timeoutMs: resolved.decisionTimeoutMs,
      // A visitor waits for the page: one more try at most.
      retries: 1,
      fetch: platform,
    }),
    platform,
    origin: dependencies.origin ?? networkFetch,
    logger: dependencies.logger ?? consoleLogger,
  };
  return { fetch: (request) => handle(request, context) };
}

async function handle(request: Request, context: ProxyContext): Promise<Response> {
  const url = new URL(request.url);
  if (isEndpointRequest(url, context)) return forwardToEndpoint(request, url, context);
  if (isRedemptionRequest(url, context)) return redeemOffer(request, context);

  const route = routeOf(request, url, context);
  if (route.kind === "too long") return htmlPage(414, "Address too long", "This page's address is too long.");
  if (route.kind === "decide" && isPrefetch(request)) return prefetchRefused();
  let origin: Response;
  try {
    origin = onVisitorHost(await fetchOrigin(request, url, route, context), url, context);
  } catch (error) {
    return originFailed(url, error, context);
  }
  if (route.kind !== "decide") return origin;
  const reason = passThroughReason(origin);
  if (reason === "charset") {
    warnOnce(context.logger, `charset ${route.surface}`, `edge-proxy: a page of surface "${route.surface}" is not UTF-8: it is served undecided`, { contentType: origin.headers.get("content-type") });
  }
  if (reason !== null) return origin;
  return personalise(request, url, route, origin, context);
}

function originFailed(url: URL, error: unknown, context: ProxyContext): Response {
  context.logger.warn("edge-proxy: the origin could not be reached", { url: url.pathname, error: String(error) });
  return htmlPage(502, "Bad gateway", "The site could not be reached. Please try again in a moment.");
}

/** Chrome's `Sec-Purpose: prefetch` (and `prefetch;prerender`), the older `Purpose: prefetch`. */
function isPrefetch(request: Request): boolean {
  return /\bprefetch\b/i.test(request.headers.get("sec-purpose") ?? request.headers.get("purpose") ?? "");
}

async function personalise(request: Request, url: URL, route: { surface: string; path: string }, origin: Response, context: ProxyContext): Promise<Response> {
  const { surface } = route;
  let read: Awaited<ReturnType<typeof readPage>>;
  try {
    read = await readPage(origin);
  } catch (error) {
    // The origin's body broke off: as if it could not be reached (part of a page is no page).
    return originFailed(url, error, context);
  }
  if ("tooLarge" in read) {
    warnOnce(context.logger, `too large ${surface}`, `edge-proxy: a page of surface "${surface}" is larger than ${MAX_PAGE_BYTES} bytes: it is not decided`, { url: url.pathname });
    if (context.config.failureMode === "open") return read.tooLarge;
    await read.cancel().catch(() => {});
    return unavailablePage();
  }
  const { html } = read;
  const originHeaders = () => {
    const headers = new Headers(origin.headers);
    headers.delete("Content-Length");
    return headers;
  };
  const asIs = () => new Response(html, { status: origin.status, statusText: origin.statusText, headers: originHeaders() });

  let visitor: VisitorIdentity;
  let sent: IdentityRequest;
  let decision: SurfaceDecisionResponse;
  try {
    visitor = visitorIdentity(request, context.config, origin.headers);
    const page = { id: route.path, meta: await headMeta(html) };
    sent = visitor.request;
    let result = await decide(request, page, surface, sent, context);
    // A JWT that does not verify: the visitor is who their anonymous cookie says (or a new visitor), not the page.
    if (refused(result, "invalid_jwt") && visitor.whenJwtRefused) {
      sent = visitor.whenJwtRefused;
      result = await decide(request, page, surface, sent, context);
    }
    // An identity the platform cannot take (the cookies are checked first, so rarely): a new visitor, a new cookie.
    if (refused(result, "invalid_identity") && sent !== NEW_VISITOR) {
      visitor = { ...visitor, anonymousIdentifier: null };
      sent = NEW_VISITOR;
      result = await decide(request, page, surface, sent, context);
    }
    if (!result.ok) return decisionFailed(result.error, surface, asIs, context);
    decision = result.data;
  } catch (error) {
    return failed("the surface decision failed", error, asIs, context);
  }

  try {
    const cookie = identityCookie(sent, visitor, decision.identity, context.config, url, context.logger);
    const http: unknown = decision.surfaceBehavior?.http;
    let response = replacementResponse(http);
    if (response === null) {
      const body = await applyContent(html, decision, context);
      const init = modifiedResponseInit(http, { status: origin.status, statusText: origin.statusText, headers: originHeaders() });
      response = new Response(init.bodyAllowed ? body : null, { status: init.status, statusText: init.statusText, headers: init.headers });
    }
    if (cookie) response.headers.append("Set-Cookie", cookie);
    markPersonalised(response.headers);
    return response;
  } catch (error) {
    return failed("the decision could not be applied to the page", error, asIs, context);
  }
}

/**
 * The platform's refusals that are the operator's to fix (a revoked key, an unknown surface, a configuration the
 * platform cannot read): said once, loudly, and the page is served as is — a misconfiguration must not take the site
 * down. Everything a visitor could cause is handled before (the identity decided again, the facts cut to size, the
 * body kept under the platform's bound) — and should one still happen (`payload_too_large` is not here), it follows
 * FAILURE_MODE.
 */
const OPERATOR_CODES = new Set(["unauthorized", "invalid_api_key", "forbidden", "forbidden_identity_form", "not_found", "organization_not_found", "surface_not_found", "validation_failed", "bad_request"]);

function decisionFailed(error: ClientError, surface: string, asIs: () => Response, context: ProxyContext): Response {
  if (error.kind === "api" && error.code === "rejected_by_workflow") {
    // The customer's middleware refused this request: its status, never the page.
    const status = error.status >= 400 && error.status < 500 ? error.status : 403;
    return htmlPage(status, "Request refused", error.message, error.requestId ? { "X-Request-Id": error.requestId } : {});
  }
  if (error.kind === "api" && OPERATOR_CODES.has(error.code)) {
    errorOnce(
      context.logger,
      `edge-proxy: the platform refused the surface decision for "${surface}" (${error.status} ${error.code}): ${error.message}`,
      { requestId: error.requestId },
      `refused ${surface} ${error.status} ${error.code}`,
    );
    return asIs();
  }
  return failed("the surface decision failed", error, asIs, context);
}
function failed(what: string, error: unknown, asIs: () => Response, context: ProxyContext): Response {
  const closed = context.config.failureMode === "closed";
  context.logger.warn(`edge-proxy: ${what}; ${closed ? "answering 503 (FAILURE_MODE=closed)" : "serving the origin's page as is"}`, { error: describeError(error) });
  return closed ? unavailablePage() : asIs();
}

function describeError(error: unknown): unknown {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (typeof error === "object" && error !== null && "kind" in error) return error;
  return String(error);
}
