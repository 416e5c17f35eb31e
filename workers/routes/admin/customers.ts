/**
 * Customers of an environment's user data store: which Stripe products an identifier holds. The Stripe sync fills
 * this table; these routes let an operator set it by hand (and tests exercise Stripe-linked plans).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { deleteCustomer, getCustomer, listCustomers, upsertCustomer } from "../../services/customers";
import { storeOf } from "../../services/tenancy";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Customers"];
const reading = { security, middleware: permit("customers.read", "environment") };
const writing = { security, middleware: permit("customers.write", "environment") };
const CustomerSchema = z
  .object({ identifier: z.string(), stripeCustomerId: z.string().nullable(), stripeProductIds: z.array(z.string()), updatedAt: z.string() })
  .openapi("Customer");
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
    request: { params: EnvironmentIdParam },
    responses: { 200: json(z.object({ customers: z.array(CustomerSchema) }), "Customers"), ...errorResponses(401, 403, 404) },
  }),
  get: createRoute({
    method: "get",
    path: "/api/v1/admin/environments/{environmentId}/customers/{identifier}",
    tags,
    summary: "Get a customer",
    ...reading,
    request: { params: CustomerParams },
    responses: { 200: json(CustomerSchema, "The customer"), ...errorResponses(401, 403, 404) },
  }),
  put: createRoute({
    method: "put",
    path: "/api/v1/admin/environments/{environmentId}/customers/{identifier}",
    tags,
    summary: "Create or replace a customer and the Stripe products it holds",
    ...writing,
    request: {
      params: CustomerParams,
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
    request: { params: CustomerParams },
    responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404) },
  }),
};

export function registerCustomerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.list, async (c) => {
    const { organizationId, environment } = c.var.target;
    return c.json({ customers: await listCustomers(c.env.DB, organizationId, storeOf(environment)) }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    const customer = await getCustomer(c.env.DB, organizationId, storeOf(environment), identifier);
    if (!customer) throw new ApiError("not_found", `Customer ${identifier} not found`);
    return c.json(customer, 200);
  });
  app.openapi(routes.put, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    const body = c.req.valid("json");
    return c.json(await upsertCustomer(c.env.DB, organizationId, storeOf(environment), { identifier, ...body }), 200);
  });
  app.openapi(routes.remove, async (c) => {
    const { organizationId, environment } = c.var.target;
    const { identifier } = c.req.valid("param");
    if (!(await deleteCustomer(c.env.DB, organizationId, storeOf(environment), identifier))) throw new ApiError("not_found", `Customer ${identifier} not found`);
    return c.json({ deleted: true as const }, 200);
  });
}
