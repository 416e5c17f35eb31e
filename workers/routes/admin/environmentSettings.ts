import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { deleteVariable, getEgressAllowList, listVariables, setEgressAllowList, setVariable } from "../../services/environmentSettings";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Workflow settings"];
const reading = { security, middleware: permit("settings.read", "environment") };
const writing = { security, middleware: permit("settings.write", "environment") };
const VariableSchema = z
  .object({ name: z.string(), secret: z.boolean(), value: z.string().optional(), updatedAt: z.string() })
  .openapi("Variable", { description: "Secrets never carry their value" });
const VariableParams = EnvironmentIdParam.extend({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/).openapi({ param: { name: "name", in: "path" }, example: "CRM_API_KEY" }),
});
const Host = z
  .string()
  .regex(/^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+(:\d{1,5})?$/i, "must be a host name such as api.example.com or *.example.com");

const routes = {
  list: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/variables",
    tags,
    summary: "List workflow variables and secrets (secret values are never returned)",
    ...reading,
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ variables: z.array(VariableSchema) }), "Variables"), ...errorResponses(401, 403, 404) },
  }),
  put: createRoute({
    method: "put",
    path: "/api/v1/admin/environments/{environmentId}/variables/{name}",
    tags,
    summary: "Set a variable, or a secret (encrypted at rest)",
    ...writing,
    request: { params: VariableParams, body: jsonBody(z.object({ value: z.string().max(10_000), secret: z.boolean().default(false) })) },
    responses: { 200: json(VariableSchema, "The variable"), ...errorResponses(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path: "/api/v1/admin/environments/{environmentId}/variables/{name}",
    tags,
    summary: "Delete a variable or secret",
    ...writing,
    request: { params: VariableParams },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404) },
  }),
  getEgress: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/egress",
    tags,
    summary: "Hosts workflow code may fetch (through the platform's logged gateway)",
    ...reading,
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ hosts: z.array(z.string()) }), "Allow-list"), ...errorResponses(401, 403, 404) },
  }),
  putEgress: createRoute({
    method: "put",
    path: "/api/v1/admin/environments/{environmentId}/egress",
    tags,
    summary: "Replace the egress allow-list",
    ...writing,
    request: { params: EnvironmentIdParam, body: jsonBody(z.object({ hosts: z.array(Host).max(100) })) },
    responses: { 200: json(z.object({ hosts: z.array(z.string()) }), "Allow-list"), ...errorResponses(400, 401, 403, 404) },
  }),
};

export function registerEnvironmentSettingsRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.list, async (c) => c.json({ variables: await listVariables(c.env.DB, c.var.target.environment.id) }, 200));
  app.openapi(routes.put, async (c) => {
    const { name } = c.req.valid("param");
    const body = c.req.valid("json");
    return c.json(await setVariable(c.env.DB, c.env.SECRETS_KEY, c.var.target.environment.id, { name, value: body.value, secret: body.secret }), 200);
  });
  app.openapi(routes.remove, async (c) => {
    const { name } = c.req.valid("param");
    if (!(await deleteVariable(c.env.DB, c.var.target.environment.id, name))) throw new ApiError("not_found", `Variable ${name} not found`);
    return c.json({ deleted: true as const }, 200);
  });
  app.openapi(routes.getEgress, async (c) => c.json({ hosts: await getEgressAllowList(c.env.DB, c.var.target.environment.id) }, 200));
  app.openapi(routes.putEgress, async (c) =>
    c.json({ hosts: await setEgressAllowList(c.env.DB, c.var.target.environment.id, c.req.valid("json").hosts) }, 200),
  );
}
