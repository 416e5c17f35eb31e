/**
 * Who the caller is, as the console needs it to draw itself: which kind of credential, its role or environment, and
 * every action of the permission matrix (middleware/permissions.ts RULES) it may take somewhere. The console hides
 * what the credential cannot do; the API still checks every call on its own.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv, AuthContext } from "../../context";
import { errorResponses } from "../../errors";
import { RULES, type Action } from "../../middleware/permissions";
import { ORGANIZATION_ROLES } from "../../services/organizationKeys";
import { json, permit, security } from "./shared";

const SessionSchema = z
  .object({
    credential: z.enum(["operator", "organizationKey", "environmentKey"]),
    role: z.enum(ORGANIZATION_ROLES).nullable().openapi({ description: "The organization key's role; null for other credentials" }),
    organizationId: z.string(),
    environment: z
      .object({ id: z.string(), slug: z.string() })
      .nullable()
      .openapi({ description: "The environment of an environment's secret key; null for other credentials" }),
    permissions: z.array(z.string()).openapi({
      description: "Every admin action this credential may take at all (an environment key: on its own environment or on what all environments share)",
      example: ["organization.read", "configuration.read", "configuration.write"],
    }),
  })
  .openapi("Session");

const sessionRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/session",
  tags: ["Organizations"],
  summary: "The calling credential: its kind, role or environment, and the admin actions it may take",
  security,
  // Every admin credential may read its organization: this route answers any of them, and refuses unknown or revoked ones (401).
  middleware: permit("organization.read", "organization"),
  responses: { 200: json(SessionSchema, "The session"), ...errorResponses(400, 401, 404) },
});

const ACTIONS = Object.keys(RULES) as Action[];

/** The actions a credential may take somewhere; which environment it may take them on is checked per call. */
export function permissionsOf(auth: AuthContext): Action[] {
  switch (auth.kind) {
    case "operator":
      return ACTIONS;
    case "organizationKey":
      return ACTIONS.filter((action) => (RULES[action].roles as readonly string[]).includes(auth.key.role));
    case "key":
      return ACTIONS.filter((action) => RULES[action].environmentKey !== "never");
  }
}

export function registerSessionRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(sessionRoute, (c) => {
    const auth = c.get("auth");
    return c.json(
      {
        credential: auth.kind === "key" ? ("environmentKey" as const) : auth.kind,
        role: auth.kind === "organizationKey" ? auth.key.role : null,
        organizationId: c.var.target.organizationId,
        environment: auth.kind === "key" ? { id: auth.environment.id, slug: auth.environment.slug } : null,
        permissions: permissionsOf(auth),
      },
      200,
    );
  });
}
