/**
 * Customers of an environment's user data store: which Stripe products an identifier holds. The Stripe sync fills
 * this table; these routes let an operator set it by hand (and tests exercise Stripe-linked plans).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { subscriptionAccess } from "../../payments/lifecycle";
import { agentStore, deleteCustomer, getCustomerRecord, listCustomers, productsOf, upsertCustomer } from "../../services/customers";
import { storeOf, type Environment } from "../../services/tenancy";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Customers"];
const reading = { security, middleware: permit("customers.read", "environment") };
const writing = { security, middleware: permit("customers.write", "environment") };
const CustomerSchema = z
  .object({ identifier: z.string(), stripeCustomerId: z.string().nullable(), stripeProductIds: z.array(z.string()), updatedAt: z.string() })
  .openapi("Customer");
const CustomerDetailSchema = CustomerSchema.extend({
  stripeProductIds: z.array(z.string()).openapi({ description: "Products granted by hand (PUT), on top of what payments grant" }),
  paymentCustomerIds: z.array(z.string()).openapi({ description: "The Stripe customers linked to this identity" }),
  subscriptions: z.array(
    z.object({
      id: z.string(),
      customerId: z.string(),
      state: z.string().openapi({ description: "Lifecycle state: trialing, active, canceling, past_due, unpaid, paused, incomplete, canceled, revoked or unknown" }),
      status: z.string().openapi({ description: "Stripe's own status" }),
      productIds: z.array(z.string()),
      currentPeriodEnd: z.string().nullable(),
      cancelAtPeriodEnd: z.boolean(),
      stateSince: z.string(),
      revokedAt: z.string().nullable(),
      access: z.object({ granted: z.boolean(), until: z.string().nullable() }).openapi({ description: "What the subscription grants now" }),
    }),
  ),
  purchases: z.array(z.object({ paymentId: z.string(), customerId: z.string().nullable(), state: z.enum(["paid", "refunded", "disputed"]), productIds: z.array(z.string()) })),
  entitledProductIds: z.array(z.string()).openapi({ description: "Every product the identity holds now: what decisions link plans with" }),
}).openapi("CustomerDetail");
/** `?agent=true`: the customers of agent operators (verified Web Bot Auth agents, by origin), e.g. to invoice crawls. */
const PartitionQuery = z.object({
  agent: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "Address the agent operators' partition: the identifier is an operator's origin, e.g. https://crawler.example (URL-encoded)." }),
});
const CustomerParams = EnvironmentIdParam.extend({
  identifier: z.string().min(1).max(512).openapi({ param: { name: "identifier", in: "path" }, example: "test@example.com" }),
});

const routes = {
  list: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/customers",
    tags,
    summary: "List customers of the environment's user data store",
    ...reading,
    request: { params: EnvironmentIdParam, query: PartitionQuery },
    responses: { 200: json(z.object({ customers: z.array(CustomerSchema) }), "Customers"), ...errorResponses(401, 403, 404) },
  }),
  get: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/customers/{identifier}",
    tags,
    summary: "Get a customer, with what its payments grant",
    ...reading,
    request: { params: CustomerParams, query: PartitionQuery },
    responses: { 200: json(CustomerDetailSchema, "The customer, its subscriptions and purchases"), ...errorResponses(401, 403, 404) },
  }),
  put: createRoute({
    method: "put",
    path: "/api/v1/admin/environments/{environmentId}/customers/{identifier}",
    tags,
    summary: "Create or replace a customer and the Stripe products it holds",
    ...writing,
    request: {
      params: CustomerParams,
      query: PartitionQuery,
      body: jsonBody(z.object({ stripeCustomerId: z.string().max(255).nullable().optional(), stripeProductIds: z.array(z.string().min(1).max(255)).max(100) })),
    },
    responses: { 200: json(CustomerSchema, "The customer"), ...errorResponses(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path: "/api/v1/admin/environments/{environmentId}/customers/{identifier}",
    tags,
    summary: "Delete a customer",
    ...writing,
    request: { params: CustomerParams, query: PartitionQuery },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404) },
  }),
};

/** The environment's store, or its agent operators' partition (decision/agentIdentity.ts) for `?agent=true`. */
const partitionOf = (environment: Environment, query: { agent?: "true" | "false" }): string =>
  query.agent === "true" ? agentStore(storeOf(environment)) : storeOf(environment);

export function registerCustomerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.list, async (c) => {
    const { organizationId, environment } = c.var.target;
    return c.json({ customers: await listCustomers(c.env.DB, organizationId, partitionOf(environment, c.req.valid("query"))) }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    const record = await getCustomerRecord(c.env.DB, organizationId, partitionOf(environment, c.req.valid("query")), identifier);
    if (!record) throw new ApiError("not_found", `Customer ${identifier} not found`);
    const now = c.var.services.clock.now();
    return c.json(
      {
        ...record,
        subscriptions: record.subscriptions.map(({ graceHours: _, ...subscription }, index) => ({ ...subscription, access: subscriptionAccess(record.subscriptions[index]!, now) })),
        entitledProductIds: productsOf(record, now),
      },
      200,
    );
  });
  app.openapi(routes.put, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    const body = c.req.valid("json");
    return c.json(await upsertCustomer(c.env.DB, organizationId, partitionOf(environment, c.req.valid("query")), { identifier, ...body }), 200);
  });
  app.openapi(routes.remove, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    if (!(await deleteCustomer(c.env.DB, organizationId, partitionOf(environment, c.req.valid("query")), identifier))) throw new ApiError("not_found", `Customer ${identifier} not found`);
    return c.json({ deleted: true as const }, 200);
  });
}
