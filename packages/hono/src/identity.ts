import { PLATFORM_LIMITS } from "@edge-monetization/client";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { IdentityRequest, MonetizationOptions } from "./types";

export const DEFAULT_ANONYMOUS_COOKIE = "mos_anon";
export const DEFAULT_JWT_COOKIE = "mos_jwt";


export interface RequestIdentity {
  identity: IdentityRequest;
  /** The anonymous cookie's value, when the request carries a usable one. */
  anonymousCookieValue: string | undefined;
  /**
   * Who to decide for when the platform refuses the JWT (401 `invalid_jwt`): the visitor's own anonymous cookie, so
   * that a junk or expired token is metered like the visitor it came with — not as a fresh visitor on every request.
   */
  whenJwtRefused?: IdentityRequest;
}

/**
 * The identity of the request: the `identity` option when it answers; else the JWT (Authorization bearer when enabled,
 * else the JWT cookie) — with the anonymous cookie to fall back on when the token does not verify, or, for a visitor
 * without one, the platform's fallback to a newly minted identifier; else the anonymous cookie; else a new visitor.
 */
export async function identityOf(c: Context, options: MonetizationOptions, anonymousCookie: string): Promise<RequestIdentity> {
  const anonymousCookieValue = usableIdentifier(getCookie(c, anonymousCookie));
  const custom = await options.identity?.(c);
  if (custom) return { identity: custom, anonymousCookieValue };
  const jwt = usableJwt((options.readJwtFromAuthorization ? bearerToken(c.req.header("authorization")) : undefined) ?? getCookie(c, options.jwtCookie ?? DEFAULT_JWT_COOKIE));
  if (jwt && anonymousCookieValue) return { identity: { userJwt: jwt }, anonymousCookieValue, whenJwtRefused: { anonymousIdentifier: anonymousCookieValue } };
  if (jwt) return { identity: { userJwt: jwt, createAnonymousIdentifierFallback: true }, anonymousCookieValue };
  if (anonymousCookieValue) return { identity: { anonymousIdentifier: anonymousCookieValue }, anonymousCookieValue };
  return { identity: { createAnonymousIdentifier: true }, anonymousCookieValue };
}

/** An identity for which the platform may mint an anonymous identifier (a new visitor, or a JWT that may fall back). */
export function mayMint(identity: IdentityRequest): boolean {
  return identity.createAnonymousIdentifier === true || identity.createAnonymousIdentifierFallback === true;
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

/** An anonymous cookie past the platform's bound on identifiers would only earn a 400: it counts as no cookie. */
function usableIdentifier(value: string | undefined): string | undefined {
  return value && value.length <= PLATFORM_LIMITS.identifierLength ? value : undefined;
}

/**
 * A JWT past the platform's bound can never verify (and could push the decision's body past its limit): it counts as
 * no token — the visitor is decided as their anonymous cookie, or as a new visitor.
 */
function usableJwt(value: string | undefined): string | undefined {
  return value && value.length <= PLATFORM_LIMITS.jwtLength ? value : undefined;
}
