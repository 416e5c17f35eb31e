/** The declarations workflow code sees, narrowed to the organization's draft: what the console's workflow editor type-checks against. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { errorResponses } from "../../errors";
import { getDraft } from "../../services/drafts";
import { workflowTypesFor } from "../../workflows/configuredTypes";
import { json, permit, security } from "./shared";

const workflowTypesRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/workflow-types",
  tags: ["Workflows"],
  summary: "TypeScript declarations for workflow code, narrowed to the draft's features, plans, surfaces and triggers",
  description:
    "The global declarations of examples/workflows/workflow-types.d.ts plus a `DeclaredConfiguration` made from the draft, so that a misspelled feature, plan, surface or trigger is a type error. Load `dts` into an editor's TypeScript service as an extra library.",
  security,
  middleware: permit("configuration.read", "organization"),
  responses: { 200: json(z.object({ dts: z.string() }).openapi("WorkflowTypes"), "The declarations"), ...errorResponses(401, 403, 404) },
});

export function registerWorkflowTypesRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(workflowTypesRoute, async (c) => {
    const { document } = await getDraft(c.env.DB, c.var.target.organizationId);
    return c.json({ dts: workflowTypesFor(document) }, 200);
  });
}
