/**
 * Who the visitor is, from the site's cookies: a JWT cookie (a signed-in user), else the anonymous cookie, else a new
 * visitor the platform names. The cookie itself is stage 5: set when the platform minted an identifier.
 */
import { PLATFORM_LIMITS, type IdentityRequest } from "@edge-monetization/client";
import type { ResolvedConfig } from "../config";
import { anonymousCookieLine, isIdentifierCookieValue, isJwtCookieValue, readCookie, setCookieValue } from "../cookies";
import type { Logger } from "../log";
import { warnOnce } from "../log";

export interface VisitorIdentity {
  request: IdentityRequest;
  /** The anonymous identifier the visitor already has (a usable cookie), if any. */
  anonymousIdentifier: string | null;
  /**
   * Who to decide for when the platform refuses the JWT (401 `invalid_jwt`): the visitor's own anonymous cookie, so a
   * junk or expired token is metered like the visitor it came with; without one, a new anonymous visitor.
   */
  whenJwtRefused: IdentityRequest | null;
}

/** A visitor the platform names afresh (the anonymous cookie was unusable, or there was none). */
export const NEW_VISITOR: IdentityRequest = { createAnonymousIdentifier: true };

/**
 * The identity of the request. `originHeaders`: the origin's response, whose Set-Cookie of the same names wins over
 * the request's cookies (the origin just signed the visitor in, or out). An anonymous cookie that cannot be an
 * identifier (empty, over 512 characters, not cookie-octets) counts as none, as does a JWT over 16,384 characters or
 * not in compact form: the platform would refuse them. Of a cookie sent twice, the first usable value counts.
 */
export function visitorIdentity(request: Request, config: ResolvedConfig, originHeaders?: Headers): VisitorIdentity {
  const cookieHeader = request.headers.get("cookie");
  const current = <T extends string>(name: string, usable: (value: string | null) => value is T): T | null => {
    const set = originHeaders ? setCookieValue(originHeaders, name) : undefined;
    const value = set === undefined ? readCookie(cookieHeader, name, usable) : set;
    return usable(value) ? value : null;
  };
  // A JWT the platform would refuse unread (too long, not a JWT) counts as none: straight to the anonymous visitor.
  const jwt = current(config.jwtCookie, isJwtCookieValue);
  const anonymousIdentifier = current(config.anonymousCookie, isIdentifierCookieValue);
  if (jwt && anonymousIdentifier) {
    // No fallback: a refused token is decided again for the cookie's visitor, not for a fresh one.
    return { request: { userJwt: jwt }, anonymousIdentifier, whenJwtRefused: { anonymousIdentifier } };
  }
  if (jwt) {
    return { request: config.jwtFallback ? { userJwt: jwt, createAnonymousIdentifierFallback: true } : { userJwt: jwt }, anonymousIdentifier, whenJwtRefused: NEW_VISITOR };
  }
  if (anonymousIdentifier) return { request: { anonymousIdentifier }, anonymousIdentifier, whenJwtRefused: null };
  return { request: NEW_VISITOR, anonymousIdentifier: null, whenJwtRefused: null };
}

/**
 * Stage 5: the Set-Cookie line for an identifier the platform minted — for a new visitor, or when a JWT fell back to a
 * fresh anonymous visitor who had no anonymous cookie — or null when the visitor keeps the cookie they have.
 * `sent`: the identity the decision was finally asked with. An identifier that cannot be a cookie value is not set
 * (logged): it would break the visitor's Cookie header.
 */
export function identityCookie(
  sent: IdentityRequest,
  visitor: VisitorIdentity,
  decided: { authType?: string; identifier?: string } | undefined,
  config: ResolvedConfig,
  url: URL,
  logger: Logger,
): string | null {
  if (visitor.anonymousIdentifier !== null || !decided?.identifier || decided.authType !== "anonymous") return null;
  const minted = sent.createAnonymousIdentifier === true || sent.createAnonymousIdentifierFallback === true;
  if (!minted) return null;
  const identifier = decided.identifier;
  if (!isIdentifierCookieValue(identifier)) {
    warnOnce(logger, "identifier not a cookie value", "edge-proxy: the platform minted an identifier that cannot be a cookie value; no cookie set");
    return null;
  }
  return anonymousCookieLine(config.anonymousCookie, identifier, url.protocol === "https:");
}

// The platform's bounds on these facts: cut to them, a visitor's long User-Agent or Referer cannot make it refuse the
// decision (and so cannot get them the page as the origin made it).
const FACT_LIMITS = PLATFORM_LIMITS.facts;

/** The request facts decisions and redemptions carry, as the visitor's own server would send them. */
export function requestFacts(request: Request): { http: Record<string, string>; cloudflare?: { cf: Record<string, unknown> } } {
  const http: Record<string, string> = {};
  const add = (name: keyof typeof FACT_LIMITS, value: string | null | undefined) => {
    if (value) http[name] = value.slice(0, FACT_LIMITS[name]);
  };
  add("url", request.url);
  add("userAgent", request.headers.get("user-agent"));
  add("clientIP", request.headers.get("cf-connecting-ip") ?? request.headers.get("x-forwarded-for")?.split(",")[0]?.trim());
  add("referer", request.headers.get("referer"));
  const cf = (request as { cf?: Record<string, unknown> }).cf;
  return cf ? { http, cloudflare: { cf } } : { http };
}
