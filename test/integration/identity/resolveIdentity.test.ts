import { describe, expect, it } from "vitest";
import { testGroup100 } from "../../../workers/engine/testGroup";
import { IdentityInput, mintAnonymousIdentifier, resolveIdentity } from "../../../workers/identity/resolveIdentity";
import { fakeJwks, method, NOW, NOW_S, pemMethod, sign, testKey } from "./helpers";

const secret = { keyType: "secret" as const, authMethods: [] };
const publishable = { keyType: "publishable" as const, authMethods: [] };

describe("IdentityInput schema", () => {
  it("accepts each of the four forms", () => {
    expect(IdentityInput.safeParse({ anonymousIdentifier: "device-1" }).success).toBe(true);
    expect(IdentityInput.safeParse({ createAnonymousIdentifier: true }).success).toBe(true);
    expect(IdentityInput.safeParse({ userIdentifier: "user-1" }).success).toBe(true);
    expect(IdentityInput.safeParse({ userJwt: "a.b.c" }).success).toBe(true);
    expect(IdentityInput.safeParse({ userJwt: "a.b.c", createAnonymousIdentifierFallback: true }).success).toBe(true);
  });

  it("rejects unknown keys, empty objects, several forms and out-of-range values", () => {
    const cases: [unknown, RegExp][] = [
      [{}, /exactly one of anonymousIdentifier, createAnonymousIdentifier, userIdentifier, userJwt/],
      [{ anonymousIdentifier: "a", userIdentifier: "b" }, /got anonymousIdentifier and userIdentifier/],
      [{ userIdentifier: "a", extra: 1 }, /extra/],
      [{ anonymousIdentifier: "" }, /anonymousIdentifier/],
      [{ userIdentifier: "x".repeat(513) }, /userIdentifier/],
      [{ createAnonymousIdentifier: false }, /createAnonymousIdentifier must be true/],
      [{ anonymousIdentifier: "a", createAnonymousIdentifierFallback: true }, /only allowed together with userJwt/],
      [{ userJwt: 42 }, /userJwt must be a string/],
      ["a string", /./],
      [null, /./],
    ];
    for (const [input, message] of cases) {
      const parsed = IdentityInput.safeParse(input);
      expect(parsed.success, JSON.stringify(input)).toBe(false);
      expect(parsed.error?.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")).toMatch(message);
    }
    expect(IdentityInput.safeParse({ userIdentifier: "x".repeat(512) }).success).toBe(true);
  });
});

describe("resolveIdentity: anonymous and provided forms", () => {
  it("keeps a caller's anonymous identifier", async () => {
    const result = await resolveIdentity({ anonymousIdentifier: "device-abc" }, publishable);
    expect(result).toEqual({
      ok: true,
      identity: {
        authType: "anonymous",
        identifier: "device-abc",
        isAuthenticated: false,
        jwtClaims: {},
        testGroup100: testGroup100("device-abc"),
      },
    });
  });

  it("mints distinct anon_ identifiers for createAnonymousIdentifier", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const result = await resolveIdentity({ createAnonymousIdentifier: true }, publishable);
      if (!result.ok) throw new Error(result.message);
      expect(result.identity.identifier).toMatch(/^anon_[A-Za-z0-9_-]{24}$/);
      expect(result.identity).toMatchObject({ authType: "anonymous", isAuthenticated: false, jwtClaims: {} });
      expect(result.identity.testGroup100).toBe(testGroup100(result.identity.identifier));
      seen.add(result.identity.identifier);
    }
    expect(seen.size).toBe(200);
    expect(mintAnonymousIdentifier()).toMatch(/^anon_[A-Za-z0-9_-]{24}$/);
  });

  it("uses an injected id minter", async () => {
    const result = await resolveIdentity({ createAnonymousIdentifier: true }, { ...secret, mintId: () => "anon_fixed" });
    expect(result.ok && result.identity.identifier).toBe("anon_fixed");
  });

  it("accepts userIdentifier with a secret key", async () => {
    const result = await resolveIdentity({ userIdentifier: "test@example.com" }, secret);
    expect(result).toEqual({
      ok: true,
      identity: {
        authType: "provided",
        identifier: "test@example.com",
        isAuthenticated: true,
        jwtClaims: {},
        testGroup100: testGroup100("test@example.com"),
      },
    });
  });

  it("refuses userIdentifier with a publishable key (403)", async () => {
    const result = await resolveIdentity({ userIdentifier: "test@example.com" }, publishable);
    expect(result).toEqual({
      ok: false,
      status: 403,
      code: "forbidden_identity_form",
      message: "publishable keys may not send userIdentifier",
    });
  });

  it("answers 400 invalid_identity for several forms, none, or unknown keys", async () => {
    const several = await resolveIdentity({ anonymousIdentifier: "a", createAnonymousIdentifier: true }, secret);
    expect(several).toMatchObject({ ok: false, status: 400, code: "invalid_identity" });
    expect(!several.ok && several.message).toMatch(/^identity: identity must contain exactly one of/);
    expect(!several.ok && several.message).toMatch(/got anonymousIdentifier and createAnonymousIdentifier/);
    expect(await resolveIdentity({}, secret)).toMatchObject({ ok: false, status: 400, code: "invalid_identity" });
    expect(await resolveIdentity(undefined, secret)).toMatchObject({ ok: false, status: 400 });
    const unknown = await resolveIdentity({ userIdentifier: "u", foo: 1 }, secret);
    expect(unknown).toMatchObject({ ok: false, status: 400, code: "invalid_identity" });
    expect(!unknown.ok && unknown.message).toMatch(/foo/);
  });

  it("puts the same identifier in the same test group every time, whatever the form", async () => {
    const a = await resolveIdentity({ anonymousIdentifier: "same-id" }, secret);
    const b = await resolveIdentity({ userIdentifier: "same-id" }, secret);
    const c = await resolveIdentity({ anonymousIdentifier: "same-id" }, publishable);
    const groups = [a, b, c].map((r) => (r.ok ? r.identity.testGroup100 : -1));
    expect(groups[0]).toBeGreaterThanOrEqual(0);
    expect(groups[0]).toBeLessThan(100);
    expect(new Set(groups).size).toBe(1);
    expect(groups[0]).toBe(testGroup100("same-id"));
    // Different identifiers spread over the buckets.
    const buckets = new Set(Array.from({ length: 500 }, (_, i) => testGroup100(`user-${i}`)));
    expect(buckets.size).toBeGreaterThan(80);
  });
});

