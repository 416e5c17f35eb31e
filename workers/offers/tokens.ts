/**
 * Offer tokens: what a surface decision hands out with each offer and what `POST /api/v1/offer-redemptions` accepts.
 * A compact JWS (HS256, via jose) whose claims bind the environment, the offer and variant, the price shown, the
 * offer's fingerprint and the identity it was shown to (engine/offerTypes.ts OfferTokenClaims).
 *
 * Each environment signs with its own HMAC key, derived with HKDF from the platform secret (SECRETS_KEY) and the
 * environment id: nothing to store or rotate per environment, and a token of one environment never verifies in
 * another, even before its `env` claim is compared.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { LRUCache } from "lru-cache";
import type { OfferTokenClaims } from "../engine/offerTypes";
import { randomToken } from "../lib/crypto";
import { secretsKeyBytes } from "../lib/secrets";

/** How long a token is accepted: long enough to read a paywall and decide, short enough that prices stay current. */
export const OFFER_TOKEN_TTL_SECONDS = 30 * 60;

const encoder = new TextEncoder();
const ALGORITHM = "HS256";
/** Bounded: one isolate may sign for many environments. */
const keys = new LRUCache<string, Promise<CryptoKey>>({ max: 1_000 });

function environmentKey(secretsKey: string, environmentId: string): Promise<CryptoKey> {
  const cacheKey = `${secretsKey}\u0000${environmentId}`;
  let key = keys.get(cacheKey);
  if (!key) {
    key = (async () => {
      const base = await crypto.subtle.importKey("raw", secretsKeyBytes(secretsKey), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: encoder.encode("offer-tokens/v1"), info: encoder.encode(environmentId) },
        base,
        { name: "HMAC", hash: "SHA-256", length: 256 },
        false,
        ["sign", "verify"],
      );
    })();
    // A failed derivation (a malformed SECRETS_KEY) must not stay cached as a rejected promise.
    key.catch(() => keys.delete(cacheKey));
    keys.set(cacheKey, key);
  }
  return key;
}

export type OfferTokenInput = Omit<OfferTokenClaims, "jti" | "iat" | "exp">;

/** Signs a token for `input`, valid from `now` (ms) for OFFER_TOKEN_TTL_SECONDS. */
export async function mintOfferToken(secretsKey: string, input: OfferTokenInput, now: number): Promise<{ token: string; claims: OfferTokenClaims }> {
  const iat = Math.floor(now / 1000);
  const claims: OfferTokenClaims = { ...input, jti: randomToken(20), iat, exp: iat + OFFER_TOKEN_TTL_SECONDS };
  const token = await new SignJWT({ ...claims }).setProtectedHeader({ alg: ALGORITHM, typ: "offer+jwt" }).sign(await environmentKey(secretsKey, input.env));
  return { token, claims };
}

export type OfferTokenCheck =
  | { ok: true; claims: OfferTokenClaims }
  /** `malformed`: not a token at all; `invalid`: not signed by this environment; `expired`: past its `exp`. */
  | { ok: false; reason: "malformed" | "invalid" | "expired" };

/** Most a token can reasonably be: refused before any crypto. */
const MAX_TOKEN_LENGTH = 4_096;

/**
 * Verifies a token's signature (with the key of `environmentId`, the environment of the caller's key) and expiry at
 * `now` (ms). The caller still compares the identity, the offer and its price with what the token binds.
 */
export async function verifyOfferToken(secretsKey: string, environmentId: string, token: string, now: number): Promise<OfferTokenCheck> {
  if (token.length > MAX_TOKEN_LENGTH || token.split(".").length !== 3) return { ok: false, reason: "malformed" };
  try {
    const { payload } = await jwtVerify(token, await environmentKey(secretsKey, environmentId), {
      algorithms: [ALGORITHM],
      typ: "offer+jwt",
      currentDate: new Date(now),
      requiredClaims: ["exp", "iat", "jti"],
    });
    const claims = payload as unknown as OfferTokenClaims;
    if (!isClaims(claims)) return { ok: false, reason: "malformed" };
    return { ok: true, claims };
  } catch (error) {
    if (error instanceof errors.JWTExpired) return { ok: false, reason: "expired" };
    if (error instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: "invalid" };
    if (error instanceof errors.JOSEError) return { ok: false, reason: "malformed" };
    throw error;
  }
}

const isNullable = (value: unknown, type: "string" | "number") => value === null || typeof value === type;

/** The claims a validly signed token must carry; only this code signs, so this guards against its own older shapes. */
function isClaims(claims: OfferTokenClaims): boolean {
  return (
    typeof claims.env === "string" &&
    typeof claims.offer === "string" &&
    isNullable(claims.variant, "string") &&
    isNullable(claims.group, "string") &&
    isNullable(claims.slot, "number") &&
    typeof claims.sub === "string" &&
    typeof claims.anon === "boolean" &&
    isNullable(claims.amt, "number") &&
    isNullable(claims.cur, "string") &&
    isNullable(claims.int, "string") &&
    typeof claims.fp === "string" &&
    typeof claims.jti === "string"
  );
}
