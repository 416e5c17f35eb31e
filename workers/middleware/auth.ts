/**
 * Authentication: `Authorization: Bearer <key>` with an environment's API key, an organization key (`ok_…`, admin
 * routes only), or the operator token (a wrangler secret). The operator picks an organization with the
 * `X-Organization-Id` header. Which of them may take which admin action is middleware/permissions.ts.
 */
import { createMiddleware } from "hono/factory";
import type { AppEnv, AuthContext } from "../context";
import { ApiError } from "../errors";
import { timingSafeEqual } from "../lib/crypto";
import { parseOrganizationKey } from "../services/organizationKeys";
import { lookupApiKey, lookupEnvironment, lookupOrganizationKey } from "../services/tenantCache";
import { getOrganization } from "../services/tenancy";

type Allowed = "operator" | "organization" | "secret" | "publishable";

/**
 * The key of `Authorization: Bearer <key>`. `PublicBearer <key>` is the same credential: the commercial product's edge
 * proxy uses that scheme when it relays a visitor's own call (its `/mos-api/*` routes) with the site's secret key, and
 * it must keep working against this platform unchanged. The relaying proxy answers for the identity it sends.
 */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^(?:Public)?Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1]! : null;
}

export async function authenticate(env: Env, token: string | null, allowed: readonly Allowed[], organizationHeader?: string): Promise<AuthContext> {
  if (!token) throw new ApiError("invalid_api_key", "Missing API key: send Authorization: Bearer <key>");
  if (allowed.includes("operator") && env.OPERATOR_TOKEN && (await timingSafeEqual(token, env.OPERATOR_TOKEN))) {
    const organizationId = organizationHeader?.trim() || null;
    // On a route that acts on one organization (one a secret key may call too), an organization that does not exist
    // is a 404, not an empty list.
    if (organizationId && allowed.includes("secret") && !(await getOrganization(env.DB, organizationId))) {
      throw new ApiError("organization_not_found", "Organization not found (X-Organization-Id)");
    }
    return { kind: "operator", organizationId };
  }
  if (parseOrganizationKey(token)) {
    const key = await lookupOrganizationKey(env.DB, token);
    if (!key) throw new ApiError("invalid_api_key", "Invalid API key");
    if (!allowed.includes("organization")) {
      throw new ApiError(
        "forbidden",
        allowed.includes("publishable")
          ? "Organization keys (ok_…) are admin credentials: this operation needs an environment's key (sk_… or pk_…)"
          : "This operation needs the operator token",
      );
    }
    return { kind: "organizationKey", key, organizationId: key.organizationId };
  }
  const key = await lookupApiKey(env.DB, token);
  if (!key) throw new ApiError("invalid_api_key", "Invalid API key");
  if (!allowed.includes(key.type)) {
    const needed = allowed.includes("organization") ? "an organization key (ok_…) or a secret key (sk_…)" : "a secret key (sk_…)";
    throw new ApiError("forbidden", key.type === "publishable" ? `This operation needs ${needed}` : "This operation needs the operator token");
  }
  const environment = await lookupEnvironment(env.DB, key.environmentId);
  if (!environment) throw new ApiError("invalid_api_key", "Invalid API key");
  return { kind: "key", key, organizationId: key.organizationId, environment };
}

export function requireAuth(...allowed: Allowed[]) {
  return createMiddleware<AppEnv>(async (c, next) => {
    c.set("auth", await authenticate(c.env, bearerToken(c.req.header("authorization")), allowed, c.req.header("x-organization-id")));
    await next();
  });
}

/** The organization an admin request acts on. */
export function organizationOf(auth: AuthContext): string {
  if (auth.kind !== "operator") return auth.organizationId;
  if (!auth.organizationId) throw new ApiError("bad_request", "The operator token acts on one organization at a time: send X-Organization-Id");
  return auth.organizationId;
}