describe("resolveIdentity: userJwt", () => {
  it("resolves the seed tutorial token to a jwt identity with its claims", async () => {
    const key = await testKey("RS256");
    const claims = { sub: "1234567890", name: "John Doe", email: "test@example.com", premium: true, iat: 1760714314 };
    const token = await sign(key, claims, { iat: null, exp: null });
    const authMethods = [await pemMethod(key, { slug: "test-jwt", identifierClaim: "email" })];
    for (const keyType of ["publishable", "secret"] as const) {
      const result = await resolveIdentity({ userJwt: token }, { keyType, authMethods, now: NOW });
      expect(result).toEqual({
        ok: true,
        jwtMethod: "test-jwt",
        identity: {
          authType: "jwt",
          identifier: "test@example.com",
          isAuthenticated: true,
          jwtClaims: claims,
          testGroup100: testGroup100("test@example.com"),
        },
      });
    }
  });

  it("answers 401 invalid_jwt with the reason for an invalid token without fallback", async () => {
    const key = await testKey("RS256");
    const authMethods = [await pemMethod(key)];
    const expired = await sign(key, { sub: "u" }, { exp: NOW_S - 3600 });
    expect(await resolveIdentity({ userJwt: expired }, { keyType: "publishable", authMethods, now: NOW })).toEqual({
      ok: false,
      status: 401,
      code: "invalid_jwt",
      message: "JWT expired",
    });
    const garbage = await resolveIdentity({ userJwt: "not-a-jwt" }, { keyType: "secret", authMethods, now: NOW });
    expect(garbage).toMatchObject({ ok: false, status: 401, code: "invalid_jwt", message: /^JWT is malformed/ });
    const empty = await resolveIdentity({ userJwt: "" }, { keyType: "secret", authMethods, now: NOW });
    expect(empty).toMatchObject({ ok: false, status: 401, code: "invalid_jwt", message: "JWT is empty" });
  });

  it("falls back to a fresh anonymous identity, and says why, when the fallback flag is set", async () => {
    const key = await testKey("ES256");
    const authMethods = [await pemMethod(key)];
    const forged = await sign(await testKey("ES256", "attacker"), { sub: "admin" });
    let n = 0;
    const options = { keyType: "publishable" as const, authMethods, now: NOW, mintId: () => `anon_minted${++n}` };
    const result = await resolveIdentity({ userJwt: forged, createAnonymousIdentifierFallback: true }, options);
    expect(result).toEqual({
      ok: true,
      jwtError: "JWT signature invalid",
      identity: {
        authType: "anonymous",
        identifier: "anon_minted1",
        isAuthenticated: false,
        jwtClaims: {},
        testGroup100: testGroup100("anon_minted1"),
      },
    });
    // A valid token with the flag is still a jwt identity (no jwtError).
    const valid = await sign(key, { sub: "real-user" });
    const ok = await resolveIdentity({ userJwt: valid, createAnonymousIdentifierFallback: true }, options);
    expect(ok).toMatchObject({ ok: true, identity: { authType: "jwt", identifier: "real-user" } });
    expect(ok.ok && ok.jwtError).toBeUndefined();
    // A fallback flag set to false behaves like no flag.
    const noFallback = await resolveIdentity({ userJwt: forged, createAnonymousIdentifierFallback: false }, options);
    expect(noFallback).toMatchObject({ ok: false, status: 401, code: "invalid_jwt" });
  });

  it("mints a new id on each fallback with the default minter", async () => {
    const key = await testKey("RS256");
    const options = { keyType: "secret" as const, authMethods: [await pemMethod(key)], now: NOW };
    const input = { userJwt: "x.y.z", createAnonymousIdentifierFallback: true as const };
    const [a, b] = await Promise.all([resolveIdentity(input, options), resolveIdentity(input, options)]);
    const ids = [a, b].map((r) => (r.ok ? r.identity.identifier : ""));
    expect(ids[0]).toMatch(/^anon_[A-Za-z0-9_-]{24}$/);
    expect(ids[1]).toMatch(/^anon_[A-Za-z0-9_-]{24}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(a.ok && a.jwtError).toBe("JWT header is malformed");
  });

  it("refuses a userJwt when no auth method is configured (401), or falls back", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "u" });
    const refused = await resolveIdentity({ userJwt: token }, { keyType: "secret", authMethods: [], now: NOW });
    expect(refused).toEqual({
      ok: false,
      status: 401,
      code: "invalid_jwt",
      message: "no JWT authentication method is configured for this environment",
    });
    const fallback = await resolveIdentity(
      { userJwt: token, createAnonymousIdentifierFallback: true },
      { keyType: "secret", authMethods: [], now: NOW, mintId: () => "anon_x" },
    );
    expect(fallback).toMatchObject({
      ok: true,
      identity: { authType: "anonymous", identifier: "anon_x" },
      jwtError: "no JWT authentication method is configured for this environment",
    });
  });

  it("rejects alg none and the HMAC forgery through resolveIdentity too", async () => {
    const key = await testKey("RS256");
    const authMethods = [await pemMethod(key)];
    const { SignJWT, base64url } = await import("jose");
    const none = `${base64url.encode('{"alg":"none"}')}.${base64url.encode('{"sub":"admin"}')}.`;
    const hmac = await new SignJWT({ sub: "admin" })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(key.pem));
    for (const userJwt of [none, hmac]) {
      const result = await resolveIdentity({ userJwt }, { keyType: "secret", authMethods, now: NOW });
      expect(result).toMatchObject({ ok: false, status: 401, code: "invalid_jwt", message: /not allowed/ });
    }
  });

  it("resolves a JWKS-verified token and passes the injected fetch through", async () => {
    const key = await testKey("EdDSA");
    const jwks = await fakeJwks([{ key, kid: "ed" }]);
    const authMethods = [method({ slug: "idp", jwksUrl: jwks.url, algorithms: ["EdDSA"] })];
    const token = await sign(key, { sub: "ed-user" }, { header: { kid: "ed" } });
    const result = await resolveIdentity(
      { userJwt: token },
      { keyType: "publishable", authMethods, now: NOW, fetchJwks: jwks.fetch },
    );
    expect(result).toMatchObject({ ok: true, jwtMethod: "idp", identity: { authType: "jwt", identifier: "ed-user" } });
    expect(jwks.calls).toBe(1);
  });
});
