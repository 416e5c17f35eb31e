/**
 * Identity resolution: turns the request's `identity` object (docs/public-api.md, "Identity") into a
 * ResolvedIdentity. Exactly one form per request:
 *   - `{anonymousIdentifier}`            a device/session id the caller keeps        → anonymous
 *   - `{createAnonymousIdentifier: true}` the server mints `anon_…`                   → anonymous
 *   - `{userIdentifier}`                 trusted id, secret keys only                → provided
 *   - `{userJwt, createAnonymousIdentifierFallback?}` verified JWT                   → jwt
 *     (with the fallback flag an invalid JWT yields a fresh anonymous identity and `jwtError` says why)
 */
import { z } from "zod";
import type { FetchImplementation } from "jose";
import type { SnapshotAuthMethod } from "../engine/snapshot";
import { testGroup100 } from "../engine/testGroup";
import type { ResolvedIdentity } from "../engine/types";
import { isolateJwtVerifier, MAX_IDENTIFIER_LENGTH, type JwtVerifier, type VerifyUserJwtOptions } from "./jwt";

const FORMS = ["anonymousIdentifier", "createAnonymousIdentifier", "userIdentifier", "userJwt"] as const;

const Identifier = z.string().min(1).max(MAX_IDENTIFIER_LENGTH);

export const IdentityInput = z
  .strictObject({
    anonymousIdentifier: Identifier.optional(),
    createAnonymousIdentifier: z.literal(true, { error: "createAnonymousIdentifier must be true" }).optional(),
    userIdentifier: Identifier.optional(),
    userJwt: z.string({ error: "userJwt must be a string" }).optional(),
    createAnonymousIdentifierFallback: z.boolean().optional(),
  })
  .superRefine((value, ctx) => {
    const present = FORMS.filter((form) => value[form] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message:
          present.length === 0
            ? `identity must contain exactly one of ${FORMS.join(", ")}`
            : `identity must contain exactly one of ${FORMS.join(", ")} (got ${present.join(" and ")})`,
      });
    }
    if (value.createAnonymousIdentifierFallback !== undefined && value.userJwt === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["createAnonymousIdentifierFallback"],
        message: "createAnonymousIdentifierFallback is only allowed together with userJwt",
      });
    }
  });
export type IdentityInput = z.infer<typeof IdentityInput>;

export interface ResolveIdentityOptions {
  keyType: "secret" | "publishable";
  authMethods: readonly SnapshotAuthMethod[];
  /** Current time in ms (tests). */
  now?: number;
  /** Mints anonymous identifiers (tests); defaults to `mintAnonymousIdentifier`. */
  mintId?: () => string;
  /** Fetch used for JWKS requests (tests). */
  fetchJwks?: FetchImplementation;
  /** Verifies `userJwt`; defaults to this isolate's verifier. */
  jwtVerifier?: JwtVerifier;
}

export type ResolveIdentityResult =
  | {
      ok: true;
      identity: ResolvedIdentity;
      /** Set when a JWT was refused and the fallback minted an anonymous identity: why it was refused. */
      jwtError?: string;
      /** Slug of the auth method that verified the JWT. */
      jwtMethod?: string;
    }
  | {
      ok: false;
      status: 400 | 401 | 403;
      code: "invalid_identity" | "invalid_jwt" | "forbidden_identity_form";
      message: string;
    };

const URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** `anon_` + 24 random url-safe characters (144 bits; 64 divides 256, so `byte & 63` has no bias). */
export function mintAnonymousIdentifier(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let out = "anon_";
  for (const byte of bytes) out += URL_SAFE[byte & 63];
  return out;
}

function identity(authType: ResolvedIdentity["authType"], identifier: string, claims?: Record<string, unknown>) {
  return {
    authType,
    identifier,
    isAuthenticated: authType !== "anonymous",
    jwtClaims: claims ?? {},
    testGroup100: testGroup100(identifier),
  } satisfies ResolvedIdentity;
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = ["identity", ...issue.path.map(String)].join(".");
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

export async function resolveIdentity(input: unknown, options: ResolveIdentityOptions): Promise<ResolveIdentityResult> {
  const parsed = IdentityInput.safeParse(input);
  if (!parsed.success) {
    return { ok: false, status: 400, code: "invalid_identity", message: formatIssues(parsed.error) };
  }
  const form = parsed.data;
  const mint = options.mintId ?? mintAnonymousIdentifier;

  if (form.anonymousIdentifier !== undefined) {
    return { ok: true, identity: identity("anonymous", form.anonymousIdentifier) };
  }
  if (form.createAnonymousIdentifier) {
    return { ok: true, identity: identity("anonymous", mint()) };
  }
  if (form.userIdentifier !== undefined) {
    if (options.keyType !== "secret") {
      return {
        ok: false,
        status: 403,
        code: "forbidden_identity_form",
        message: "publishable keys may not send userIdentifier",
      };
    }
    return { ok: true, identity: identity("provided", form.userIdentifier) };
  }

  // userJwt (the schema guarantees exactly one form)
  const verifyOptions: VerifyUserJwtOptions = {};
  if (options.now !== undefined) verifyOptions.now = options.now;
  if (options.fetchJwks !== undefined) verifyOptions.fetchJwks = options.fetchJwks;
  const result =
    options.authMethods.length === 0
      ? { ok: false as const, reason: "no JWT authentication method is configured for this environment" }
      : await (options.jwtVerifier ?? isolateJwtVerifier).verify(form.userJwt, options.authMethods, verifyOptions);
  if (result.ok) {
    return { ok: true, identity: identity("jwt", result.identifier, result.claims), jwtMethod: result.method };
  }
  if (form.createAnonymousIdentifierFallback === true) {
    return { ok: true, identity: identity("anonymous", mint()), jwtError: result.reason };
  }
  return { ok: false, status: 401, code: "invalid_jwt", message: result.reason };
}
