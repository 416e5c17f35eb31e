/** Organization keys: admin credentials across an organization's environments, with a role (admin, deployer, read-only). */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import {
  ORGANIZATION_ROLES,
  getOrganizationKey,
  insertOrganizationKey,
  listOrganizationKeys,
  revokeOrganizationKey,
  rotateOrganizationKey,
} from "../../services/organizationKeys";
import { forgetKey } from "../../services/tenantCache";
import { CreatedOrganizationKeySchema, OrganizationKeySchema, json, jsonBody, permit, security } from "./shared";

const tags = ["Organization keys"];
const base = "/api/v1/admin/organization/keys";
const KeyIdParam = z.object({ keyId: z.string().openapi({ param: { name: "keyId", in: "path" } }) });

const routes = {
  list: createRoute({
    method: "get",
    path: base,
    tags,
    summary: "List the organization's keys (prefixes only; admin role or operator)",
    security,
    middleware: permit("organizationKeys.read", "organization"),
    responses: { 200: json(z.object({ keys: z.array(OrganizationKeySchema) }), "Organization keys"), ...errorResponses(401, 403) },
  }),
  create: createRoute({
    method: "post",
    path: base,
    tags,
    summary: "Create an organization key with a role (admin role or operator)",
    security,
    middleware: permit("organizationKeys.write", "organization"),
    request: { body: jsonBody(z.object({ name: z.string().min(1).max(200), role: z.enum(ORGANIZATION_ROLES) })) },
    responses: { 201: json(CreatedOrganizationKeySchema, "The key, shown once"), ...errorResponses(400, 401, 403) },
  }),
  revoke: createRoute({
    method: "delete",
    path: `${base}/{keyId}`,
    tags,
    summary: "Revoke an organization key",
    security,
    middleware: permit("organizationKeys.write", "organization"),
    request: { params: KeyIdParam },
    responses: { 200: json(OrganizationKeySchema, "The revoked key"), ...errorResponses(401, 403, 404) },
  }),
  rotate: createRoute({
    method: "post",
    path: `${base}/{keyId}/rotate`,
    tags,
    summary: "Replace an organization key with a new one of the same role; the old one is revoked",
    security,
    middleware: permit("organizationKeys.write", "organization"),
    request: { params: KeyIdParam },
    responses: { 201: json(CreatedOrganizationKeySchema, "The new key, shown once"), ...errorResponses(401, 403, 404, 409) },
  }),
};

export function registerOrganizationKeyRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.list, async (c) => c.json({ keys: await listOrganizationKeys(c.env.DB, c.var.target.organizationId) }, 200));

  app.openapi(routes.create, async (c) => {
    const { name, role } = c.req.valid("json");
    return c.json(await insertOrganizationKey(c.env.DB, { organizationId: c.var.target.organizationId, role, name }), 201);
  });

  const keyOf = async (db: D1Database, organizationId: string, keyId: string) => {
    const key = await getOrganizationKey(db, organizationId, keyId);
    if (!key) throw new ApiError("not_found", `Organization key ${keyId} not found`);
    return key;
  };

  app.openapi(routes.revoke, async (c) => {
    const { organizationId } = c.var.target;
    const key = await keyOf(c.env.DB, organizationId, c.req.valid("param").keyId);
    await revokeOrganizationKey(c.env.DB, key.id);
    forgetKey(key.id);
    return c.json((await getOrganizationKey(c.env.DB, organizationId, key.id))!, 200);
  });

  app.openapi(routes.rotate, async (c) => {
    const key = await keyOf(c.env.DB, c.var.target.organizationId, c.req.valid("param").keyId);
    if (key.revokedAt) throw new ApiError("conflict", "A revoked key cannot be rotated");
    const created = await rotateOrganizationKey(c.env.DB, key);
    forgetKey(key.id);
    // Another rotation (or a revocation) got there between the read above and the batch.
    if (!created) throw new ApiError("conflict", "This key was revoked or rotated already");
    return c.json(created, 201);
  });
}
