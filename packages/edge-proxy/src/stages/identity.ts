/**
 * Who the visitor is, from the site's cookies: a JWT cookie (a signed-in user), else the anonymous cookie, else a new
 * visitor the platform names. The cookie itself is stage 5: set when the platform minted an identifier.
 */
import type { IdentityRequest } from "@edge-monetization/client";
import type { ResolvedConfig } from "../config";
import { anonymousCookieLine, readCookie, setCookieValue } from "../cookies";

export interface VisitorIdentity {
  request: IdentityRequest;
  /** The anonymous identifier the visitor already has, if any. */
  anonymousIdentifier: string | null;
}

/**
 * The identity of the request. `originHeaders`: the origin's response, whose Set-Cookie of the same names wins over
 * the request's cookies (the origin just signed the visitor in, or out).
 */
export function visitorIdentity(request: Request, config: ResolvedConfig, originHeaders?: Headers): VisitorIdentity {
  const cookieHeader = request.headers.get("cookie");
  const current = (name: string) => {
    const set = originHeaders ? setCookieValue(originHeaders, name) : undefined;
    return set === undefined ? readCookie(cookieHeader, name) : set;
  };
  const jwt = current(config.jwtCookie);
  const anonymousIdentifier = current(config.anonymousCookie);
  if (jwt) {
    return { request: config.jwtFallback ? { userJwt: jwt, createAnonymousIdentifierFallback: true } : { userJwt: jwt }, anonymousIdentifier };
  }
  if (anonymousIdentifier) return { request: { anonymousIdentifier }, anonymousIdentifier };
  return { request: { createAnonymousIdentifier: true }, anonymousIdentifier: null };
}

/**
 * Stage 5: the Set-Cookie line for an identifier the platform minted — for a new visitor, or when a JWT fell back to a
 * fresh anonymous visitor who had no anonymous cookie — or null when the visitor keeps the cookie they have.
 */
export function identityCookie(visitor: VisitorIdentity, decided: { authType?: string; identifier?: string } | undefined, config: ResolvedConfig, url: URL): string | null {
  if (visitor.anonymousIdentifier !== null || !decided?.identifier || decided.authType !== "anonymous") return null;
  const minted = visitor.request.createAnonymousIdentifier === true || visitor.request.createAnonymousIdentifierFallback === true;
  return minted ? anonymousCookieLine(config.anonymousCookie, decided.identifier, url.protocol === "https:") : null;
}

/** The request facts decisions and redemptions carry, as the visitor's own server would send them. */
export function requestFacts(request: Request): { http: Record<string, string>; cloudflare?: { cf: Record<string, unknown> } } {
  const http: Record<string, string> = { url: request.url };
  const userAgent = request.headers.get("user-agent");
  if (userAgent) http.userAgent = userAgent;
  const clientIP = request.headers.get("cf-connecting-ip") ?? request.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
  if (clientIP) http.clientIP = clientIP;
  const referer = request.headers.get("referer");
  if (referer) http.referer = referer;
  const cf = (request as { cf?: Record<string, unknown> }).cf;
  return cf ? { http, cloudflare: { cf } } : { http };
}
