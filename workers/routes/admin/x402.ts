/** An environment's x402 settings: how agents pay it per request in a stablecoin. Nothing in them is a secret. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import {
  CAIP2_NETWORK_PATTERN,
  DEFAULT_MAX_TIMEOUT_SECONDS,
  deleteX402Settings,
  MAX_EXTRA_BYTES,
  MAX_FACILITATOR_URL_LENGTH,
  MAX_TIMEOUT_SECONDS,
  putX402Settings,
  readX402Settings,
  X402_ADDRESS_PATTERN,
} from "../../services/x402Settings";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Payments"];
const path = "/api/v1/admin/environments/{environmentId}/payments/x402";

const Address = z.string().regex(X402_ADDRESS_PATTERN, "must be 1-256 printable characters without spaces");

const settingsFields = {
  facilitatorUrl: z.string().min(1).max(MAX_FACILITATOR_URL_LENGTH).openapi({
    example: "https://x402.org/facilitator/",
    description:
      "The x402 facilitator that verifies and settles the payments (its /verify and /settle are below it): https, stored ending with `/`.",
  }),
  network: z
    .string()
    .regex(CAIP2_NETWORK_PATTERN, "must be a CAIP-2 chain id such as eip155:8453")
    .openapi({ example: "eip155:84532", description: "The chain payments are made on, as a CAIP-2 id" }),
  asset: Address.openapi({
    example: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    description: "The token paid in, on that network: a USD stablecoin with 6 decimals (prices in USD are charged in it, 1 USD = 1,000,000 atomic units)",
  }),
  payTo: Address.openapi({ example: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", description: "The address that receives the payments" }),
  extra: z
    .record(z.string(), z.unknown())
    .optional()
    .openapi({
      example: { name: "USDC", version: "2" },
      description: `Passed in every offer's \`extra\` (for an EVM token, its EIP-712 domain name and version); at most ${MAX_EXTRA_BYTES} bytes of JSON`,
    }),
};

const X402SettingsSchema = z
  .object({
    ...settingsFields,
    maxTimeoutSeconds: z.number().int().openapi({ example: DEFAULT_MAX_TIMEOUT_SECONDS }),
    updatedAt: z.string(),
  })
  .openapi("X402Settings", { description: "How the environment takes x402 payments" });

const PutX402SettingsBody = z.object({
  ...settingsFields,
  maxTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(MAX_TIMEOUT_SECONDS)
    .optional()
    .openapi({ description: `How long a client's signed payment must stay valid (seconds, 1-${MAX_TIMEOUT_SECONDS}; default ${DEFAULT_MAX_TIMEOUT_SECONDS})` }),
});

const routes = {
  put: createRoute({
    method: "put",
    path,
    tags,
    summary: "Set the environment's x402 settings, replacing any it had",
    description:
      "From then on, a pay-per-crawl refusal of the environment offers x402 (a `payment-required` header) and a request carrying `payment-signature` is charged through the facilitator. The facilitator URL must be https.",
    security,
    middleware: permit("payments.write", "environment"),
    request: { params: EnvironmentIdParam, body: jsonBody(PutX402SettingsBody) },
    responses: { 200: json(X402SettingsSchema, "The settings"), ...errorResponses(400, 401, 403, 404) },
  }),
  get: createRoute({
    method: "get",
    path,
    tags,
    summary: "The environment's x402 settings; 404 when it has none",
    security,
    middleware: permit("payments.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(X402SettingsSchema, "The settings"), ...errorResponses(401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path,
    tags,
    summary: "Remove the environment's x402 settings: it offers no x402 payment any more",
    security,
    middleware: permit("payments.write", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 204: { description: "Removed" }, ...errorResponses(401, 403, 404) },
  }),
};

const notSet = (environmentId: string) => new ApiError("not_found", `Environment ${environmentId} has no x402 settings`);

export function registerX402SettingsRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.put, async (c) => {
    const settings = await putX402Settings(c.env.DB, c.var.target.environment, c.req.valid("json"), {
      allowLoopbackFacilitator: c.env.X402_ALLOW_LOOPBACK_FACILITATOR === "true",
    });
    return c.json(settings, 200);
  });
  app.openapi(routes.get, async (c) => {
    const environmentId = c.var.target.environment.id;
    const settings = await readX402Settings(c.env.DB, environmentId);
    if (!settings) throw notSet(environmentId);
    return c.json(settings, 200);
  });
  app.openapi(routes.remove, async (c) => {
    const environmentId = c.var.target.environment.id;
    if (!(await deleteX402Settings(c.env.DB, environmentId))) throw notSet(environmentId);
    return c.body(null, 204);
  });
}
