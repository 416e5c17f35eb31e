/**
 * The pipeline: endpoints (1) and offer redemptions (2) go to the platform; everything else is the origin's page (3),
 * decided (4), given the visitor's identity cookie (5), the surface's HTTP changes (6) and the components' content (7),
 * and marked private (8). A decision that cannot be had or applied never costs the visitor the page unless the
 * operator asked for that (9: FAILURE_MODE).
 */
import { type ClientError, createClient, isUnavailable, type SurfaceDecisionResponse } from "@edge-monetization/client";
import { type ProxyConfig, resolveConfig } from "./config";
import type { FetchLike, ProxyContext } from "./context";
import { consoleLogger, errorOnce, type Logger } from "./log";
import { htmlPage, unavailablePage } from "./pages";
import { markPersonalised } from "./stages/caching";
import { applyContent } from "./stages/content";
import { decide } from "./stages/decision";
import { forwardToEndpoint, isEndpointRequest } from "./stages/endpoints";
import { modifiedResponseInit, replacementResponse } from "./stages/http";
import { identityCookie, type VisitorIdentity, visitorIdentity } from "./stages/identity";
import { fetchOrigin, passThroughReason, surfaceFor } from "./stages/origin";
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

  let origin: Response;
  try {
    origin = await fetchOrigin(request, url, context);
  } catch (error) {
    context.logger.warn("edge-proxy: the origin could not be reached", { url: url.pathname, error: String(error) });
    return htmlPage(502, "Bad gateway", "The site could not be reached. Please try again in a moment.");
  }
  const surface = surfaceFor(url.pathname, context);
  if (passThroughReason(request, url, origin, surface, context) !== null) return origin;
  return personalise(request, url, origin, surface!, context);
}

async function personalise(request: Request, url: URL, origin: Response, surface: string, context: ProxyContext): Promise<Response> {
  // Read whole: the decision needs the <head>'s meta first, and an error while rewriting must still leave the
  // origin's page to serve.
  const html = await origin.text();
  const originHeaders = () => {
    const headers = new Headers(origin.headers);
    headers.delete("Content-Length");
    return headers;
  };
  const asIs = () => new Response(html, { status: origin.status, statusText: origin.statusText, headers: originHeaders() });

  let visitor: VisitorIdentity;
  let decision: SurfaceDecisionResponse;
  try {
    visitor = visitorIdentity(request, context.config, origin.headers);
    const result = await decide(request, url, html, surface, visitor, context);
    if (!result.ok) return decisionFailed(result.error, surface, asIs, context);
    decision = result.data;
  } catch (error) {
    return failed("the surface decision failed", error, asIs, context);
  }

  try {
    const cookie = identityCookie(visitor, decision.identity, context.config, url);
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

/** A 4xx is the operator's to fix (a revoked key, an unknown surface): said once, loudly; the page is served as is. */
function decisionFailed(error: ClientError, surface: string, asIs: () => Response, context: ProxyContext): Response {
  if (error.kind === "api" && error.status >= 400 && error.status < 500 && !isUnavailable(error)) {
    errorOnce(context.logger, `edge-proxy: the platform refused the surface decision for "${surface}" (${error.status} ${error.code}): ${error.message}`, { requestId: error.requestId });
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
