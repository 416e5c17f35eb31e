import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { Slug } from "../../../schema/config";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { isUniqueConstraintError } from "../../lib/d1Errors";
import { visibleEnvironments } from "../../middleware/permissions";
import { getApiKey, insertApiKey, listApiKeys, revokeApiKey, rotateApiKey } from "../../services/apiKeys";
import { forgetEnvironment, forgetKey } from "../../services/tenantCache";
import { createEnvironment, deleteEnvironment, getOrganization, listEnvironments, renameEnvironment, type Environment } from "../../services/tenancy";
import { deployVersion, getVersion, listDeployments, loadSnapshot, previousDeployedVersion } from "../../services/versions";
import { uploadWorkflowScriptsIfConfigured } from "../../workflows/dispatchRunner";
import {
  ApiKeySchema,
  CreatedKeySchema,
  EnvironmentIdParam,
  EnvironmentSchema,
  json,
  jsonBody,
  permit,
  security,
} from "./shared";

const tags = ["Environments"];

const DeploymentSchema = z
  .object({
    id: z.string(),
    environmentId: z.string(),
    versionId: z.string(),
    previousVersionId: z.string().nullable(),
    kind: z.enum(["deploy", "rollback"]),
    createdAt: z.string(),
  })
  .openapi("Deployment");

const KeyIdParam = z.object({ keyId: z.string().openapi({ param: { name: "keyId", in: "path" } }) });

