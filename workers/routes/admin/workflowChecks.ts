/**
 * A dry run of the workflow compiler: the console's editor asks whether the platform would accept a workflow's source
 * before saving it, so that what creating a version would refuse (an import, `import.meta`, a reserved name, a syntax
 * error sucrase or acorn finds) shows in the editor, not at version creation. Nothing is stored.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { WorkflowDefinition } from "../../../schema/config";
import type { AppEnv } from "../../context";
import { errorResponses } from "../../errors";
import { compileWorkflowSource, WorkflowCompileError } from "../../workflows/compile";
import { json, jsonBody, permit, security } from "./shared";

const WorkflowCheck = z
  .object({ type: WorkflowDefinition.shape.type, source: WorkflowDefinition.shape.source })
  .openapi("WorkflowCheck");

const CompileProblem = z.object({
  message: z.string(),
  line: z.number().int().openapi({ description: "1-based" }),
  column: z.number().int().openapi({ description: "1-based" }),
});

const WorkflowCheckResult = z
  .union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), errors: z.array(CompileProblem) })])
  .openapi("WorkflowCheckResult");

const workflowCheckRoute = createRoute({
  method: "post",
  path: "/api/v1/admin/workflow-checks",
  tags: ["Workflows"],
  summary: "Compile a workflow's source as version creation would, without storing anything",
  description:
    "Answers 200 either way: `{ok: true}` when creating a version would accept the source, otherwise `{ok: false, errors}` with the compiler's reason and its 1-based line and column. Types are stripped, not checked.",
  security,
  middleware: permit("configuration.read", "organization"),
  request: { body: jsonBody(WorkflowCheck) },
  responses: { 200: json(WorkflowCheckResult, "What the compiler says"), ...errorResponses(400, 401, 403, 413) },
});

/** The slug the dry run compiles under; sucrase names the file it was given in its messages, which would mislead here. */
const CHECKED_SLUG = "workflow";
const FILE_PREFIX = `Error transforming ${CHECKED_SLUG}.ts: `;

export function registerWorkflowCheckRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(workflowCheckRoute, (c) => {
    const { source } = c.req.valid("json");
    try {
      compileWorkflowSource(CHECKED_SLUG, source);
      return c.json({ ok: true as const }, 200);
    } catch (error) {
      if (!(error instanceof WorkflowCompileError)) throw error;
      return c.json({ ok: false as const, errors: [{ message: error.reason.replace(FILE_PREFIX, ""), line: error.line, column: error.column }] }, 200);
    }
  });
}
