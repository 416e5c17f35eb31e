/**
 * Stage 3: the page from the origin, same path and query, the request forwarded as the visitor made it; and which
 * answers pass back untouched (nothing to decide on, or nothing a decision could change).
 */
import type { ProxyContext } from "../context";

export function fetchOrigin(request: Request, url: URL, context: ProxyContext): Promise<Response> {
  const target = new URL(url.pathname + url.search, context.config.originUrl);
  const headers = new Headers(request.headers);
  // The Host is the origin's (from the URL); the origin learns the site's from X-Forwarded-Host.
  headers.delete("host");
  headers.set("X-Forwarded-Host", url.host);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  return context.origin(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
}

/** The surface decided for this path: the first SURFACES pattern that matches, else SURFACE_SLUG, else none. */
export function surfaceFor(pathname: string, context: ProxyContext): string | null {
  const { surfaces, surfaceSlug } = context.config;
  return surfaces.find((entry) => entry.pattern.test(pathname))?.surface ?? surfaceSlug;
}

/**
 * Why the origin's answer passes as is, or null when the page gets a decision. Only a GET of a successful HTML page
 * is decided: a HEAD (link previews) must not consume a reader's article, an error page or a redirect has nothing to
 * sell, and other content types are not pages.
 */
export function passThroughReason(request: Request, url: URL, response: Response, surface: string | null, context: ProxyContext): string | null {
  if (request.method !== "GET") return "method";
  if (context.config.ignorePaths.some((pattern) => pattern.test(url.pathname))) return "ignored path";
  if (surface === null) return "no surface";
  if (response.status < 200 || response.status >= 300) return "status";
  const type = response.headers.get("content-type") ?? "";
  if (!/^\s*text\/html\b/i.test(type)) return "not html";
  return null;
}
