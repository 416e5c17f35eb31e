/**
 * Stage 1: `{ENDPOINTS_PREFIX}{path}` on the site is the environment's custom endpoint `{path}`. The request goes on as
 * the visitor made it, marked as coming through the site's own proxy (X-MOS-Proxy-Version), which lets the endpoint's
 * cookies and headers act on the site as the workflow wrote them; the answer comes back as is.
 */
import type { ProxyContext } from "../context";
import { PROXY_CLIENT, PROXY_VERSION } from "../context";
import { readCookie } from "../cookies";

export function isEndpointRequest(url: URL, context: ProxyContext): boolean {
  return url.pathname.startsWith(context.config.endpointsPrefix);
}

export function forwardToEndpoint(request: Request, url: URL, context: ProxyContext): Promise<Response> {
  const { config } = context;
  const path = url.pathname.slice(config.endpointsPrefix.length);
  const target = `${config.platformUrl}/api/v1/envs/${encodeURIComponent(config.environmentId)}/endpoints/${path}${url.search}`;
  const headers = new Headers(request.headers);
  headers.delete("host");
  headers.set("X-MOS-Proxy-Version", PROXY_VERSION);
  headers.set("X-MOS-Proxy-Client", PROXY_CLIENT);
  // The visitor signed in on the site: the endpoint sees the same user the pages' decisions see.
  const jwt = readCookie(request.headers.get("cookie"), config.jwtCookie);
  if (jwt && !headers.has("X-MOS-User-Jwt")) headers.set("X-MOS-User-Jwt", jwt);
  // The proxy never lends its secret key: an endpoint's access level is what the visitor's own X-MOS-Key gives.
  return context.platform(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
}
