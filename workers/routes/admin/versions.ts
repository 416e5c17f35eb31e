import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { createVersion, diffDocuments, getVersion, listVersions } from "../../services/versions";
import { compileWorkflowSource, WorkflowCompileError } from "../../workflows/compile";
import { json, permit, security } from "./shared";

const tags = ["Versions"];
const reading = { security, middleware: permit("configuration.read", "organization") };
const VersionInfoSchema = z
  .object({ id: z.string(), organizationId: z.string(), number: z.number().int(), description: z.string(), createdAt: z.string() })
  .openapi("Version");
const VersionIdParam = z.object({ versionId: z.string().openapi({ param: { name: "versionId", in: "path" } }) });

const routes = {
  create: createRoute({
    method: "post",
    path: "/api/v1/admin/versions",
    tags,
    summary: "Validate the whole draft and freeze it into a new immutable version",
    security,
    middleware: permit("versions.create", "organization"),
    request: { body: { required: false, content: { "application/json": { schema: z.object({ description: z.string().max(1000).optional() }) } } } },
    responses: { 201: json(VersionInfoSchema, "The version"), ...errorResponses(400, 401, 403) },
  }),
  list: createRoute({
    method: "get",
    path: "/api/v1/admin/versions",
    tags,
    summary: "List versions, newest first",
    ...reading,
    responses: { 200: json(z.object({ versions: z.array(VersionInfoSchema) }), "Versions"), ...errorResponses(401, 403) },
  }),
  get: createRoute({
    method: "get",
    path: "/api/v1/admin/versions/{versionId}",
    tags,
    summary: "A version with its document",
    ...reading,
    request: { params: VersionIdParam },
    responses: { 200: json(VersionInfoSchema.extend({ document: z.record(z.string(), z.unknown()) }), "The version"), ...errorResponses(401, 403, 404) },
  }),
  diff: createRoute({
    method: "get",
    path: "/api/v1/admin/versions/{versionId}/diff",
    tags,
    summary: "What changed from version `against` to this version",
    ...reading,
    request: { params: VersionIdParam, query: z.object({ against: z.string() }) },
    responses: {
      200: json(
        z.object({
          from: z.string(),
          to: z.string(),
          changes: z.array(z.object({ path: z.string(), change: z.enum(["added", "removed", "changed"]), from: z.unknown().optional(), to: z.unknown().optional() })),
        }),
        "The differences",
      ),
      ...errorResponses(400, 401, 403, 404),
    },
  }),
};

export function registerVersionRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.create, async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { description?: unknown };
    const description = typeof body.description === "string" ? body.description.slice(0, 1000) : "";
    try {
      return c.json(await createVersion(c.env.DB, c.var.target.organizationId, description, compileWorkflowSource), 201);
    } catch (error) {
      if (error instanceof WorkflowCompileError) {
        throw new ApiError("validation_failed", `Workflow ${error.workflow} does not compile: ${error.message}`, [
          { path: `workflows.${error.workflow}.source`, message: `${error.reason} (line ${error.line}, column ${error.column})` },
        ]);
      }
      throw error;
    }
  });

  app.openapi(routes.list, async (c) => c.json({ versions: await listVersions(c.env.DB, c.var.target.organizationId) }, 200));

  app.openapi(routes.get, async (c) => {
    const { versionId } = c.req.valid("param");
    const version = await getVersion(c.env.DB, c.var.target.organizationId, versionId);
    if (!version) throw new ApiError("not_found", `Version ${versionId} not found`);
    return c.json({ ...version, document: version.document as Record<string, unknown> }, 200);
  });

  app.openapi(routes.diff, async (c) => {
    const { organizationId } = c.var.target;
    const { versionId } = c.req.valid("param");
    const { against } = c.req.valid("query");
    const [to, from] = await Promise.all([getVersion(c.env.DB, organizationId, versionId), getVersion(c.env.DB, organizationId, against)]);
    if (!to) throw new ApiError("not_found", `Version ${versionId} not found`);
    if (!from) throw new ApiError("not_found", `Version ${against} not found`);
    return c.json({ from: from.id, to: to.id, changes: diffDocuments(from.document, to.document) }, 200);
  });
}
