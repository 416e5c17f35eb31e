/**
 * User JWT verification for the `userJwt` identity form (jose v6, Web Crypto only, runs in workerd and Node).
 *
 * A token is accepted only when, for one configured authentication method:
 *   - its header `alg` is in that method's `algorithms` (so `alg: none` and HS* tokens signed with the public key as an
 *     HMAC secret are refused before any key is touched; jose is also given the list, as a second fence),
 *   - its signature verifies with the method's PEM public key or a key of its JWKS (matched by `kid`/`alg`),
 *   - `exp` / `nbf` hold within the method's clock skew, and `iss` / `aud` match when the method configures them,
 *   - the `identifierClaim` is a non-empty string or a finite number.
 * Methods are tried in order; the first success wins; when all fail the most specific reason is reported (a claim
 * failure after a good signature beats a bad signature, which beats an unknown key id, a JWKS fetch error, a
 * disallowed algorithm).
 *
 * `JwtVerifier.verify` never throws: every failure is `{ ok: false, reason }` with a human-readable reason.
 *
 * A verifier's caches (all bounded, lru-cache; one verifier per isolate in production, see `verifyUserJwt`):
 *   - imported PEM keys, per (algorithm, PEM text): the key material identifies the method, so two tenants that
 *     happen to use the same method slug never share a key;
 *   - remote JWKS resolvers (jose `createRemoteJWKSet`, which itself caches the key set for 10 minutes and refetches
 *     on an unknown `kid` at most every 30 s), per URL (and per injected fetch implementation in tests);
 *   - verified tokens, per SHA-256(methods fingerprint + token): a hot token is verified once per verifier per
 *     `VERIFIED_TTL_MS`; `exp`/`nbf` are re-checked against `now` on every hit.
 */
import * as jose from "jose";
import type { FetchImplementation, JWTPayload, JWTVerifyOptions, ProtectedHeaderParameters } from "jose";
import { LRUCache } from "lru-cache";
import type { SnapshotAuthMethod } from "../engine/snapshot";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { sha256Hex } from "../lib/crypto";

/** Tokens longer than this are refused before any parsing. */
export const MAX_JWT_LENGTH = 16 * 1024;
/** Identifiers longer than this (the limit of the other identity forms) are refused. */
export const MAX_IDENTIFIER_LENGTH = 512;

export type JwtVerifyResult =
  | { ok: true; claims: Record<string, unknown>; identifier: string; method: string }
  | { ok: false; reason: string };

export interface VerifyUserJwtOptions {
  /** Current time in milliseconds since the epoch (defaults to `Date.now()`). */
  now?: number;
  /** Fetch implementation for this call's JWKS requests (tests). Defaults to the verifier's. */
  fetchJwks?: FetchImplementation;
}

// ---------------------------------------------------------------------------------------------------------------
// Cache bounds

const KEY_CACHE_MAX = 256;
const JWKS_CACHE_MAX = 64;
const VERIFIED_MAX_ENTRIES = 10_000;
/** Approximate bytes of cached claims (the token length stands in for it), so 10k big tokens cannot exhaust 128 MB. */
const VERIFIED_MAX_BYTES = 8 * 1024 * 1024;
/** A verified token is re-verified at least this often, even if its `exp` is far away (key rotation, revocation). */
export const VERIFIED_TTL_MS = 5 * 60 * 1000;

export interface JwtVerifierOptions {
  /** Imported PEM keys kept. */
  maxKeys?: number;
  /** Remote JWKS resolvers kept (per fetch implementation). */
  maxJwksSets?: number;
  /** Verified tokens kept, by count and by approximate bytes. */
  maxVerifiedTokens?: number;
  maxVerifiedBytes?: number;
  /** How long a verified token is served from the cache before it is verified again. */
  verifiedTtlMs?: number;
  /** Fetch implementation for JWKS requests. Defaults to the global `fetch`. */
  fetchJwks?: FetchImplementation;
}

