/**
 * Web Bot Auth key directories: the JWKS an agent publishes at `/.well-known/http-message-signatures-directory` on its
 * origin, the origin its Signature-Agent names. Only that form is accepted — an origin (or its well-known URL) on
 * https, port 443, under a DNS name — because the origin IS the operator that plans, meters and credits key on: two
 * parties who can publish files under different paths of one shared host must never verify as one operator, and a
 * request must not make the platform fetch an arbitrary host, port or path (IP literals, internal names, a port scan).
 * Loopback http/https on any port is allowed only where the operator says so (local development and tests).
 *
 * Fetches are bounded in size and time and cached per isolate — a hit for an hour, a failure for a minute, at most
 * 500 agents, one fetch for concurrent lookups of one agent — and new (uncached) directories are budgeted per isolate
 * (30 a minute), so a flood of made-up agents costs a bounded number of fetches. Only Ed25519 keys (`kty: OKP`) are
 * kept, by their RFC 7638 thumbprint: the `keyid` agents sign with.
 */
import { isLoopback, isPublicDnsName } from "../lib/hosts";
import { LRUCache } from "lru-cache";
import { jwkToKeyID, helpers } from "web-bot-auth";
import type { DirectoryKeys, KeyDirectoryLookup } from "../identity/webBotAuth";
import { BodyTooLargeError, readBoundedText } from "../lib/boundedBody";

export const DIRECTORY_PATH = "/.well-known/http-message-signatures-directory";
export const DIRECTORY_MEDIA_TYPE = "application/http-message-signatures-directory+json";
const MAX_DIRECTORY_BYTES = 64 * 1024;
const MAX_KEYS = 32;
const FETCH_TIMEOUT_MS = 2_000;
const HIT_TTL_MS = 60 * 60 * 1000;
const MISS_TTL_MS = 60 * 1000;
const MAX_DIRECTORIES = 500;
/** New directories one tenant may have fetched a minute (its visitors choose the Signature-Agent they send). */
const NEW_DIRECTORY_BUDGET = 30;
/** …and the whole isolate: what bounds the fetches when many tenants are probed at once. */
const ISOLATE_DIRECTORY_BUDGET = 300;
const NEW_DIRECTORY_WINDOW_MS = 60 * 1000;
const BUDGETED_TENANTS = 1_000;

type Lookup = { ok: true; keys: DirectoryKeys } | { ok: false; reason: string };

export interface KeyDirectoryOptions {
  fetch: (request: Request) => Promise<Response>;
  /** http on 127.0.0.1 / localhost / [::1] as well as https (never in production). */
  allowInsecureLoopback: boolean;
  now?: () => number;
}

/** The directory cache of one isolate (the Worker keeps one; tests make their own). */
export function keyDirectories(options: KeyDirectoryOptions): KeyDirectoryLookup {
  const now = options.now ?? Date.now;
  const cache = new LRUCache<string, { lookup: Lookup; until: number }>({ max: MAX_DIRECTORIES });
  const inFlight = new Map<string, Promise<Lookup>>();

  const isolateFetches: number[] = [];
  const tenantFetches = new LRUCache<string, number[]>({ max: BUDGETED_TENANTS });

  const allows = (agent: URL) => {
    if (agent.username || agent.password || agent.search || agent.hash) return false;
    if (agent.pathname !== "/" && agent.pathname !== DIRECTORY_PATH) return false;
    if (options.allowInsecureLoopback && isLoopback(agent.hostname) && (agent.protocol === "http:" || agent.protocol === "https:")) return true;
    return agent.protocol === "https:" && agent.port === "" && isPublicDnsName(agent.hostname);
  };

  /**
   * Whether one more new directory may be fetched now (a sliding minute), for this tenant and for the isolate: one
   * tenant's visitors naming made-up directories spend only that tenant's budget, never the other tenants' agents'.
   */
  const withinBudget = (tenant: string) => {
    const horizon = now() - NEW_DIRECTORY_WINDOW_MS;
    const recent = tenantFetches.get(tenant) ?? [];
    for (const window of [recent, isolateFetches]) while (window.length > 0 && window[0]! <= horizon) window.shift();
    if (recent.length >= NEW_DIRECTORY_BUDGET || isolateFetches.length >= ISOLATE_DIRECTORY_BUDGET) return false;
    recent.push(now());
    isolateFetches.push(now());
    tenantFetches.set(tenant, recent);
    return true;
  };

  return {
    allows,
    async keysOf(agent, tenant = "") {
      if (!allows(agent)) return { ok: false, reason: "a Signature-Agent must name an https origin (a DNS name on port 443)" };
      const url = directoryUrl(agent);
      const cached = cache.get(url);
      if (cached && cached.until > now()) return cached.lookup;
      // Concurrent decisions of one new agent share one fetch.
      let pending = inFlight.get(url);
      if (!pending) {
        if (!withinBudget(tenant)) return { ok: false, reason: "too many new key directories at once; try again in a minute" };
        pending = fetchDirectory(url, options.fetch).finally(() => inFlight.delete(url));
        inFlight.set(url, pending);
      }
      const lookup = await pending;
      cache.set(url, { lookup, until: now() + (lookup.ok ? HIT_TTL_MS : MISS_TTL_MS) });
      return lookup;
    },
  };
}

