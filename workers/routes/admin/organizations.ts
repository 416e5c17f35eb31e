import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { errorResponses } from "../../errors";
import { ApiError } from "../../errors";
import { visibleEnvironments } from "../../middleware/permissions";
import { createOrganization, getOrganization, listEnvironments, listOrganizations } from "../../services/tenancy";
import { CreatedKeySchema, CreatedOrganizationKeySchema, EnvironmentSchema, OrganizationSchema, json, jsonBody, operatorAuth, permit, security } from "./shared";

const CreatedOrganizationSchema = z
  .object({
    organization: OrganizationSchema,
    environments: z.array(EnvironmentSchema),
    keys: z.array(CreatedKeySchema),
    organizationKeys: z.array(CreatedOrganizationKeySchema).openapi({ description: "One admin organization key" }),
  })
  .openapi("CreatedOrganization");

const createOrganizationRoute = createRoute({
  method: "post",
  path: "/api/v1/admin/organizations",
  tags: ["Organizations"],
  summary: "Create an organization with preview and live environments, their first keys and an admin organization key (operator token)",
  security,
  middleware: operatorAuth,
  request: { body: jsonBody(z.object({ name: z.string().min(1).max(200) })) },
  responses: { 201: json(CreatedOrganizationSchema, "The organization, its environments and their keys"), ...errorResponses(400, 401, 403) },
});

const listOrganizationsRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/organizations",
  tags: ["Organizations"],
  summary: "List organizations (operator token)",
  security,
  middleware: operatorAuth,
  responses: { 200: json(z.object({ organizations: z.array(OrganizationSchema) }), "All organizations"), ...errorResponses(401, 403) },
});

const currentOrganizationRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/organization",
  tags: ["Organizations"],
  summary: "The organization of the key, with its environments (an environment's key sees its own)",
  security,
  middleware: permit("organization.read", "organization"),
  responses: {
    200: json(z.object({ organization: OrganizationSchema, environments: z.array(EnvironmentSchema) }), "The organization"),
    ...errorResponses(401, 403, 404),
  },
});

export function registerOrganizationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(createOrganizationRoute, async (c) => {
    const { name } = c.req.valid("json");
    return c.json(await createOrganization(c.env.DB, name), 201);
  });

  app.openapi(listOrganizationsRoute, async (c) => c.json({ organizations: await listOrganizations(c.env.DB) }, 200));

  app.openapi(currentOrganizationRoute, async (c) => {
    const { organizationId } = c.var.target;
    const organization = await getOrganization(c.env.DB, organizationId);
    if (!organization) throw new ApiError("organization_not_found", "Organization not found");
    return c.json({ organization, environments: visibleEnvironments(c.get("auth"), await listEnvironments(c.env.DB, organizationId)) }, 200);
  });
}
