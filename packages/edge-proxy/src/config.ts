/**
 * The proxy's settings: `ProxyConfig` for code that builds a proxy, `configFromEnv` for the Worker, which reads them
 * from its vars and its `SECRET_KEY` secret. Every mistake names the setting, so the operator knows what to fix.
 */
import { environmentIdOfKey } from "@edge-monetization/client";

export type FailureMode = "open" | "closed";

export interface ProxyConfig {
  /** The platform's origin, e.g. "https://monetization.example.com". */
  platformUrl: string;
  /** The environment's secret key (`sk_…`): decisions and redemptions are asked for the visitor with it. */
  secretKey: string;
  /** Your site's origin: pages are fetched from it, same path and query. */
  originUrl: string;
  /** The surface decided for pages no `surfaces` pattern matches; none: those pages pass untouched. */
  surfaceSlug?: string | undefined;
  /** Surfaces by path: the first pattern matching the path wins. */
  surfaces?: { pattern: string | RegExp; surface: string }[] | undefined;
  /** Default "mos_anon". */
  anonymousCookie?: string | undefined;
  /** Default "mos_jwt". */
  jwtCookie?: string | undefined;
  /** Default "/mos-endpoints/": forwarded to the environment's custom endpoints. */
  endpointsPrefix?: string | undefined;
  /** Default "/mos-api/": the proxy's own routes (offer redemptions). */
  apiPrefix?: string | undefined;
  /** Paths served untouched. */
  ignorePaths?: (string | RegExp)[] | undefined;
  /** A module script added to the <head> of every decided page. */
  injectScriptUrl?: string | undefined;
  /** Per attempt; default 1500. */
  decisionTimeoutMs?: number | undefined;
  /** What a page is when the platform cannot answer: "open" (default) the origin's page as is, "closed" a 503 page. */
  failureMode?: FailureMode | undefined;
  /**
   * Default true: for a visitor with a JWT cookie and no anonymous cookie, ask the platform to make a token it cannot
   * verify a new anonymous visitor in the same call. False: the JWT goes alone, and a refused one is decided again as
   * a new visitor. (With an anonymous cookie the JWT always goes alone, and a refused one is decided as that cookie.)
   */
  jwtFallback?: boolean | undefined;
}

/** The settings with their defaults applied and checked. */
export interface ResolvedConfig {
  platformUrl: string;
  secretKey: string;
  environmentId: string;
  originUrl: string;
  surfaceSlug: string | null;
  surfaces: { pattern: RegExp; surface: string }[];
  anonymousCookie: string;
  jwtCookie: string;
  endpointsPrefix: string;
  apiPrefix: string;
  ignorePaths: RegExp[];
  injectScriptUrl: string | null;
  decisionTimeoutMs: number;
  failureMode: FailureMode;
  jwtFallback: boolean;
}

/** A setting that cannot work; `setting` is its var name (PLATFORM_URL, SECRET_KEY, …). */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = "ConfigError";
  }
}

