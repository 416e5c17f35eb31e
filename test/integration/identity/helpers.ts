/** Key pairs, tokens, auth methods and a fake JWKS endpoint for the identity tests. */
import * as jose from "jose";
import type { SnapshotAuthMethod } from "../../../workers/engine/snapshot";
import type { JwtAlgorithm } from "../../../schema/config";

/** A fixed "now" (ms) so that token times are deterministic: 2030-01-01T00:00:00Z. */
export const NOW = Date.UTC(2030, 0, 1);
export const NOW_S = Math.floor(NOW / 1000);

export interface TestKey {
  alg: JwtAlgorithm;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  pem: string;
}

const keyCache = new Map<string, Promise<TestKey>>();

/** One key pair per (alg, label), generated once per test file. */
export function testKey(alg: JwtAlgorithm, label = "default"): Promise<TestKey> {
  const id = `${alg}/${label}`;
  let pending = keyCache.get(id);
  if (!pending) {
    pending = (async () => {
      const options: jose.GenerateKeyPairOptions = { extractable: true };
      if (alg === "EdDSA") options.crv = "Ed25519";
      const { privateKey, publicKey } = await jose.generateKeyPair(alg, options);
      return { alg, privateKey, publicKey, pem: await jose.exportSPKI(publicKey) };
    })();
    keyCache.set(id, pending);
  }
  return pending;
}

export function method(overrides: Partial<SnapshotAuthMethod> = {}): SnapshotAuthMethod {
  return {
    slug: "test-jwt",
    name: "Test JWT",
    algorithms: ["RS256"],
    identifierClaim: "sub",
    clockSkewSeconds: 30,
    ...overrides,
  };
}

export async function pemMethod(key: TestKey, overrides: Partial<SnapshotAuthMethod> = {}): Promise<SnapshotAuthMethod> {
  return method({ publicKey: key.pem, algorithms: [key.alg], ...overrides });
}

export interface SignOptions {
  /** Header fields besides alg (kid, typ…). */
  header?: Record<string, unknown>;
  /** Defaults: iat = NOW_S, exp = NOW_S + 3600; pass `null` to omit. */
  iat?: number | null;
  exp?: number | null;
  nbf?: number;
  alg?: string;
}

export async function sign(key: TestKey, claims: Record<string, unknown>, options: SignOptions = {}): Promise<string> {
  const jwt = new jose.SignJWT(claims as jose.JWTPayload).setProtectedHeader({
    alg: options.alg ?? key.alg,
    typ: "JWT",
    ...options.header,
  });
  const iat = options.iat === undefined ? NOW_S : options.iat;
  const exp = options.exp === undefined ? NOW_S + 3600 : options.exp;
  if (iat !== null) jwt.setIssuedAt(iat);
  if (exp !== null) jwt.setExpirationTime(exp);
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(key.privateKey);
}

export const b64url = (value: string | Uint8Array): string =>
  jose.base64url.encode(typeof value === "string" ? new TextEncoder().encode(value) : value);

/** A compact token built by hand from a header and payload, with the given signature segment. */
export function handBuilt(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ""): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${signature}`;
}

export interface FakeJwks {
  url: string;
  fetch: jose.FetchImplementation;
  /** How many times the JWKS was fetched. */
  readonly calls: number;
  status: number;
}

let jwksCounter = 0;

/** Serves `{keys}` at a unique URL through an injectable fetch, counting requests. */
export async function fakeJwks(
  entries: { key: TestKey; kid?: string; alg?: boolean }[],
  /** Reuse another fake's URL (a second, independently counted fetch of the same endpoint). */
  sameUrlAs?: FakeJwks,
): Promise<FakeJwks> {
  const keys = await Promise.all(
    entries.map(async ({ key, kid, alg = true }) => {
      const jwk = await jose.exportJWK(key.publicKey);
      if (kid !== undefined) jwk.kid = kid;
      if (alg) jwk.alg = key.alg;
      jwk.use = "sig";
      return jwk;
    }),
  );
  const url = sameUrlAs?.url ?? `https://idp-${++jwksCounter}.example.test/.well-known/jwks.json`;
  const state = { calls: 0, status: 200 };
  const fetchImpl: jose.FetchImplementation = async (requested) => {
    state.calls++;
    if (requested !== url) return new Response("not found", { status: 404 });
    if (state.status !== 200) return new Response("upstream error", { status: state.status });
    return new Response(JSON.stringify({ keys }), { status: 200, headers: { "content-type": "application/json" } });
  };
  return {
    url,
    fetch: fetchImpl,
    get calls() {
      return state.calls;
    },
    get status() {
      return state.status;
    },
    set status(value: number) {
      state.status = value;
    },
  };
}
