import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { DELIVERY_CURSOR, getDelivery, queryDeliveries, replayDelivery } from "../../webhooks/delivery";
import { publish, WEBHOOK_EVENT_TYPES } from "../../webhooks/publish";
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSubscriptionSecret,
  updateSubscription,
  urlPolicyOf,
} from "../../webhooks/subscriptions";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

// Endpoints and their secrets are environment settings: who may read or change workflow settings may do the same here.
const tags = ["Outbound webhooks"];
const reading = { security, middleware: permit("settings.read", "environment") };
const writing = { security, middleware: permit("settings.write", "environment") };

const EventTypeOrAll = z.enum(["*", ...WEBHOOK_EVENT_TYPES]);
const SubscriptionSchema = z
  .object({
    id: z.string(),
    environmentId: z.string(),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.string()),
    thresholds: z.array(z.number()),
    authenticatedOnly: z.boolean(),
    enabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("WebhookSubscription");
const WithSecretSchema = SubscriptionSchema.extend({
  secret: z.string().openapi({ description: "The signing secret (whsec_…). Shown once; stored encrypted.", example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
}).openapi("WebhookSubscriptionWithSecret");
const Thresholds = z
  .array(z.number().int().min(1).max(100))
  .min(1)
  .max(10)
  .openapi({ description: "Percentages of a counter's limit that fire counter.threshold_reached (default [80])" });
const SubscriptionBody = z.object({
  url: z.string().max(2_000).openapi({ example: "https://hooks.example.com/platform" }),
  eventTypes: z.array(EventTypeOrAll).min(1).max(20).openapi({ description: "Event types, or [\"*\"] for all" }),
  thresholds: Thresholds.optional(),
  authenticatedOnly: z.boolean().optional().openapi({
    description: "user.added, plan.changed and counter events of signed-in identities only (default false: anonymous visitors too)",
  }),
  description: z.string().max(500).nullable().optional(),
  enabled: z.boolean().optional(),
});
const SubscriptionParams = EnvironmentIdParam.extend({
  subscriptionId: z.string().max(100).openapi({ param: { name: "subscriptionId", in: "path" }, example: "wh_0123456789abcdef" }),
});
const DeliveryParams = EnvironmentIdParam.extend({
  deliveryId: z.string().max(100).openapi({ param: { name: "deliveryId", in: "path" }, example: "whd_0123456789abcdefghij" }),
});
const DeliveryStatus = z.enum(["pending", "delivered", "failed", "dead", "dropped"]);
const DeliverySchema = z
  .object({
    id: z.string(),
    environmentId: z.string(),
    subscriptionId: z.string(),
    eventId: z.string().openapi({ description: "The webhook-id header: the same on every retry and replay" }),
    eventType: z.string(),
    payload: z.record(z.string(), z.unknown()).openapi({ description: "The signed body: {type, timestamp, data}" }),
    status: DeliveryStatus,
    attempts: z.number(),
    lastStatusCode: z.number().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    deliveredAt: z.string().nullable(),
  })
  .openapi("WebhookDelivery");
const DeliveryPage = z.object({ deliveries: z.array(DeliverySchema), nextCursor: z.string().nullable() });
const PageQuery = z.object({
  subscriptionId: z.string().max(100).optional(),
  cursor: z.string().max(200).regex(DELIVERY_CURSOR, "cursor must be the nextCursor of a previous page").optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

const base = "/api/v1/admin/environments/{environmentId}/webhooks";
const routes = {
  list: createRoute({
    method: "get",
    path: base,
    tags,
    summary: "List the environment's webhook subscriptions (secrets are never returned)",
    ...reading,
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ subscriptions: z.array(SubscriptionSchema) }), "Subscriptions"), ...errorResponses(401, 403, 404) },
  }),
  create: createRoute({
    method: "post",
    path: base,
    tags,
    summary: "Subscribe an endpoint to events (at most 20 per environment); the answer carries the signing secret, once",
    ...writing,
    request: { params: EnvironmentIdParam, body: jsonBody(SubscriptionBody) },
    responses: { 201: json(WithSecretSchema, "The subscription and its secret"), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  get: createRoute({
    method: "get",
    path: `${base}/{subscriptionId}`,
    tags,
    summary: "A webhook subscription",
    ...reading,
    request: { params: SubscriptionParams },
    responses: { 200: json(SubscriptionSchema, "The subscription"), ...errorResponses(401, 403, 404) },
  }),
  update: createRoute({
    method: "patch",
    path: `${base}/{subscriptionId}`,
    tags,
    summary: "Change a subscription's URL, events, thresholds, authenticatedOnly, description or whether it is enabled",
    ...writing,
    request: { params: SubscriptionParams, body: jsonBody(SubscriptionBody.partial()) },
    responses: { 200: json(SubscriptionSchema, "The subscription"), ...errorResponses(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path: `${base}/{subscriptionId}`,
    tags,
    summary: "Delete a subscription (its deliveries not sent yet are dropped)",
    ...writing,
    request: { params: SubscriptionParams },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404) },
  }),
  rotate: createRoute({
    method: "post",
    path: `${base}/{subscriptionId}/rotate-secret`,
    tags,
    summary: "Replace the signing secret (the old one keeps signing next to it for 24 hours; 409 while a previous one still does); the new one is shown once",
    ...writing,
    request: { params: SubscriptionParams },
    responses: { 200: json(WithSecretSchema, "The subscription and its new secret"), ...errorResponses(401, 403, 404, 409) },
  }),
  test: createRoute({
    method: "post",
    path: `${base}/{subscriptionId}/test`,
    tags,
    summary: "Send a webhook.test event to this endpoint",
    ...writing,
    request: { params: SubscriptionParams },
    responses: { 202: json(z.object({ deliveryId: z.string(), eventId: z.string() }), "Queued"), ...errorResponses(401, 403, 404, 409, 502) },
  }),
  deliveries: createRoute({
    method: "get",
    path: `${base}/deliveries`,
    tags,
    summary: "Deliveries, newest first (filter by status and subscription)",
    ...reading,
    request: { params: EnvironmentIdParam, query: PageQuery.extend({ status: DeliveryStatus.optional() }) },
    responses: { 200: json(DeliveryPage, "A page of deliveries"), ...errorResponses(400, 401, 403, 404) },
  }),
  deadLetters: createRoute({
    method: "get",
    path: `${base}/dead-letters`,
    tags,
    summary: "Deliveries whose every attempt failed (replayable), newest first",
    ...reading,
    request: { params: EnvironmentIdParam, query: PageQuery },
    responses: { 200: json(DeliveryPage, "A page of dead deliveries"), ...errorResponses(400, 401, 403, 404) },
  }),
  delivery: createRoute({
    method: "get",
    path: `${base}/deliveries/{deliveryId}`,
    tags,
    summary: "A delivery",
    ...reading,
    request: { params: DeliveryParams },
    responses: { 200: json(DeliverySchema, "The delivery"), ...errorResponses(401, 403, 404) },
  }),
  replay: createRoute({
    method: "post",
    path: `${base}/deliveries/{deliveryId}/replay`,
    tags,
    summary: "Send a delivery again (the same webhook-id and body, a new signature): delivered, dead, dropped, or pending for 15 minutes (not failed: it is being retried)",
    ...writing,
    request: { params: DeliveryParams },
    responses: { 202: json(DeliverySchema, "Queued again"), ...errorResponses(401, 403, 404, 409, 502) },
  }),
};

export function registerWebhookRoutes(app: OpenAPIHono<AppEnv>): void {
  // The delivery paths first: `deliveries` and `dead-letters` are no subscription ids.
  app.openapi(routes.deliveries, async (c) => {
    const query = c.req.valid("query");
    const page = await queryDeliveries(c.env.DB, {
      environmentId: c.var.target.environment.id,
      status: query.status,
      subscriptionId: query.subscriptionId,
      before: query.cursor,
      limit: query.limit,
    });
    return c.json(page, 200);
  });
  app.openapi(routes.deadLetters, async (c) => {
    const query = c.req.valid("query");
    const page = await queryDeliveries(c.env.DB, {
      environmentId: c.var.target.environment.id,
      status: "dead",
      subscriptionId: query.subscriptionId,
      before: query.cursor,
      limit: query.limit,
    });
    return c.json(page, 200);
  });
  app.openapi(routes.delivery, async (c) => c.json(await getDelivery(c.env.DB, c.var.target.environment.id, c.req.valid("param").deliveryId), 200));
  app.openapi(routes.replay, async (c) => c.json(await replayDelivery(c.env, c.var.target.environment.id, c.req.valid("param").deliveryId), 202));
  app.openapi(routes.list, async (c) => c.json({ subscriptions: await listSubscriptions(c.env.DB, c.var.target.environment.id) }, 200));
  app.openapi(routes.create, async (c) => {
    const { subscription, secret } = await createSubscription(c.env.DB, c.env.SECRETS_KEY, c.var.target.environment, c.req.valid("json"), urlPolicyOf(c.env));
    return c.json({ ...subscription, secret }, 201);
  });
  app.openapi(routes.get, async (c) => c.json(await getSubscription(c.env.DB, c.var.target.environment.id, c.req.valid("param").subscriptionId), 200));
  app.openapi(routes.update, async (c) =>
    c.json(await updateSubscription(c.env.DB, c.var.target.environment.id, c.req.valid("param").subscriptionId, c.req.valid("json"), urlPolicyOf(c.env)), 200),
  );
  app.openapi(routes.remove, async (c) => {
    await deleteSubscription(c.env.DB, c.var.target.environment.id, c.req.valid("param").subscriptionId);
    return c.json({ deleted: true as const }, 200);
  });
  app.openapi(routes.rotate, async (c) => {
    const { subscription, secret } = await rotateSubscriptionSecret(c.env.DB, c.env.SECRETS_KEY, c.var.target.environment.id, c.req.valid("param").subscriptionId);
    return c.json({ ...subscription, secret }, 200);
  });
  app.openapi(routes.test, async (c) => {
    const { environment } = c.var.target;
    const subscription = await getSubscription(c.env.DB, environment.id, c.req.valid("param").subscriptionId);
    if (!subscription.enabled) throw new ApiError("conflict", `Webhook subscription ${subscription.id} is disabled: enable it to send a test`);
    const eventId = `msg_test_${crypto.randomUUID().replaceAll("-", "")}`;
    let deliveryIds: string[];
    try {
      deliveryIds = await publish(c.env, environment, [{ type: "webhook.test", id: eventId, data: { subscriptionId: subscription.id } }], [
        { id: subscription.id, eventTypes: ["*"], thresholds: [] },
      ]);
    } catch (error) {
      throw new ApiError("upstream_error", `The test event could not be queued (${String(error)}): try again`);
    }
    return c.json({ deliveryId: deliveryIds[0]!, eventId }, 202);
  });
}