/** What the Worker reads from its environment: vars, the SECRET_KEY secret, and optional service bindings. */
export interface EdgeProxyEnv {
  PLATFORM_URL?: string;
  SECRET_KEY?: string;
  ORIGIN_URL?: string;
  SURFACE_SLUG?: string;
  SURFACES?: string;
  ANONYMOUS_COOKIE?: string;
  JWT_COOKIE?: string;
  ENDPOINTS_PREFIX?: string;
  API_PREFIX?: string;
  IGNORE_PATHS?: string;
  INJECT_SCRIPT_URL?: string;
  DECISION_TIMEOUT_MS?: string;
  FAILURE_MODE?: string;
  JWT_FALLBACK?: string;
  /** The platform, when it runs on the same account (requests still name PLATFORM_URL's host). */
  PLATFORM?: Fetcher;
  /** The origin, when it is a Worker on the same account. */
  ORIGIN?: Fetcher;
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function httpUrl(setting: string, value: string | undefined): string {
  if (!value) throw new ConfigError(setting, "is required");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(setting, `"${value}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new ConfigError(setting, `"${value}" is not an http(s) URL`);
  return url.origin;
}

function regex(setting: string, pattern: string | RegExp): RegExp {
  if (pattern instanceof RegExp) return pattern;
  try {
    return new RegExp(pattern);
  } catch {
    throw new ConfigError(setting, `"${pattern}" is not a valid regular expression`);
  }
}

function prefix(setting: string, value: string): string {
  if (!value.startsWith("/") || !value.endsWith("/")) throw new ConfigError(setting, `"${value}" must start and end with "/"`);
  return value;
}

function cookieName(setting: string, value: string): string {
  if (!COOKIE_NAME.test(value)) throw new ConfigError(setting, `"${value}" is not a valid cookie name`);
  return value;
}

/** Applies the defaults and checks every setting; throws a ConfigError naming the first bad one. */
export function resolveConfig(config: ProxyConfig): ResolvedConfig {
  const platformUrl = httpUrl("PLATFORM_URL", config.platformUrl);
  const originUrl = httpUrl("ORIGIN_URL", config.originUrl);
  if (!config.secretKey) throw new ConfigError("SECRET_KEY", "is required (wrangler secret put SECRET_KEY)");
  const environmentId = environmentIdOfKey(config.secretKey);
  if (!config.secretKey.startsWith("sk_") || environmentId === null) throw new ConfigError("SECRET_KEY", "must be an environment's secret key (sk_…)");
  const surfaces = (config.surfaces ?? []).map((entry) => {
    if (typeof entry?.surface !== "string" || entry.surface === "") throw new ConfigError("SURFACES", "every entry needs a surface slug");
    return { pattern: regex("SURFACES", entry.pattern), surface: entry.surface };
  });
  const decisionTimeoutMs = config.decisionTimeoutMs ?? 1500;
  if (!Number.isInteger(decisionTimeoutMs) || decisionTimeoutMs <= 0) throw new ConfigError("DECISION_TIMEOUT_MS", "must be a positive number of milliseconds");
  const failureMode = config.failureMode ?? "open";
  if (failureMode !== "open" && failureMode !== "closed") throw new ConfigError("FAILURE_MODE", `must be "open" or "closed", not "${String(failureMode)}"`);
  let injectScriptUrl: string | null = null;
  if (config.injectScriptUrl) {
    try {
      new URL(config.injectScriptUrl, "https://site.example");
    } catch {
      throw new ConfigError("INJECT_SCRIPT_URL", `"${config.injectScriptUrl}" is not a URL`);
    }
    injectScriptUrl = config.injectScriptUrl;
  }
  return {
    platformUrl,
    secretKey: config.secretKey,
    environmentId,
    originUrl,
    surfaceSlug: config.surfaceSlug || null,
    surfaces,
    anonymousCookie: cookieName("ANONYMOUS_COOKIE", config.anonymousCookie ?? "mos_anon"),
    jwtCookie: cookieName("JWT_COOKIE", config.jwtCookie ?? "mos_jwt"),
    endpointsPrefix: prefix("ENDPOINTS_PREFIX", config.endpointsPrefix ?? "/mos-endpoints/"),
    apiPrefix: prefix("API_PREFIX", config.apiPrefix ?? "/mos-api/"),
    ignorePaths: (config.ignorePaths ?? []).map((pattern) => regex("IGNORE_PATHS", pattern)),
    injectScriptUrl,
    decisionTimeoutMs,
    failureMode,
    jwtFallback: config.jwtFallback ?? true,
  };
}

/** The settings of the Worker's vars (strings) as a ProxyConfig; throws a ConfigError naming the var. */
export function configFromEnv(env: EdgeProxyEnv): ProxyConfig {
  const optional = (value: string | undefined) => (value === undefined || value.trim() === "" ? undefined : value.trim());
  let surfaces: ProxyConfig["surfaces"];
  const surfacesText = optional(env.SURFACES);
  if (surfacesText) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(surfacesText);
    } catch {
      throw new ConfigError("SURFACES", 'is not JSON: expected [{"pattern": "^/articles/", "surface": "article-page"}]');
    }
    if (!Array.isArray(parsed) || !parsed.every((entry) => typeof entry === "object" && entry !== null && typeof entry.pattern === "string" && typeof entry.surface === "string")) {
      throw new ConfigError("SURFACES", 'must be a list of {"pattern": string, "surface": string}');
    }
    surfaces = parsed;
  }
  let decisionTimeoutMs: number | undefined;
  const timeoutText = optional(env.DECISION_TIMEOUT_MS);
  if (timeoutText !== undefined) {
    decisionTimeoutMs = Number(timeoutText);
    if (!/^\d+$/.test(timeoutText)) throw new ConfigError("DECISION_TIMEOUT_MS", `"${timeoutText}" is not a number of milliseconds`);
  }
  const failureMode = optional(env.FAILURE_MODE);
  if (failureMode !== undefined && failureMode !== "open" && failureMode !== "closed") throw new ConfigError("FAILURE_MODE", `must be "open" or "closed", not "${failureMode}"`);
  const jwtFallback = optional(env.JWT_FALLBACK);
  if (jwtFallback !== undefined && jwtFallback !== "true" && jwtFallback !== "false") throw new ConfigError("JWT_FALLBACK", `must be "true" or "false", not "${jwtFallback}"`);
  return {
    platformUrl: optional(env.PLATFORM_URL) ?? "",
    secretKey: optional(env.SECRET_KEY) ?? "",
    originUrl: optional(env.ORIGIN_URL) ?? "",
    surfaceSlug: optional(env.SURFACE_SLUG),
    surfaces,
    anonymousCookie: optional(env.ANONYMOUS_COOKIE),
    jwtCookie: optional(env.JWT_COOKIE),
    endpointsPrefix: optional(env.ENDPOINTS_PREFIX),
    apiPrefix: optional(env.API_PREFIX),
    ignorePaths: optional(env.IGNORE_PATHS)
      ?.split(",")
      .map((pattern) => pattern.trim())
      .filter(Boolean),
    injectScriptUrl: optional(env.INJECT_SCRIPT_URL),
    decisionTimeoutMs,
    failureMode,
    jwtFallback: jwtFallback === undefined ? undefined : jwtFallback === "true",
  };
}
