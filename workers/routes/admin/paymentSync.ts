/** Customer sync: an admin-triggered backfill of an environment's Stripe customers, subscriptions and purchases. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { type CustomerSync, getCustomerSync, startCustomerSync } from "../../payments/sync";
import { getPaymentConnection } from "../../services/paymentConnections";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Payments"];
const path = "/api/v1/admin/environments/{environmentId}/payments/stripe/sync";

const CustomerSyncSchema = z
  .object({
    id: z.string().openapi({ example: "sync_0123456789abcdef" }),
    state: z.enum(["running", "done", "failed"]),
    phase: z.enum(["customers", "subscriptions", "purchases"]).openapi({ description: "The phase being read (the last one once done)" }),
    matchBy: z.enum(["metadata", "email"]),
    customersSeen: z.number().int(),
    customersLinked: z.number().int().openapi({ description: "Customers matched to an identity (an operator's link is kept)" }),
    subscriptionsSeen: z.number().int(),
    purchasesSeen: z.number().int().openapi({ description: "Paid one-time purchases" }),
    startedAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    lastError: z.string().nullable().openapi({ description: "Why the sync failed (after the payments queue's retries)" }),
  })
  .openapi("CustomerSync", { description: "An environment's latest customer sync and its progress" });

const StartSyncBody = z.object({
  matchBy: z.enum(["metadata", "email"]).optional().openapi({
    description:
      "How a Stripe customer is matched to an identity: `metadata` (default) — its `metadata.identifier`; `email` — its email is the identifier",
  }),
  restart: z.boolean().optional().openapi({ description: "Start a running sync over instead of resuming it from where it is" }),
});

const routes = {
  start: createRoute({
    method: "post",
    path,
    tags,
    summary: "Sync the environment's Stripe customers, subscriptions and purchases (a backfill)",
    description:
      "Links the account's customers to identities and loads their subscriptions and paid one-time purchases, page by page in the background. A running sync is resumed from where it is (unless `restart`); a done or failed one starts over. 409 when the environment is not connected to Stripe.",
    security,
    middleware: permit("payments.write", "environment"),
    request: { params: EnvironmentIdParam, body: { ...jsonBody(StartSyncBody), required: false } },
    responses: { 202: json(CustomerSyncSchema, "The sync, started or resumed"), ...errorResponses(400, 401, 403, 404, 409, 503) },
  }),
  get: createRoute({
    method: "get",
    path,
    tags,
    summary: "The environment's latest customer sync and its progress; 404 when it never had one",
    security,
    middleware: permit("payments.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(CustomerSyncSchema, "The latest sync"), ...errorResponses(401, 403, 404) },
  }),
};

const shape = (sync: CustomerSync) => ({
  id: sync.id,
  state: sync.state,
  phase: sync.phase,
  matchBy: sync.matchBy,
  customersSeen: sync.customersSeen,
  customersLinked: sync.customersLinked,
  subscriptionsSeen: sync.subscriptionsSeen,
  purchasesSeen: sync.purchasesSeen,
  startedAt: sync.startedAt,
  updatedAt: sync.updatedAt,
  finishedAt: sync.finishedAt,
  lastError: sync.lastError,
});

export function registerPaymentSyncRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.start, async (c) => {
    const environment = c.var.target.environment;
    if (!(await getPaymentConnection(c.env.DB, environment.id))) {
      throw new ApiError("conflict", `Environment ${environment.id} is not connected to Stripe: connect it (PUT …/payments/stripe) before syncing`);
    }
    const { sync, message } = await startCustomerSync(c.env.DB, environment, c.req.valid("json") ?? {});
    try {
      await c.env.PAYMENTS.send(message);
    } catch (error) {
      c.var.services.logger.warn("customer_sync_not_enqueued", { environmentId: environment.id, syncId: sync.id, error: String(error) });
      const unavailable = new ApiError("payments_unavailable", "The sync could not be queued: post again to resume it");
      unavailable.retryAfterSeconds = 60;
      throw unavailable;
    }
    return c.json(shape(sync), 202);
  });
  app.openapi(routes.get, async (c) => {
    const environmentId = c.var.target.environment.id;
    const sync = await getCustomerSync(c.env.DB, environmentId);
    if (!sync) throw new ApiError("not_found", `Environment ${environmentId} has had no customer sync`);
    return c.json(shape(sync), 200);
  });
}