interface VerifiedEntry {
  claims: Record<string, unknown>;
  identifier: string;
  method: string;
  exp?: number;
  nbf?: number;
  skew: number;
  /** On the verification clock (`now`), after which the entry is dropped and the token verified again. */
  validUntil: number;
  size: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

/** How telling a failure is; when every method fails, the highest rank wins (the first method among equals). */
const Rank = { Config: 0, Algorithm: 1, KeySource: 2, UnknownKey: 3, Signature: 4, Claims: 5 } as const;
type Rank = (typeof Rank)[keyof typeof Rank];

interface Failure {
  ok: false;
  rank: Rank;
  reason: string;
}
interface Success {
  ok: true;
  claims: Record<string, unknown>;
  identifier: string;
}

const fail = (rank: Rank, reason: string): Failure => ({ ok: false, rank, reason });

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeClaimFailure(error: jose.errors.JWTClaimValidationFailed, method: SnapshotAuthMethod): string {
  const { claim, reason } = error;
  if (reason === "missing") return `claim ${claim} missing`;
  switch (claim) {
    case "nbf":
      return "JWT not yet valid (nbf is in the future)";
    case "iss":
      return `JWT issuer invalid (expected "${method.issuer ?? ""}")`;
    case "aud":
      return `JWT audience invalid (expected "${method.audience ?? ""}")`;
    case "iat":
      return "JWT issued-at (iat) invalid";
    default:
      return `JWT claim ${claim} invalid`;
  }
}

/** Maps an error of `jose.jwtVerify` (key already resolved) to a failure. */
function describeVerifyError(error: unknown, method: SnapshotAuthMethod, alg: string): Failure {
  if (error instanceof jose.errors.JWTExpired) return fail(Rank.Claims, "JWT expired");
  if (error instanceof jose.errors.JWTClaimValidationFailed) {
    return fail(Rank.Claims, describeClaimFailure(error, method));
  }
  if (error instanceof jose.errors.JWTInvalid) return fail(Rank.Claims, `JWT payload is malformed: ${error.message}`);
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return fail(Rank.Signature, "JWT signature invalid");
  if (error instanceof jose.errors.JOSEAlgNotAllowed) return fail(Rank.Algorithm, `JWT algorithm ${alg} not allowed`);
  if (error instanceof jose.errors.JWSInvalid) return fail(Rank.Signature, `JWT is malformed: ${error.message}`);
  // TypeError / JOSENotSupported: the key does not fit the algorithm (wrong key type, RSA modulus under 2048 bits…).
  return fail(Rank.Algorithm, `the key of auth method ${method.slug} cannot verify ${alg} tokens: ${messageOf(error)}`);
}

function extractIdentifier(claims: Record<string, unknown>, claim: string): string | Failure {
  const value = Object.hasOwn(claims, claim) ? claims[claim] : undefined;
  if (value === undefined || value === null) return fail(Rank.Claims, `claim ${claim} missing`);
  let identifier: string;
  if (typeof value === "string") identifier = value;
  // A number is an identifier only when it is an integer JSON parsing kept exactly: beyond 2^53 (or a fraction) two
  // different users' numbers can parse to the same value and become one identity.
  else if (typeof value === "number" && Number.isSafeInteger(value)) identifier = String(value);
  else if (typeof value === "number") return fail(Rank.Claims, `claim ${claim} is a number that cannot be represented exactly (send identifiers beyond 2^53 or with fractions as strings)`);
  else return fail(Rank.Claims, `claim ${claim} must be a non-empty string or an integer`);
  if (identifier.length === 0) return fail(Rank.Claims, `claim ${claim} is empty`);
  if (identifier.length > MAX_IDENTIFIER_LENGTH) {
    return fail(Rank.Claims, `claim ${claim} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  return identifier;
}

async function verifyWithKey(
  token: string,
  key: CryptoKey,
  method: SnapshotAuthMethod,
  alg: string,
  now: number,
): Promise<Success | Failure> {
  const options: JWTVerifyOptions = {
    algorithms: [...method.algorithms],
    clockTolerance: method.clockSkewSeconds,
    currentDate: new Date(now),
  };
  if (method.requireExpiry) options.requiredClaims = ["exp"];
  if (method.issuer !== undefined) options.issuer = method.issuer;
  if (method.audience !== undefined) options.audience = method.audience;
  let payload: JWTPayload;
  try {
    ({ payload } = await jose.jwtVerify(token, key, options));
  } catch (error) {
    return describeVerifyError(error, method, alg);
  }
  const claims = payload as Record<string, unknown>;
  const identifier = extractIdentifier(claims, method.identifierClaim);
  if (typeof identifier !== "string") return identifier;
  return { ok: true, claims, identifier };
}

/** Where verification gets its keys from (a verifier's caches, for one fetch implementation). */
interface KeySources {
  /** The imported PEM public key (an SPKI key or an X.509 certificate) for `alg`; rejects when it cannot be imported. */
  pem(pem: string, alg: string): Promise<CryptoKey>;
  /** The resolver of a JWKS URL; throws when the URL is invalid. */
  jwks(url: string): jose.RemoteJWKSet;
}

async function verifyWithPem(
  token: string,
  pem: string,
  method: SnapshotAuthMethod,
  alg: string,
  now: number,
  sources: KeySources,
): Promise<Success | Failure> {
  let key: CryptoKey;
  try {
    key = await sources.pem(pem, alg);
  } catch {
    return fail(Rank.Config, `the public key of auth method ${method.slug} cannot verify ${alg} tokens`);
  }
  return verifyWithKey(token, key, method, alg, now);
}

async function verifyWithJwks(
  token: string,
  url: string,
  header: ProtectedHeaderParameters,
  method: SnapshotAuthMethod,
  alg: string,
  now: number,
  sources: KeySources,
): Promise<Success | Failure> {
  let resolver: jose.RemoteJWKSet;
  try {
    resolver = sources.jwks(url);
  } catch {
    return fail(Rank.Config, `the JWKS URL of auth method ${method.slug} is invalid`);
  }
  let keys: CryptoKey[];
  try {
    keys = [await resolver(header)];
  } catch (error) {
    if (error instanceof jose.errors.JWKSMultipleMatchingKeys) {
      // No `kid` (or a shared one): try every candidate; jose exposes them through async iteration.
      keys = [];
      for await (const candidate of error as unknown as AsyncIterable<CryptoKey>) keys.push(candidate);
    } else if (error instanceof jose.errors.JWKSNoMatchingKey) {
      return typeof header.kid === "string"
        ? fail(Rank.UnknownKey, `unknown key id "${header.kid.slice(0, 100)}"`)
        : fail(Rank.UnknownKey, `no key of the JWKS matches the JWT (alg ${alg}, no kid)`);
    } else if (error instanceof jose.errors.JWKSTimeout) {
      return fail(Rank.KeySource, `JWKS of auth method ${method.slug} timed out`);
    } else if (error instanceof jose.errors.JWKSInvalid) {
      return fail(Rank.KeySource, `JWKS of auth method ${method.slug} is not a valid key set`);
    } else if (error instanceof jose.errors.JOSENotSupported) {
      return fail(Rank.Algorithm, `JWT algorithm ${alg} not supported by the JWKS`);
    } else {
      return fail(Rank.KeySource, `JWKS of auth method ${method.slug} could not be fetched: ${messageOf(error)}`);
    }
  }
  let best: Failure = fail(Rank.UnknownKey, "no key of the JWKS matches the JWT");
  for (const key of keys) {
    const result = await verifyWithKey(token, key, method, alg, now);
    if (result.ok) return result;
    if (result.rank > best.rank) best = result;
  }
  return best;
}

async function verifyWithMethod(
  token: string,
  header: ProtectedHeaderParameters & { alg: string },
  method: SnapshotAuthMethod,
  now: number,
  sources: KeySources,
): Promise<Success | Failure> {
  const alg = header.alg;
  if (!(method.algorithms as readonly string[]).includes(alg)) {
    return fail(Rank.Algorithm, `JWT algorithm ${alg} not allowed (allowed: ${method.algorithms.join(", ")})`);
  }
  if (!method.publicKey && !method.jwksUrl) {
    return fail(Rank.Config, `auth method ${method.slug} has neither a public key nor a JWKS URL`);
  }
  let best: Failure | undefined;
  if (method.publicKey) {
    const result = await verifyWithPem(token, method.publicKey, method, alg, now, sources);
    if (result.ok) return result;
    best = result;
  }
  if (method.jwksUrl) {
    const result = await verifyWithJwks(token, method.jwksUrl, header, method, alg, now, sources);
    if (result.ok) return result;
    if (!best || result.rank > best.rank) best = result;
  }
  return best as Failure;
}

/**
 * The verified-token cache is keyed by the WHOLE auth-method configuration: any change to a method (a new rule such as
 * `requireExpiry`, a new key) starts from a fresh verification instead of trusting an answer given under the old one.
 */
function methodsFingerprint(methods: readonly SnapshotAuthMethod[]): string {
  return JSON.stringify(methods);
}

function cachedResult(entry: VerifiedEntry, now: number): JwtVerifyResult | undefined {
  const nowSec = Math.floor(now / 1000);
  // Same comparisons as jose's claim checks, so a hit never accepts what a fresh verification would refuse.
  if (entry.exp !== undefined && entry.exp <= nowSec - entry.skew) return { ok: false, reason: "JWT expired" };
  if (entry.nbf !== undefined && entry.nbf > nowSec + entry.skew) {
    return { ok: false, reason: "JWT not yet valid (nbf is in the future)" };
  }
  return { ok: true, claims: structuredClone(entry.claims), identifier: entry.identifier, method: entry.method };
}

/**
 * Verifies user JWTs against an environment's authentication methods, with its own caches of keys, key sets and
 * verified tokens (see the file comment). One per isolate in production; tests make their own.
 */
export class JwtVerifier {
  private readonly keys: LRUCache<string, Promise<CryptoKey>>;
  private readonly jwksSets: LRUCache<string, jose.RemoteJWKSet>;
  /** Resolvers per injected fetch implementation: a test's fake IdP never answers for the real one. */
  private readonly jwksSetsByFetch = new WeakMap<FetchImplementation, LRUCache<string, jose.RemoteJWKSet>>();
  private readonly verified: LRUCache<string, VerifiedEntry>;
  private readonly maxJwksSets: number;
  private readonly verifiedTtlMs: number;
  private readonly fetchJwks: FetchImplementation | undefined;

  constructor(options: JwtVerifierOptions = {}) {
    this.maxJwksSets = options.maxJwksSets ?? JWKS_CACHE_MAX;
    this.verifiedTtlMs = options.verifiedTtlMs ?? VERIFIED_TTL_MS;
    this.fetchJwks = options.fetchJwks;
    this.keys = new LRUCache({ max: options.maxKeys ?? KEY_CACHE_MAX });
    this.jwksSets = new LRUCache({ max: this.maxJwksSets });
    this.verified = new LRUCache({
      max: options.maxVerifiedTokens ?? VERIFIED_MAX_ENTRIES,
      maxSize: options.maxVerifiedBytes ?? VERIFIED_MAX_BYTES,
      sizeCalculation: (entry) => entry.size,
      ttl: this.verifiedTtlMs,
      ...EXPIRE_ON_READ,
    });
  }

  /** Verifies a user JWT against the environment's authentication methods. Never throws. */
  async verify(token: unknown, methods: readonly SnapshotAuthMethod[], options: VerifyUserJwtOptions = {}): Promise<JwtVerifyResult> {
    try {
      return await this.verifyUnsafe(token, methods, options);
    } catch (error) {
      // Defensive: nothing above should throw, but a failure here must never become a 500.
      return { ok: false, reason: `JWT could not be verified: ${messageOf(error)}` };
    }
  }

  /** Introspection for tests of the cache bounds. */
  cacheStats(): { keys: number; jwks: number; verified: number; verifiedBytes: number } {
    return { keys: this.keys.size, jwks: this.jwksSets.size, verified: this.verified.size, verifiedBytes: this.verified.calculatedSize };
  }

  private keySources(fetchImpl: FetchImplementation | undefined): KeySources {
    return { pem: (pem, alg) => this.importPem(pem, alg), jwks: (url) => this.remoteJwks(url, fetchImpl) };
  }

  private importPem(pem: string, alg: string): Promise<CryptoKey> {
    const cacheKey = `${alg}\n${pem}`;
    const cached = this.keys.get(cacheKey);
    if (cached) return cached;
    const text = pem.trim();
    const pending = (
      text.startsWith("-----BEGIN CERTIFICATE-----") ? jose.importX509(text, alg) : jose.importSPKI(text, alg)
    ).catch((error: unknown) => {
      // A key that cannot be imported is not remembered: the method's configuration may be fixed meanwhile.
      if (this.keys.peek(cacheKey) === pending) this.keys.delete(cacheKey);
      throw error;
    });
    this.keys.set(cacheKey, pending);
    return pending;
  }

  private remoteJwks(url: string, fetchImpl: FetchImplementation | undefined): jose.RemoteJWKSet {
    let sets = this.jwksSets;
    if (fetchImpl) {
      let perFetch = this.jwksSetsByFetch.get(fetchImpl);
      if (!perFetch) {
        perFetch = new LRUCache({ max: this.maxJwksSets });
        this.jwksSetsByFetch.set(fetchImpl, perFetch);
      }
      sets = perFetch;
    }
    const existing = sets.get(url);
    if (existing) return existing;
    const options: jose.RemoteJWKSetOptions = { timeoutDuration: 3000 };
    if (fetchImpl) options[jose.customFetch] = fetchImpl;
    const created = jose.createRemoteJWKSet(new URL(url), options);
    sets.set(url, created);
    return created;
  }

  private async verifyUnsafe(
    token: unknown,
    methods: readonly SnapshotAuthMethod[],
    options: VerifyUserJwtOptions,
  ): Promise<JwtVerifyResult> {
    if (typeof token !== "string") return { ok: false, reason: "JWT must be a string" };
    if (token.length === 0) return { ok: false, reason: "JWT is empty" };
    if (token.length > MAX_JWT_LENGTH) {
      return { ok: false, reason: `JWT is too large (${token.length} characters; the limit is ${MAX_JWT_LENGTH})` };
    }
    if (!COMPACT_JWS.test(token)) {
      return { ok: false, reason: "JWT is malformed: expected three base64url segments separated by dots" };
    }
    if (methods.length === 0) return { ok: false, reason: "no JWT authentication method is configured" };

    let header: ProtectedHeaderParameters;
    try {
      header = jose.decodeProtectedHeader(token);
    } catch {
      return { ok: false, reason: "JWT header is malformed" };
    }
    const alg = header.alg;
    if (typeof alg !== "string" || alg.length === 0) return { ok: false, reason: "JWT header has no alg" };
    if (alg.toLowerCase() === "none") return { ok: false, reason: "JWT algorithm none not allowed (unsigned token)" };
    if (!methods.some((m) => (m.algorithms as readonly string[]).includes(alg))) {
      const allowed = [...new Set(methods.flatMap((m) => m.algorithms))].join(", ");
      return { ok: false, reason: `JWT algorithm ${alg.slice(0, 40)} not allowed (allowed: ${allowed})` };
    }

    const now = options.now ?? Date.now();
    const cacheKey = await sha256Hex(`${methodsFingerprint(methods)}\n${token}`);
    const hit = this.verified.get(cacheKey);
    if (hit) {
      // The cache's own TTL runs on the isolate's clock; a caller may verify as of another time (`now`).
      if (now < hit.validUntil) {
        const result = cachedResult(hit, now);
        if (result) {
          if (!result.ok) this.verified.delete(cacheKey);
          return result;
        }
      }
      this.verified.delete(cacheKey);
    }

    const typedHeader = header as ProtectedHeaderParameters & { alg: string };
    const sources = this.keySources(options.fetchJwks ?? this.fetchJwks);
    let best: Failure | undefined;
    for (const method of methods) {
      const result = await verifyWithMethod(token, typedHeader, method, now, sources);
      if (result.ok) {
        const exp = typeof result.claims.exp === "number" ? result.claims.exp : undefined;
        const nbf = typeof result.claims.nbf === "number" ? result.claims.nbf : undefined;
        const entry: VerifiedEntry = {
          claims: result.claims,
          identifier: result.identifier,
          method: method.slug,
          skew: method.clockSkewSeconds,
          validUntil: now + this.verifiedTtlMs,
          size: token.length + 256,
        };
        if (exp !== undefined) entry.exp = exp;
        if (nbf !== undefined) entry.nbf = nbf;
        this.verified.set(cacheKey, entry);
        return {
          ok: true,
          claims: structuredClone(result.claims),
          identifier: result.identifier,
          method: method.slug,
        };
      }
      if (!best || result.rank > best.rank) best = result;
    }
    return { ok: false, reason: best?.reason ?? "JWT could not be verified" };
  }
}

export function createJwtVerifier(options: JwtVerifierOptions = {}): JwtVerifier {
  return new JwtVerifier(options);
}

/** This isolate's verifier: `verifyUserJwt` and every request of the isolate share its caches. */
export const isolateJwtVerifier = createJwtVerifier();

/** Verifies a user JWT with this isolate's verifier. Never throws. */
export function verifyUserJwt(
  token: unknown,
  methods: readonly SnapshotAuthMethod[],
  options: VerifyUserJwtOptions = {},
): Promise<JwtVerifyResult> {
  return isolateJwtVerifier.verify(token, methods, options);
}
