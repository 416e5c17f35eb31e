import * as jose from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import type { JwtAlgorithm } from "../../../schema/config";
import { createJwtVerifier, MAX_JWT_LENGTH, verifyUserJwt, VERIFIED_TTL_MS, type JwtVerifier } from "../../../workers/identity/jwt";
import { b64url, fakeJwks, handBuilt, method, NOW, NOW_S, pemMethod, sign, testKey } from "./helpers";

const ALGORITHMS: JwtAlgorithm[] = ["RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"];

function expectFailure(result: Awaited<ReturnType<typeof verifyUserJwt>>): string {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("expected a failure");
  return result.reason;
}

describe("verifyUserJwt: valid tokens", () => {
  for (const alg of ALGORITHMS) {
    it(`accepts a valid ${alg} token and returns its claims and identifier`, async () => {
      const key = await testKey(alg);
      const token = await sign(key, { sub: `user-${alg}`, role: "member" });
      const result = await verifyUserJwt(token, [await pemMethod(key, { slug: `m-${alg}` })], { now: NOW });
      expect(result).toEqual({
        ok: true,
        identifier: `user-${alg}`,
        method: `m-${alg}`,
        claims: { sub: `user-${alg}`, role: "member", iat: NOW_S, exp: NOW_S + 3600 },
      });
    });
  }

  it("accepts the seed tutorial token (identifierClaim email, no exp) and returns the claims intact", async () => {
    const key = await testKey("RS256");
    const claims = { sub: "1234567890", name: "John Doe", email: "test@example.com", premium: true, iat: 1760714314 };
    const token = await sign(key, claims, { iat: null, exp: null });
    const result = await verifyUserJwt(token, [await pemMethod(key, { identifierClaim: "email" })], { now: NOW });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.identifier).toBe("test@example.com");
    expect(result.claims).toEqual(claims);
  });

  it("with requireExpiry, refuses a token without exp (the default accepts it, as the seed tutorial's token needs)", async () => {
    const key = await testKey("RS256");
    const forever = await sign(key, { sub: "no-exp" }, { exp: null });
    const strict = await pemMethod(key, { requireExpiry: true });
    const refused = await verifyUserJwt(forever, [strict], { now: NOW });
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toMatch(/exp/);
    expect((await verifyUserJwt(await sign(key, { sub: "with-exp" }), [strict], { now: NOW })).ok).toBe(true);
    expect((await verifyUserJwt(forever, [await pemMethod(key)], { now: NOW })).ok).toBe(true);
  });

  it("turns a numeric identifier claim into a string", async () => {
    const key = await testKey("ES256");
    const token = await sign(key, { uid: 42 });
    const result = await verifyUserJwt(token, [await pemMethod(key, { identifierClaim: "uid" })], { now: NOW });
    expect(result.ok && result.identifier).toBe("42");
  });

  it("refuses a numeric identifier that cannot be represented exactly (beyond 2^53, or a fraction)", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { identifierClaim: "uid" });
    // Signed over the payload's own text: 9007199254740993 and 9007199254740992 are two users, but parse to one number.
    const signRaw = async (payload: string) => {
      const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }))}.${b64url(payload)}`;
      const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key.privateKey, new TextEncoder().encode(input));
      return `${input}.${b64url(new Uint8Array(signature))}`;
    };
    for (const uid of ["9007199254740993", "9007199254740992", "-9007199254740993", "1.5", "1e300"]) {
      const result = await verifyUserJwt(await signRaw(`{"uid":${uid},"exp":${NOW_S + 60}}`), [m], { now: NOW });
      expect(result.ok, uid).toBe(false);
      expect(!result.ok && result.reason, uid).toMatch(/cannot be represented exactly/);
    }
    const largest = await verifyUserJwt(await signRaw(`{"uid":9007199254740991,"exp":${NOW_S + 60}}`), [m], { now: NOW });
    expect(largest.ok && largest.identifier).toBe("9007199254740991");
    const asText = await verifyUserJwt(await signRaw(`{"uid":"9007199254740993","exp":${NOW_S + 60}}`), [m], { now: NOW });
    expect(asText.ok && asText.identifier).toBe("9007199254740993");
  });

  it("tries each method in order and reports the one that verified", async () => {
    const rsa = await testKey("RS256");
    const ec = await testKey("ES256");
    const methods = [await pemMethod(rsa, { slug: "rsa" }), await pemMethod(ec, { slug: "ec" })];
    const ecToken = await sign(ec, { sub: "e" });
    const rsaToken = await sign(rsa, { sub: "r" });
    const ecResult = await verifyUserJwt(ecToken, methods, { now: NOW });
    const rsaResult = await verifyUserJwt(rsaToken, methods, { now: NOW });
    expect(ecResult.ok && ecResult.method).toBe("ec");
    expect(rsaResult.ok && rsaResult.method).toBe("rsa");
  });

  it("enforces issuer and audience when configured and accepts matching ones", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { issuer: "https://idp.example", audience: "my-app" });
    const good = await sign(key, { sub: "u", iss: "https://idp.example", aud: ["other", "my-app"] });
    expect((await verifyUserJwt(good, [m], { now: NOW })).ok).toBe(true);
  });
});

describe("verifyUserJwt: time claims", () => {
  it("rejects an expired token", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "u" }, { iat: NOW_S - 7200, exp: NOW_S - 3600 });
    expect(expectFailure(await verifyUserJwt(token, [await pemMethod(key)], { now: NOW }))).toBe("JWT expired");
  });

  it("rejects a token whose nbf is in the future", async () => {
    const key = await testKey("ES256");
    const token = await sign(key, { sub: "u" }, { nbf: NOW_S + 600 });
    const reason = expectFailure(await verifyUserJwt(token, [await pemMethod(key)], { now: NOW }));
    expect(reason).toMatch(/^JWT not yet valid/);
  });

  it("accepts exp and nbf within the method's clock skew, and rejects just outside it", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { clockSkewSeconds: 60 });
    const expiredRecently = await sign(key, { sub: "a" }, { exp: NOW_S - 50 });
    const notBeforeSoon = await sign(key, { sub: "b" }, { nbf: NOW_S + 50 });
    const expiredLongAgo = await sign(key, { sub: "c" }, { exp: NOW_S - 61 });
    const notBeforeLater = await sign(key, { sub: "d" }, { nbf: NOW_S + 61 });
    expect((await verifyUserJwt(expiredRecently, [m], { now: NOW })).ok).toBe(true);
    expect((await verifyUserJwt(notBeforeSoon, [m], { now: NOW })).ok).toBe(true);
    expect(expectFailure(await verifyUserJwt(expiredLongAgo, [m], { now: NOW }))).toBe("JWT expired");
    expect(expectFailure(await verifyUserJwt(notBeforeLater, [m], { now: NOW }))).toMatch(/not yet valid/);
    // With no skew, the recently expired token is refused.
    const strict = await pemMethod(key, { clockSkewSeconds: 0 });
    const fresh = await sign(key, { sub: "e" }, { exp: NOW_S - 1 });
    expect(expectFailure(await verifyUserJwt(fresh, [strict], { now: NOW }))).toBe("JWT expired");
  });
});

describe("verifyUserJwt: issuer and audience", () => {
  it("rejects a wrong issuer", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { issuer: "https://idp.example" });
    const token = await sign(key, { sub: "u", iss: "https://evil.example" });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toBe(
      'JWT issuer invalid (expected "https://idp.example")',
    );
  });

  it("rejects a missing issuer when one is configured", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { issuer: "https://idp.example" });
    const token = await sign(key, { sub: "u" });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toBe("claim iss missing");
  });

  it("rejects a wrong audience", async () => {
    const key = await testKey("ES384");
    const m = await pemMethod(key, { audience: "my-app" });
    const token = await sign(key, { sub: "u", aud: "another-app" });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toBe('JWT audience invalid (expected "my-app")');
  });

  it("does not check iss/aud when the method does not configure them", async () => {
    const key = await testKey("ES384");
    const token = await sign(key, { sub: "u", iss: "anyone", aud: "anything" });
    expect((await verifyUserJwt(token, [await pemMethod(key)], { now: NOW })).ok).toBe(true);
  });
});

describe("verifyUserJwt: signature and algorithm attacks", () => {
  it("rejects alg none (hand-built unsigned token), whatever its casing", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key);
    for (const alg of ["none", "None", "NONE"]) {
      const token = handBuilt({ alg, typ: "JWT" }, { sub: "admin", exp: NOW_S + 3600 });
      expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toMatch(
        new RegExp(`^JWT algorithm ${alg} not allowed`, "i"),
      );
    }
    // Also with a junk signature segment.
    const withSig = handBuilt({ alg: "none" }, { sub: "admin" }, "c2ln");
    expect(expectFailure(await verifyUserJwt(withSig, [m], { now: NOW }))).toMatch(/algorithm none not allowed/);
  });

  for (const hmac of ["HS256", "HS384", "HS512"]) {
    it(`rejects an ${hmac} token forged with the public key PEM as the HMAC secret`, async () => {
      const key = await testKey("RS256");
      const forged = await new jose.SignJWT({ sub: "admin" })
        .setProtectedHeader({ alg: hmac, typ: "JWT" })
        .setExpirationTime(NOW_S + 3600)
        .sign(new TextEncoder().encode(key.pem));
      const result = await verifyUserJwt(forged, [await pemMethod(key)], { now: NOW });
      expect(expectFailure(result)).toBe(`JWT algorithm ${hmac} not allowed (allowed: RS256)`);
    });
  }

  it("rejects the HMAC forgery even if a method (mis)lists HS256: the PEM never becomes an HMAC secret", async () => {
    const key = await testKey("RS256");
    const forged = await new jose.SignJWT({ sub: "admin" })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(key.pem));
    const misconfigured = method({ publicKey: key.pem, algorithms: ["RS256", "HS256" as JwtAlgorithm] });
    const result = await verifyUserJwt(forged, [misconfigured], { now: NOW });
    expect(expectFailure(result)).toBe("the public key of auth method test-jwt cannot verify HS256 tokens");
  });

  it("rejects an RS256 token when only ES256 is allowed, even if the key would verify it", async () => {
    const rsa = await testKey("RS256");
    const token = await sign(rsa, { sub: "u" });
    const m = method({ publicKey: rsa.pem, algorithms: ["ES256"] });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toBe(
      "JWT algorithm RS256 not allowed (allowed: ES256)",
    );
  });

  it("rejects a tampered payload", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "alice", premium: false });
    const [header, , signature] = token.split(".");
    const tampered = `${header}.${b64url(JSON.stringify({ sub: "alice", premium: true, exp: NOW_S + 3600 }))}.${signature}`;
    expect(expectFailure(await verifyUserJwt(tampered, [await pemMethod(key)], { now: NOW }))).toBe(
      "JWT signature invalid",
    );
  });

  it("rejects a token signed by another key of the same algorithm", async () => {
    const trusted = await testKey("ES256");
    const attacker = await testKey("ES256", "attacker");
    const token = await sign(attacker, { sub: "u" });
    expect(expectFailure(await verifyUserJwt(token, [await pemMethod(trusted)], { now: NOW }))).toBe(
      "JWT signature invalid",
    );
  });

  it("reports the most specific reason when several methods fail", async () => {
    const rsa = await testKey("RS256");
    const ec = await testKey("ES256");
    const methods = [await pemMethod(rsa, { slug: "rsa" }), await pemMethod(ec, { slug: "ec" })];
    // ec verifies the signature but the token is expired; rsa refuses the algorithm. "expired" is more specific.
    const expired = await sign(ec, { sub: "u" }, { exp: NOW_S - 3600 });
    expect(expectFailure(await verifyUserJwt(expired, methods, { now: NOW }))).toBe("JWT expired");
    const forged = await sign(await testKey("ES256", "attacker"), { sub: "u" });
    expect(expectFailure(await verifyUserJwt(forged, methods, { now: NOW }))).toBe("JWT signature invalid");
  });

  it("rejects a token whose identifier claim is missing, empty or not a string/number", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key, { identifierClaim: "email" });
    const missing = await sign(key, { sub: "u" });
    const empty = await sign(key, { sub: "u", email: "" });
    const object = await sign(key, { sub: "u", email: { value: "x" } });
    expect(expectFailure(await verifyUserJwt(missing, [m], { now: NOW }))).toBe("claim email missing");
    expect(expectFailure(await verifyUserJwt(empty, [m], { now: NOW }))).toBe("claim email is empty");
    expect(expectFailure(await verifyUserJwt(object, [m], { now: NOW }))).toMatch(/^claim email must be/);
  });

  it("refuses when no method is configured", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "u" });
    expect(expectFailure(await verifyUserJwt(token, [], { now: NOW }))).toMatch(/no JWT authentication method/);
  });
});

describe("verifyUserJwt: garbage input never throws", () => {
  const m = method({ publicKey: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----" });
  const cases: [string, unknown, RegExp][] = [
    ["empty string", "", /^JWT is empty$/],
    ["two segments", "a.b", /^JWT is malformed/],
    ["four segments", "a.b.c.d", /^JWT is malformed/],
    ["non-base64url characters", "a+b.c/d.e=", /^JWT is malformed/],
    ["three random segments", "qwerty.asdfgh.zxcvbn", /^JWT header is malformed$/],
    ["just dots", "...", /^JWT is malformed/],
    ["header that is JSON but not an object", `${b64url("[1,2]")}.${b64url("{}")}.x`, /^JWT header is malformed$/],
    ["header without alg", `${b64url('{"typ":"JWT"}')}.${b64url("{}")}.x`, /^JWT header has no alg$/],
    ["a number", 12345, /^JWT must be a string$/],
    ["null", null, /^JWT must be a string$/],
    ["20 KiB string", "a".repeat(20 * 1024), /^JWT is too large/],
    ["20 KiB token-shaped string", `${"a".repeat(10 * 1024)}.${"b".repeat(10 * 1024)}.c`, /^JWT is too large/],
  ];
  for (const [name, input, expected] of cases) {
    it(`rejects ${name}`, async () => {
      const result = await verifyUserJwt(input, [m], { now: NOW });
      expect(expectFailure(result)).toMatch(expected);
    });
  }

  it("rejects a signed token whose payload is not a JSON object", async () => {
    const key = await testKey("RS256");
    const token = await new jose.CompactSign(new TextEncoder().encode('"just a string"'))
      .setProtectedHeader({ alg: "RS256" })
      .sign(key.privateKey);
    expect(expectFailure(await verifyUserJwt(token, [await pemMethod(key)], { now: NOW }))).toMatch(
      /^JWT payload is malformed/,
    );
  });

  it("reports a broken configured key instead of throwing", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "u" });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW }))).toMatch(/public key of auth method test-jwt/);
  });

  it("accepts exactly MAX_JWT_LENGTH characters as a size (and then judges the content)", async () => {
    const header = b64url('{"alg":"RS256"}');
    const filler = "a".repeat(MAX_JWT_LENGTH - header.length - 3);
    const result = await verifyUserJwt(`${header}.${filler}.a`, [m], { now: NOW });
    expect(expectFailure(result)).not.toMatch(/too large/);
  });
});

describe("verifyUserJwt: JWKS", () => {
  it("verifies against a JWKS and fetches it once across many verifications", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1" }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["RS256"] });
    for (let i = 0; i < 25; i++) {
      const token = await sign(key, { sub: `user-${i}` }, { header: { kid: "k1" } });
      const result = await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch });
      expect(result.ok && result.identifier).toBe(`user-${i}`);
    }
    expect(jwks.calls).toBe(1);
  });

  it("picks the key by kid among several", async () => {
    const a = await testKey("ES256");
    const b = await testKey("ES256", "second");
    const jwks = await fakeJwks([
      { key: a, kid: "a" },
      { key: b, kid: "b" },
    ]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["ES256"] });
    const token = await sign(b, { sub: "from-b" }, { header: { kid: "b" } });
    const result = await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch });
    expect(result.ok && result.identifier).toBe("from-b");
    // The right kid with the wrong key's signature is refused.
    const mismatched = await sign(a, { sub: "x" }, { header: { kid: "b" } });
    expect(expectFailure(await verifyUserJwt(mismatched, [m], { now: NOW, fetchJwks: jwks.fetch }))).toBe(
      "JWT signature invalid",
    );
  });

  it("tries every matching key when the token has no kid", async () => {
    const a = await testKey("ES256");
    const b = await testKey("ES256", "second");
    const jwks = await fakeJwks([{ key: a }, { key: b }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["ES256"] });
    const token = await sign(b, { sub: "no-kid" });
    const result = await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch });
    expect(result.ok && result.identifier).toBe("no-kid");
  });

  it("rejects a token whose kid is not in the JWKS", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1" }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["RS256"] });
    // Signed with the very key of the JWKS, but naming a kid the JWKS does not have.
    const token = await sign(key, { sub: "u" }, { header: { kid: "rotated-away" } });
    const result = await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch });
    expect(expectFailure(result)).toBe('unknown key id "rotated-away"');
    // A burst of unknown kids does not hammer the IdP (jose's cooldown): still a single fetch.
    for (let i = 0; i < 5; i++) {
      const other = await sign(key, { sub: "u" }, { header: { kid: `random-${i}` } });
      expect(expectFailure(await verifyUserJwt(other, [m], { now: NOW, fetchJwks: jwks.fetch }))).toMatch(
        /^unknown key id/,
      );
    }
    expect(jwks.calls).toBe(1);
  });

  it("reports a JWKS that cannot be fetched", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1" }]);
    jwks.status = 503;
    const m = method({ slug: "idp", jwksUrl: jwks.url, algorithms: ["RS256"] });
    const token = await sign(key, { sub: "u" }, { header: { kid: "k1" } });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch }))).toMatch(
      /^JWKS of auth method idp could not be fetched/,
    );
    // Once the IdP recovers, the same token verifies (failures are not cached).
    jwks.status = 200;
    expect((await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch })).ok).toBe(true);
  });

  it("applies the method's algorithm list to JWKS keys too", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1", alg: false }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["PS256"] });
    const token = await sign(key, { sub: "u" }, { header: { kid: "k1" } });
    expect(expectFailure(await verifyUserJwt(token, [m], { now: NOW, fetchJwks: jwks.fetch }))).toMatch(
      /^JWT algorithm RS256 not allowed/,
    );
    expect(jwks.calls).toBe(0);
  });
});

describe("JwtVerifier: verified-token cache", () => {
  // Each test has its own verifier, so its cache holds only what the test put there.
  let verifier: JwtVerifier;
  beforeEach(() => {
    verifier = createJwtVerifier();
  });

  it("keys what it remembers by the whole auth-method configuration: tightening a rule applies at once", async () => {
    const key = await testKey("RS256");
    const forever = await sign(key, { sub: "no-exp" }, { exp: null });
    const lenient = await pemMethod(key);
    expect((await verifier.verify(forever, [lenient], { now: NOW })).ok).toBe(true);
    // The same method with requireExpiry switched on (a new deployment): the remembered answer is not reused.
    const strict = { ...lenient, requireExpiry: true };
    const refused = await verifier.verify(forever, [strict], { now: NOW });
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toMatch(/exp/);
    // Any other change to the configuration starts afresh too (here an issuer the token does not carry).
    const withIssuer = { ...lenient, issuer: "https://issuer.example" };
    expect((await verifier.verify(forever, [withIssuer], { now: NOW })).ok).toBe(false);
    expect((await verifier.verify(forever, [lenient], { now: NOW })).ok).toBe(true);
  });

  it("serves a hot token from the cache, re-checks exp on every hit, and drops it after exp", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1" }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["RS256"], clockSkewSeconds: 30 });
    const exp = NOW_S + 60;
    const token = await sign(key, { sub: "hot" }, { header: { kid: "k1" }, exp });

    const first = await verifier.verify(token, [m], { now: NOW, fetchJwks: jwks.fetch });
    expect(first.ok && first.identifier).toBe("hot");
    expect(jwks.calls).toBe(1);

    // A fresh fetch implementation means a fresh JWKS resolver: if the result were not cached, it would fetch.
    const untouched = await fakeJwks([{ key, kid: "k1" }], jwks);
    const before = verifier.cacheStats().verified;
    const hit = await verifier.verify(token, [m], { now: NOW + 10_000, fetchJwks: untouched.fetch });
    expect(hit.ok && hit.identifier).toBe("hot");
    expect(untouched.calls).toBe(0);
    expect(verifier.cacheStats().verified).toBe(before);

    // Within the clock skew after exp: still accepted from the cache.
    const inSkew = await verifier.verify(token, [m], { now: (exp + 29) * 1000, fetchJwks: untouched.fetch });
    expect(inSkew.ok).toBe(true);
    expect(untouched.calls).toBe(0);

    // Past exp + skew: rejected, without verifying again, and the entry is gone.
    const late = await verifier.verify(token, [m], { now: (exp + 31) * 1000, fetchJwks: untouched.fetch });
    expect(expectFailure(late)).toBe("JWT expired");
    expect(untouched.calls).toBe(0);
    expect(verifier.cacheStats().verified).toBe(before - 1);
  });

  it("returns a copy of the cached claims, so callers cannot poison the cache", async () => {
    const key = await testKey("ES256");
    const m = await pemMethod(key);
    const token = await sign(key, { sub: "u", roles: ["reader"] });
    const first = await verifier.verify(token, [m], { now: NOW });
    if (!first.ok) throw new Error(first.reason);
    (first.claims.roles as string[]).push("admin");
    first.claims.sub = "someone-else";
    const second = await verifier.verify(token, [m], { now: NOW });
    expect(second.ok && second.claims).toEqual({ sub: "u", roles: ["reader"], iat: NOW_S, exp: NOW_S + 3600 });
    expect(second.ok && second.identifier).toBe("u");
  });

  it("keys the cache by the methods: a token cached for one configuration is re-verified under another", async () => {
    const key = await testKey("RS256");
    const token = await sign(key, { sub: "u", iss: "https://a.example" });
    const open = await pemMethod(key);
    expect((await verifier.verify(token, [open], { now: NOW })).ok).toBe(true);
    const strict = await pemMethod(key, { issuer: "https://b.example" });
    expect(expectFailure(await verifier.verify(token, [strict], { now: NOW }))).toMatch(/^JWT issuer invalid/);
    const otherKey = await pemMethod(await testKey("RS256", "other"));
    expect(expectFailure(await verifier.verify(token, [otherKey], { now: NOW }))).toBe("JWT signature invalid");
  });

  it("re-verifies a token without exp after the cache TTL", async () => {
    const key = await testKey("RS256");
    const jwks = await fakeJwks([{ key, kid: "k1" }]);
    const m = method({ jwksUrl: jwks.url, algorithms: ["RS256"] });
    const token = await sign(key, { sub: "long-lived" }, { header: { kid: "k1" }, exp: null });
    expect((await verifier.verify(token, [m], { now: NOW, fetchJwks: jwks.fetch })).ok).toBe(true);
    const second = await fakeJwks([{ key, kid: "k1" }], jwks);
    expect((await verifier.verify(token, [m], { now: NOW + VERIFIED_TTL_MS - 1, fetchJwks: second.fetch })).ok).toBe(true);
    expect(second.calls).toBe(0);
    const after = await verifier.verify(token, [m], { now: NOW + VERIFIED_TTL_MS + 1, fetchJwks: second.fetch });
    expect(after).toMatchObject({ ok: true, identifier: "long-lived", method: "test-jwt" });
    expect(second.calls).toBe(1);
  });
});

describe("JwtVerifier: bounds", () => {
  it("keeps at most maxVerifiedTokens tokens and maxVerifiedBytes of them, dropping the least recently used", async () => {
    const key = await testKey("ES256");
    const m = await pemMethod(key);
    const tokens = await Promise.all([1, 2, 3].map((i) => sign(key, { sub: `user-${i}` })));

    const byCount = createJwtVerifier({ maxVerifiedTokens: 2 });
    for (const token of tokens) expect((await byCount.verify(token, [m], { now: NOW })).ok).toBe(true);
    expect(byCount.cacheStats().verified).toBe(2);

    // Room for two entries by size (each is the token's length plus a fixed allowance).
    const byBytes = createJwtVerifier({ maxVerifiedBytes: 2 * (tokens[0]!.length + 256) + 10 });
    for (const token of tokens) expect((await byBytes.verify(token, [m], { now: NOW })).ok).toBe(true);
    expect(byBytes.cacheStats().verified).toBe(2);
    expect(byBytes.cacheStats().verifiedBytes).toBeLessThanOrEqual(2 * (tokens[0]!.length + 256) + 10);
  });

  it("shares no cache between two verifiers", async () => {
    const key = await testKey("RS256");
    const m = await pemMethod(key);
    const token = await sign(key, { sub: "u" });
    const one = createJwtVerifier();
    const other = createJwtVerifier();
    expect((await one.verify(token, [m], { now: NOW })).ok).toBe(true);
    expect(one.cacheStats()).toMatchObject({ keys: 1, verified: 1 });
    expect(other.cacheStats()).toMatchObject({ keys: 0, verified: 0 });
  });
});