const routes = {
  list: createRoute({
    method: "get",
    path: "/api/v1/admin/environments",
    tags,
    summary: "List environments (an environment's key sees its own)",
    security,
    middleware: permit("environments.list", "organization"),
    responses: { 200: json(z.object({ environments: z.array(EnvironmentSchema) }), "Environments"), ...errorResponses(401, 403) },
  }),
  create: createRoute({
    method: "post",
    path: "/api/v1/admin/environments",
    tags,
    summary: "Create an environment (with a secret and a publishable key)",
    security,
    middleware: permit("environments.create", "organization"),
    request: { body: jsonBody(z.object({ slug: Slug, name: z.string().min(1).max(200).optional(), type: z.enum(["preview", "production"]) })) },
    responses: {
      201: json(z.object({ environment: EnvironmentSchema, keys: z.array(CreatedKeySchema) }), "The environment and its keys"),
      ...errorResponses(400, 401, 403, 409),
    },
  }),
  get: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}",
    tags,
    summary: "Get an environment",
    security,
    middleware: permit("environment.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(EnvironmentSchema, "The environment"), ...errorResponses(401, 403, 404) },
  }),
  update: createRoute({
    method: "patch",
    path: "/api/v1/admin/environments/{environmentId}",
    tags,
    summary: "Rename an environment",
    security,
    middleware: permit("environment.rename", "environment"),
    request: { params: EnvironmentIdParam, body: jsonBody(z.object({ name: z.string().min(1).max(200) })) },
    responses: { 200: json(EnvironmentSchema, "The environment"), ...errorResponses(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path: "/api/v1/admin/environments/{environmentId}",
    tags,
    summary: "Delete an environment and its keys",
    security,
    middleware: permit("environment.delete", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404, 409) },
  }),
  listKeys: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/keys",
    tags: ["Keys"],
    summary: "List an environment's keys (prefixes only)",
    security,
    middleware: permit("keys.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ keys: z.array(ApiKeySchema) }), "Keys"), ...errorResponses(401, 403, 404) },
  }),
  createKey: createRoute({
    method: "post",
    path: "/api/v1/admin/environments/{environmentId}/keys",
    tags: ["Keys"],
    summary: "Create a key",
    security,
    middleware: permit("keys.write", "environment"),
    request: {
      params: EnvironmentIdParam,
      body: jsonBody(z.object({ type: z.enum(["secret", "publishable"]), name: z.string().min(1).max(200).optional() })),
    },
    responses: { 201: json(CreatedKeySchema, "The key, shown once"), ...errorResponses(400, 401, 403, 404) },
  }),
  revokeKey: createRoute({
    method: "delete",
    path: "/api/v1/admin/keys/{keyId}",
    tags: ["Keys"],
    summary: "Revoke a key",
    security,
    middleware: permit("keys.write", "apiKey"),
    request: { params: KeyIdParam },
    responses: { 200: json(ApiKeySchema, "The revoked key"), ...errorResponses(401, 403, 404) },
  }),
  rotateKey: createRoute({
    method: "post",
    path: "/api/v1/admin/keys/{keyId}/rotate",
    tags: ["Keys"],
    summary: "Replace a key with a new one of the same type; the old one is revoked",
    security,
    middleware: permit("keys.write", "apiKey"),
    request: { params: KeyIdParam },
    responses: { 201: json(CreatedKeySchema, "The new key, shown once"), ...errorResponses(401, 403, 404, 409) },
  }),
  deploy: createRoute({
    method: "post",
    path: "/api/v1/admin/environments/{environmentId}/deployments",
    tags: ["Versions"],
    summary: "Deploy a version to the environment",
    security,
    middleware: permit("deployments.write", "environment"),
    request: { params: EnvironmentIdParam, body: jsonBody(z.object({ versionId: z.string() })) },
    responses: { 201: json(DeploymentSchema, "The deployment"), ...errorResponses(400, 401, 403, 404, 409, 502) },
  }),
  rollback: createRoute({
    method: "post",
    path: "/api/v1/admin/environments/{environmentId}/rollback",
    tags: ["Versions"],
    summary: "Redeploy an earlier version (by default the one deployed before the current one)",
    security,
    middleware: permit("deployments.write", "environment"),
    request: { params: EnvironmentIdParam, body: { required: false, content: { "application/json": { schema: z.object({ versionId: z.string().optional() }) } } } },
    responses: { 201: json(DeploymentSchema, "The rollback deployment"), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  deployments: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/deployments",
    tags: ["Versions"],
    summary: "Deployment history, newest first",
    security,
    middleware: permit("deployments.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ deployments: z.array(DeploymentSchema) }), "Deployments"), ...errorResponses(401, 403, 404) },
  }),
};

export function registerEnvironmentRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.list, async (c) =>
    c.json({ environments: visibleEnvironments(c.get("auth"), await listEnvironments(c.env.DB, c.var.target.organizationId)) }, 200),
  );

  app.openapi(routes.create, async (c) => {
    const { organizationId } = c.var.target;
    const body = c.req.valid("json");
    if (!(await getOrganization(c.env.DB, organizationId))) throw new ApiError("organization_not_found", "Organization not found");
    const existing = await listEnvironments(c.env.DB, organizationId);
    if (existing.some((environment) => environment.slug === body.slug)) throw new ApiError("conflict", `An environment with slug ${body.slug} exists`);
    try {
      const created = await createEnvironment(c.env.DB, { organizationId, slug: body.slug, name: body.name ?? body.slug, type: body.type });
      return c.json(created, 201);
    } catch (error) {
      // A concurrent create of the same slug loses on the UNIQUE constraint.
      if (isUniqueConstraintError(error)) throw new ApiError("conflict", `An environment with slug ${body.slug} exists`);
      throw error;
    }
  });

  app.openapi(routes.get, async (c) => c.json(c.var.target.environment, 200));

  app.openapi(routes.update, async (c) => {
    const { environment } = c.var.target;
    const { name } = c.req.valid("json");
    await renameEnvironment(c.env.DB, environment.id, name);
    forgetEnvironment(environment.id);
    return c.json({ ...environment, name }, 200);
  });

  app.openapi(routes.remove, async (c) => {
    const { environment } = c.var.target;
    await deleteEnvironment(c.env.DB, environment.id);
    forgetEnvironment(environment.id, { withKeys: true });
    return c.json({ deleted: true as const }, 200);
  });

  app.openapi(routes.listKeys, async (c) => c.json({ keys: await listApiKeys(c.env.DB, c.var.target.environment.id) }, 200));

  app.openapi(routes.createKey, async (c) => {
    const { environment } = c.var.target;
    const { type, name } = c.req.valid("json");
    const key = await insertApiKey(c.env.DB, { organizationId: environment.organizationId, environmentId: environment.id, type, name: name ?? `${type} key` });
    return c.json(key, 201);
  });

  app.openapi(routes.revokeKey, async (c) => {
    const { apiKey } = c.var.target;
    await revokeApiKey(c.env.DB, apiKey.id);
    forgetKey(apiKey.id);
    return c.json((await getApiKey(c.env.DB, apiKey.id))!, 200);
  });

  app.openapi(routes.rotateKey, async (c) => {
    const { apiKey } = c.var.target;
    if (apiKey.revokedAt) throw new ApiError("conflict", "A revoked key cannot be rotated");
    const created = await rotateApiKey(c.env.DB, apiKey);
    forgetKey(apiKey.id);
    // Another rotation (or a revocation) got there between the read above and the batch.
    if (!created) throw new ApiError("conflict", "This key was revoked or rotated already");
    return c.json(created, 201);
  });

  /** Points the environment at a version of its organization and drops this isolate's cached pointer. */
  const moveTo = async (env: Env, organizationId: string, environment: Environment, versionId: string, kind: "deploy" | "rollback") => {
    const db = env.DB;
    if (!(await getVersion(db, organizationId, versionId))) throw new ApiError("not_found", `Version ${versionId} not found`);
    // A version this build cannot read (another snapshot schema) is refused here, before anything moves: for a deploy
    // that is a conflict with the version's state (409), not a platform failure.
    const snapshot = (await loadSnapshot(db, versionId).catch((error: unknown) => {
      throw error instanceof ApiError ? new ApiError("conflict", error.message) : error;
    }))!;
    // With a Workers for Platforms namespace configured, the version's workflow scripts must exist before traffic
    // reaches it; locally (Worker Loader) this is a no-op.
    try {
      await uploadWorkflowScriptsIfConfigured(env, snapshot, environment.id);
    } catch (error) {
      throw new ApiError("upstream_error", `Uploading the version's workflow scripts failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    const deployment = await deployVersion(db, { organizationId, environmentId: environment.id, versionId, previousVersionId: environment.deployedVersionId, kind });
    forgetEnvironment(environment.id);
    return deployment;
  };

  app.openapi(routes.deploy, async (c) => {
    const { organizationId, environment } = c.var.target;
    return c.json(await moveTo(c.env, organizationId, environment, c.req.valid("json").versionId, "deploy"), 201);
  });

  app.openapi(routes.rollback, async (c) => {
    const { organizationId, environment } = c.var.target;
    const body = (await c.req.json().catch(() => ({}))) as { versionId?: unknown };
    const versionId =
      typeof body.versionId === "string" ? body.versionId : await previousDeployedVersion(c.env.DB, environment.id, environment.deployedVersionId);
    return c.json(await moveTo(c.env, organizationId, environment, versionId, "rollback"), 201);
  });

  app.openapi(routes.deployments, async (c) => c.json({ deployments: await listDeployments(c.env.DB, c.var.target.environment.id) }, 200));
}
