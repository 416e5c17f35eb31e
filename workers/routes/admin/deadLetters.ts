/**
 * Dead letters of an environment: trigger messages whose action workflows still failed on the queue's last attempt
 * (workflows/actions.ts). An operator lists them (without their messages, which may be large), reads one with its
 * message, sends one to the trigger queue again once the cause is fixed (it runs against the deployed version), or
 * deletes it.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { deleteDeadLetter, getDeadLetter, listDeadLetters } from "../../services/deadLetters";
import { retryDeadLetter } from "../../workflows/actions";
import { EnvironmentIdParam, json, permit, security } from "./shared";

const tags = ["Dead letters"];
const MAX_PAGE_SIZE = 50;
const reading = { security, middleware: permit("deadLetters.read", "environment") };
const writing = { security, middleware: permit("deadLetters.write", "environment") };
const DeadLetterSummarySchema = z
  .object({
    id: z.string(),
    environmentId: z.string(),
    trigger: z.string(),
    identifier: z.string().nullable(),
    messageTruncated: z.boolean().openapi({ description: "The payload was too large to keep: the dead letter cannot be retried" }),
    workflows: z.array(z.string()).openapi({ description: "Slugs of the action workflows that failed (empty when the failure was not recorded)" }),
    lastError: z.string().nullable(),
    attempts: z.number().int(),
    state: z.enum(["dead", "retried"]),
    createdAt: z.string(),
    retriedAt: z.string().nullable(),
  })
  .openapi("DeadLetterSummary");
const DeadLetterSchema = DeadLetterSummarySchema.extend({
  message: z.record(z.string(), z.unknown()).openapi({ description: "The trigger message as it was queued" }),
}).openapi("DeadLetter");
const DeadLetterParams = EnvironmentIdParam.extend({
  deadLetterId: z.string().min(1).max(100).openapi({ param: { name: "deadLetterId", in: "path" }, example: "dlq_0123456789abcdef01234567" }),
});

const routes = {
  list: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/dead-letters",
    tags,
    summary: "Dead letters of the environment, newest first, without their messages (GET one to read its message)",
    ...reading,
    request: {
      params: EnvironmentIdParam,
      query: z.object({
        state: z.enum(["dead", "retried"]).optional(),
        cursor: z.string().max(200).optional(),
        // Clamped rather than refused: a caller asking for more simply gets full pages.
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .default(MAX_PAGE_SIZE)
          .openapi({ description: `Dead letters per page, at most ${MAX_PAGE_SIZE} a page: a larger limit is read as ${MAX_PAGE_SIZE}` }),
      }),
    },
    responses: {
      200: json(z.object({ deadLetters: z.array(DeadLetterSummarySchema), nextCursor: z.string().nullable() }), "A page of dead letters"),
      ...errorResponses(400, 401, 403, 404),
    },
  }),
  get: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/dead-letters/{deadLetterId}",
    tags,
    summary: "A dead letter with the trigger message it keeps",
    ...reading,
    request: { params: DeadLetterParams },
    responses: { 200: json(DeadLetterSchema, "The dead letter"), ...errorResponses(401, 403, 404) },
  }),
  retry: createRoute({
    method: "post",
    path: "/api/v1/admin/environments/{environmentId}/dead-letters/{deadLetterId}/retry",
    tags,
    summary: "Send the dead letter's trigger to the action workflows again (once: a second retry is a 409)",
    ...writing,
    request: { params: DeadLetterParams },
    responses: { 200: json(DeadLetterSchema, "The dead letter, now retried"), ...errorResponses(401, 403, 404, 409, 502) },
  }),
  remove: createRoute({
    method: "delete",
    path: "/api/v1/admin/environments/{environmentId}/dead-letters/{deadLetterId}",
    tags,
    summary: "Delete a dead letter",
    ...writing,
    request: { params: DeadLetterParams },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404) },
  }),
};

export function registerDeadLetterRoutes(app: OpenAPIHono<AppEnv>): void {
  const scopeOf = (environment: { organizationId: string; id: string }) => ({ organizationId: environment.organizationId, environmentId: environment.id });

  app.openapi(routes.list, async (c) => {
    const { environment } = c.var.target;
    const query = c.req.valid("query");
    return c.json(await listDeadLetters(c.env.DB, { ...scopeOf(environment), state: query.state, before: query.cursor, limit: Math.min(query.limit, MAX_PAGE_SIZE) }), 200);
  });
  app.openapi(routes.get, async (c) => {
    const { environment } = c.var.target;
    const { deadLetterId } = c.req.valid("param");
    const deadLetter = await getDeadLetter(c.env.DB, scopeOf(environment), deadLetterId);
    if (!deadLetter) throw new ApiError("not_found", `Dead letter ${deadLetterId} not found`);
    return c.json(deadLetter, 200);
  });
  app.openapi(routes.retry, async (c) => {
    const { environment } = c.var.target;
    return c.json(await retryDeadLetter(c.env, environment, c.req.valid("param").deadLetterId), 200);
  });
  app.openapi(routes.remove, async (c) => {
    const { environment } = c.var.target;
    const { deadLetterId } = c.req.valid("param");
    if (!(await deleteDeadLetter(c.env.DB, scopeOf(environment), deadLetterId))) throw new ApiError("not_found", `Dead letter ${deadLetterId} not found`);
    return c.json({ deleted: true as const }, 200);
  });
}
