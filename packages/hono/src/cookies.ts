import type { CookieOptions } from "./types";

/** The browser's upper bound for a cookie's lifetime (RFC 6265bis), and hono/cookie's: 400 days. */
export const MAX_COOKIE_AGE_SECONDS = 400 * 24 * 60 * 60;

/** A cookie name is an RFC 6265 token; hono/cookie refuses to write any other. */
const COOKIE_NAME = /^[\w!#$%&'*.^`|~+-]+$/;
const ATTRIBUTE_BREAK = /[;\r\n]/;
const SAME_SITE = new Set(["strict", "lax", "none"]);
const PRIORITY = new Set(["low", "medium", "high"]);

/** The anonymous cookie as it is read and written: its full name (with any prefix) and its options, prefix resolved. */
export interface AnonymousCookie {
  name: string;
  options: Omit<CookieOptions, "prefix">;
}

/** Throws a TypeError unless `name` is a cookie name hono/cookie can read and write. */
export function checkCookieName(option: string, name: unknown): string {
  if (typeof name !== "string" || !COOKIE_NAME.test(name)) {
    throw new TypeError(`monetization(): ${option} ${JSON.stringify(name)} is not a cookie name (letters, digits and !#$%&'*.^\`|~+-_ only)`);
  }
  return name;
}

/**
 * The anonymous cookie's name and options, checked once at setup for everything hono/cookie's setCookie would throw
 * on — per request, as a 500, after the platform already minted the identifier. `prefix` is folded into the name (as
 * setCookie does) so that the cookie is read back under the name it is written with.
 */
export function anonymousCookieOf(name: string, overrides: CookieOptions = {}): AnonymousCookie {
  const fail = (problem: string): never => {
    throw new TypeError(`monetization(): the anonymous cookie ${JSON.stringify(name)}: ${problem}`);
  };
  const { prefix, ...options } = overrides as CookieOptions & { prefix?: unknown };
  let fullName = name;
  if (prefix === "secure") {
    fullName = `__Secure-${name}`;
    options.secure = true;
  } else if (prefix === "host") {
    fullName = `__Host-${name}`;
    Object.assign(options, { secure: true, path: "/", domain: undefined });
  } else if (prefix !== undefined) {
    fail(`cookieOptions.prefix must be "secure" or "host"`);
  }
  // Secure otherwise follows the request's scheme: a prefix that needs it must not depend on it.
  if (/^__secure-/i.test(fullName) && options.secure !== true) fail("a __Secure- cookie needs cookieOptions.secure: true");
  if (/^__host-/i.test(fullName)) {
    if (options.secure !== true) fail("a __Host- cookie needs cookieOptions.secure: true");
    if (options.path !== undefined && options.path !== "/") fail('a __Host- cookie needs Path "/"');
    if (options.domain) fail("a __Host- cookie must not have a Domain");
  }
  if (options.partitioned && options.secure !== true) fail("a Partitioned cookie needs cookieOptions.secure: true");
  if (options.maxAge !== undefined && !(Number.isInteger(options.maxAge) && options.maxAge >= 0 && options.maxAge <= MAX_COOKIE_AGE_SECONDS)) {
    fail(`cookieOptions.maxAge must be a whole number of seconds from 0 to ${MAX_COOKIE_AGE_SECONDS} (400 days)`);
  }
  if (options.expires !== undefined) {
    // A fixed date only comes nearer: within 400 days now, it stays within them.
    if (!(options.expires instanceof Date) || Number.isNaN(options.expires.getTime())) fail("cookieOptions.expires must be a valid Date");
    if (options.expires.getTime() - Date.now() > MAX_COOKIE_AGE_SECONDS * 1000) fail("cookieOptions.expires must be within 400 days");
  }
  for (const key of ["domain", "path", "sameSite", "priority"] as const) {
    const value: unknown = options[key];
    if (value === undefined) continue;
    if (typeof value !== "string" || ATTRIBUTE_BREAK.test(value)) fail(`cookieOptions.${key} must be a string without ";" or line breaks`);
  }
  if (options.sameSite !== undefined && !SAME_SITE.has(options.sameSite.toLowerCase())) fail('cookieOptions.sameSite must be "Strict", "Lax" or "None"');
  if (options.priority !== undefined && !PRIORITY.has(options.priority.toLowerCase())) fail('cookieOptions.priority must be "Low", "Medium" or "High"');
  return { name: fullName, options };
}
