/** Reading the visitor's cookies and the cookies an origin response sets. */
import { PLATFORM_LIMITS } from "@edge-monetization/client";

/**
 * The value of cookie `name` in a Cookie header, or null: the first one `usable` accepts when it repeats (a browser
 * sends a cookie once per path and domain it was set for: a stale unusable one must not hide the good one).
 */
export function readCookie(header: string | null, name: string, usable: (value: string) => boolean = () => true): string | null {
  if (!header) return null;
  for (const pair of header.split(";")) {
    const equals = pair.indexOf("=");
    if (equals === -1) continue;
    if (pair.slice(0, equals).trim() !== name) continue;
    const value = pair.slice(equals + 1).trim().replace(/^"(.*)"$/, "$1");
    if (value !== "" && usable(value)) return value;
  }
  return null;
}

/**
 * What the origin's `Set-Cookie` lines do to cookie `name`: `undefined` when they leave it alone, `null` when they
 * delete it (empty value, `Max-Age` ≤ 0 or an `Expires` in the past), else its new value. The last line wins.
 */
export function setCookieValue(headers: Headers, name: string, now = Date.now()): string | null | undefined {
  let result: string | null | undefined;
  for (const line of headers.getSetCookie()) {
    const [pair = "", ...attributes] = line.split(";");
    const equals = pair.indexOf("=");
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    const value = pair.slice(equals + 1).trim().replace(/^"(.*)"$/, "$1");
    let expired = value === "";
    for (const attribute of attributes) {
      const [key = "", ...rest] = attribute.split("=");
      const attributeValue = rest.join("=").trim();
      const lower = key.trim().toLowerCase();
      if (lower === "max-age" && Number(attributeValue) <= 0) expired = true;
      if (lower === "expires" && Date.parse(attributeValue) <= now) expired = true;
    }
    result = expired ? null : value;
  }
  return result;
}

// RFC 6265 cookie-octets: no controls, whitespace, DQUOTE, comma, semicolon or backslash.
const COOKIE_OCTETS = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

/** Whether `value` can be an identity cookie: 1–512 cookie-octets (what the proxy sets, and what it believes). */
export function isIdentifierCookieValue(value: string | null | undefined): value is string {
  return typeof value === "string" && value.length <= PLATFORM_LIMITS.identifierLength && COOKIE_OCTETS.test(value);
}

/** The only form of JWT the platform reads (compact JWS); it refuses one longer than PLATFORM_LIMITS.jwtLength unread. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Whether `value` can be a JWT the platform verifies. Any other it refuses (`invalid_jwt`) without looking further, so
 * the proxy does not send it: a visitor's 70 KB cookie would make the decision's body too large to be read at all, and
 * base64url characters are never escaped in JSON (the body's size stays bounded, see ./stages/decision).
 */
export function isJwtCookieValue(value: string | null | undefined): value is string {
  return typeof value === "string" && value.length <= PLATFORM_LIMITS.jwtLength && COMPACT_JWS.test(value);
}

/** The identity cookie the proxy sets for an identifier the platform minted. Readable by scripts (not HttpOnly) on purpose: the browser package may use it. */
export function anonymousCookieLine(name: string, identifier: string, secure: boolean): string {
  return `${name}=${identifier}; Path=/; Max-Age=34560000; SameSite=Lax${secure ? "; Secure" : ""}`;
}