/** An agent's directory is always its origin's well-known one. */
export function directoryUrl(agent: URL): string {
  return `${agent.origin}${DIRECTORY_PATH}`;
}

async function fetchDirectory(url: string, fetcher: KeyDirectoryOptions["fetch"]): Promise<Lookup> {
  let response: Response;
  try {
    response = await fetcher(
      new Request(url, { headers: { accept: `${DIRECTORY_MEDIA_TYPE}, application/json;q=0.9` }, redirect: "manual", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) }),
    );
  } catch (error) {
    return { ok: false, reason: `the directory could not be fetched (${error instanceof Error && error.name === "TimeoutError" ? "timeout" : "unreachable"})` };
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    return { ok: false, reason: `the directory answered ${response.status}` };
  }
  let document: unknown;
  try {
    document = JSON.parse(await readBoundedText(response.body, MAX_DIRECTORY_BYTES, response.headers.get("content-length")));
  } catch (error) {
    return { ok: false, reason: error instanceof BodyTooLargeError ? `the directory is larger than ${MAX_DIRECTORY_BYTES} bytes` : "the directory is not JSON" };
  }
  const jwks = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(jwks)) return { ok: false, reason: "the directory has no keys array" };
  const keys = new Map<string, CryptoKey>();
  for (const jwk of jwks.slice(0, MAX_KEYS)) {
    if (!isEd25519PublicJwk(jwk)) continue;
    const publicJwk: JsonWebKey = { kty: "OKP", crv: "Ed25519", x: jwk.x };
    try {
      const keyId = await jwkToKeyID(publicJwk, helpers.WEBCRYPTO_SHA256, helpers.BASE64URL_DECODE);
      keys.set(keyId, await crypto.subtle.importKey("jwk", publicJwk, { name: "Ed25519" }, false, ["verify"]));
    } catch {
      // A key that does not import is skipped: the others may still verify.
    }
  }
  if (keys.size === 0) return { ok: false, reason: "the directory has no usable Ed25519 key" };
  return { ok: true, keys };
}

function isEd25519PublicJwk(value: unknown): value is { kty: "OKP"; crv: "Ed25519"; x: string } {
  const jwk = value as { kty?: unknown; crv?: unknown; x?: unknown; d?: unknown } | null;
  return typeof jwk === "object" && jwk !== null && jwk.kty === "OKP" && jwk.crv === "Ed25519" && typeof jwk.x === "string" && jwk.x.length <= 64;
}

const isolateLookups = new Map<boolean, KeyDirectoryLookup>();

/**
 * The isolate's directory cache (one per loopback setting, which is fixed per deployment): directories fetched once
 * serve every later request of the isolate until their TTL.
 */
export function isolateKeyDirectories(allowInsecureLoopback: boolean): KeyDirectoryLookup {
  let lookup = isolateLookups.get(allowInsecureLoopback);
  if (!lookup) isolateLookups.set(allowInsecureLoopback, (lookup = keyDirectories({ fetch: (request) => fetch(request), allowInsecureLoopback })));
  return lookup;
}
