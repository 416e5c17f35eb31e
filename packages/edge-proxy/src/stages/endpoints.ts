/**
 * Stage 1: `{ENDPOINTS_PREFIX}{path}` on the site is the environment's custom endpoint `{path}`. The request goes on as
 * the visitor made it, marked as coming through the site's own proxy (X-MOS-Proxy-Version), which lets the endpoint's
 * cookies and headers act on the site as the workflow wrote them; the answer comes back as is.
 */
import type { ProxyContext } from "../context";
import { PROXY_CLIENT, PROXY_VERSION } from "../context";
import { isJwtCookieValue, readCookie } from "../cookies";
import { jsonError } from "../pages";

export function isEndpointRequest(url: URL, context: ProxyContext): boolean {
  return url.pathname.startsWith(context.config.endpointsPrefix);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Whether the visitor's JWT cookie may speak for this request. A browser sends the cookie with a form another site
 * posts to yours (cross-site request forgery): an unsafe method gets the JWT only when the browser says the request is
 * the site's own — `Sec-Fetch-Site` same-origin / same-site, or an `Origin` that is the site's.
 */
function sameSiteRequest(request: Request, url: URL): boolean {
  if (SAFE_METHODS.has(request.method)) return true;
  const fetchSite = request.headers.get("sec-fetch-site");
  if (fetchSite === "same-origin" || fetchSite === "same-site") return true;
  return request.headers.get("origin") === url.origin;
}

/** The endpoint's answer; a platform that cannot be reached is a 503 in the error shape (the proxy never throws). */
export async function forwardToEndpoint(request: Request, url: URL, context: ProxyContext): Promise<Response> {
  const { config } = context;
  const path = url.pathname.slice(config.endpointsPrefix.length);
  const target = `${config.platformUrl}/api/v1/envs/${encodeURIComponent(config.environmentId)}/endpoints/${path}${url.search}`;
  const headers = new Headers(request.headers);
  headers.delete("host");
  headers.set("X-MOS-Proxy-Version", PROXY_VERSION);
  headers.set("X-MOS-Proxy-Client", PROXY_CLIENT);
  // The visitor signed in on the site: the endpoint sees the same user the pages' decisions see.
  const jwt = readCookie(request.headers.get("cookie"), config.jwtCookie, isJwtCookieValue);
  if (jwt && !headers.has("X-MOS-User-Jwt") && sameSiteRequest(request, url)) headers.set("X-MOS-User-Jwt", jwt);
  // The proxy never lends its secret key: an endpoint's access level is what the visitor's own X-MOS-Key gives.
  try {
    return await context.platform(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
  } catch (error) {
    context.logger.warn("edge-proxy: the platform could not be reached for a custom endpoint", { path, error: String(error) });
    return jsonError(503, "service_unavailable", "The service is temporarily unavailable; try again in a moment", { "Retry-After": String(ENDPOINT_RETRY_AFTER_SECONDS) });
  }
}

const ENDPOINT_RETRY_AFTER_SECONDS = 5;
