/**
 * One identity's meter object, for operators: read its counters and credit balances, reset a counter, grant credits.
 * Every write is audited as an `admin` event before the response.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { meterStub, userStoreKey, type MeterStub } from "../../../durable-objects/meter/client";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { sha256Hex } from "../../lib/crypto";
import { isUniqueConstraintError } from "../../lib/d1Errors";
import type { TargetOf } from "../../middleware/permissions";
import { eventIdFor, insertEvent, meterIdempotencyKey } from "../../services/events";
import { agentStore } from "../../services/customers";
import { storeOf, type Environment } from "../../services/tenancy";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Meters"];
const reading = { security, middleware: permit("meters.read", "environment") };
const writing = { security, middleware: permit("meters.write", "environment") };
const base = "/api/v1/admin/environments/{environmentId}/identities/{identifier}";

const IdentityParams = EnvironmentIdParam.extend({
  identifier: z.string().min(1).max(512).openapi({ param: { name: "identifier", in: "path" }, example: "test@example.com" }),
});
const CounterParams = IdentityParams.extend({
  counterId: z.string().min(1).max(300).openapi({ param: { name: "counterId", in: "path" }, example: "default:feat_0123456789abcdef.enabled" }),
});
const CreditParams = IdentityParams.extend({
  creditId: z.string().min(1).max(300).openapi({ param: { name: "creditId", in: "path" }, example: "tokens" }),
});

const StoredCounterSchema = z
  .object({
    counterId: z.string(),
    period: z.string(),
    timeZone: z.string(),
    periodStart: z.string(),
    consumedUnits: z.number(),
    uniqueResourceCount: z.number(),
  })
  .openapi("StoredCounter");
const BalanceSchema = z.object({ identifier: z.string(), creditId: z.string(), balance: z.number() }).openapi("CreditBalance");
const AddressQuery = z.object({
  anonymous: z.enum(["true", "false"]).optional().openapi({ description: "Address the anonymous identity of that name." }),
  agent: z.enum(["true", "false"]).optional().openapi({ description: "Address the agent operator of that origin (a verified Web Bot Auth agent), e.g. https://crawler.example." }),
});
const AgentChargeSchema = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    method: z.enum(["crawl", "x402"]),
    currency: z.string(),
    micros: z.number().int().openapi({ description: "Micro-units of the currency (1 USD = 1,000,000)." }),
    surface: z.string(),
    resource: z.string().optional(),
    url: z.string().optional(),
    reference: z.string().optional().openapi({ description: "The x402 settlement's transaction." }),
  })
  .openapi("AgentCharge");

const routes = {
  counters: createRoute({
    method: "get",
    path: `${base}/counters`,
    tags,
    summary: "An identity's counters in the environment's user data store (units of the current period)",
    ...reading,
    request: { params: IdentityParams },
    responses: { 200: json(z.object({ identifier: z.string(), counters: z.array(StoredCounterSchema) }), "Counters"), ...errorResponses(401, 403, 404) },
  }),
  resetCounter: createRoute({
    method: "delete",
    path: `${base}/counters/{counterId}`,
    tags,
    summary: "Reset one of an identity's counters (its units and the resources it has seen)",
    ...writing,
    request: { params: CounterParams },
    responses: { 200: json(z.object({ identifier: z.string(), counterId: z.string(), reset: z.literal(true) }), "Reset"), ...errorResponses(401, 403, 404) },
  }),
  charges: createRoute({
    method: "get",
    path: `${base}/charges`,
    tags,
    summary: "What an identity (usually an agent's operator: ?agent=true) was charged for priced requests",
    description: "Pay-per-crawl charges and x402 settlements, newest first, with the totals per currency. Page with `cursor` (the previous page's `nextCursor`).",
    ...reading,
    request: {
      params: IdentityParams,
      query: AddressQuery.extend({ limit: z.coerce.number().int().min(1).max(200).optional(), cursor: z.string().max(300).optional() }),
    },
    responses: {
      200: json(
        z.object({
          identifier: z.string(),
          charges: z.array(AgentChargeSchema),
          totals: z.array(z.object({ currency: z.string(), micros: z.number().int(), count: z.number().int() })),
          nextCursor: z.string().nullable(),
        }),
        "Charges",
      ),
      ...errorResponses(400, 401, 403, 404),
    },
  }),
  balance: createRoute({
    method: "get",
    path: `${base}/credits/{creditId}`,
    tags,
    summary: "An identity's credit balance",
    ...reading,
    request: { params: CreditParams },
    responses: { 200: json(BalanceSchema, "Balance (0 when never granted)"), ...errorResponses(401, 403, 404) },
  }),
  grant: createRoute({
    method: "post",
    path: `${base}/credits/{creditId}/grants`,
    tags,
    summary: "Grant credits to an identity",
    description: "Send an Idempotency-Key header to make retries safe: a retry with the same key and body grants nothing more.",
    ...writing,
    request: {
      params: CreditParams,
      headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
      body: jsonBody(
        z.object({
          amount: z.number().positive().max(1e12).openapi({ example: 100 }),
          reason: z.string().min(1).max(500).openapi({ example: "goodwill top-up" }),
        }),
      ),
    },
    responses: { 200: json(BalanceSchema, "Balance after the grant"), ...errorResponses(400, 401, 403, 404, 422) },
  }),
};

interface Target {
  organizationId: string;
  environment: Environment;
  /** Signed-in (default) or anonymous identity of that name: two different people. */
  authenticated: boolean;
  stub: MeterStub;
}

/** A request the `environment` scope of middleware/permissions.ts has let through, with its environment. */
type EnvironmentRequest = Context<{ Bindings: Env; Variables: AppEnv["Variables"] & { target: TargetOf<"environment"> } }>;

function meterOf(c: EnvironmentRequest, identifier: string): Target {
  const { organizationId, environment } = c.var.target;
  // Signed-in identities by default; `?anonymous=true` addresses the anonymous identity of that name, `?agent=true`
  // the agent operator of that origin (its own partition of the store, decision/agentIdentity.ts).
  const agent = c.req.query("agent") === "true";
  const authenticated = agent || c.req.query("anonymous") !== "true";
  const store = agent ? agentStore(storeOf(environment)) : storeOf(environment);
  return { organizationId, environment, authenticated, stub: meterStub(c.env.METER, userStoreKey(organizationId, store, authenticated), identifier) };
}

/** Written before the response: an operator's change is not done until it is on record. */
async function audit(c: EnvironmentRequest, t: Target, identifier: string, record: Record<string, unknown>, id?: string): Promise<void> {
  const auth = c.get("auth");
  const actor =
    auth.kind === "key"
      ? { kind: "key", keyId: auth.key.id }
      : auth.kind === "organizationKey"
        ? { kind: "organizationKey", keyId: auth.key.id, role: auth.key.role }
        : { kind: "operator" };
  try {
    await insertEvent(c.env.DB, {
      id,
      organizationId: t.organizationId,
      environmentId: t.environment.id,
      kind: "admin",
      identifier,
      outcome: String(record.action),
      record: { ...record, identifier, anonymous: !t.authenticated, actor, requestId: c.get("requestId") },
    });
  } catch (error) {
    // A retried idempotent grant reuses its event id: the first attempt's entry is the record.
    if (!(id && isUniqueConstraintError(error))) throw error;
  }
}

export function registerMeterAdminRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.counters, async (c) => {
    const { identifier } = c.req.valid("param");
    const t = meterOf(c, identifier);
    const counters = await t.stub.readCounters();
    return c.json(
      {
        identifier,
        counters: counters.map((counter) => ({
          counterId: counter.counterId,
          period: counter.period,
          timeZone: counter.timeZone,
          periodStart: counter.periodStart,
          consumedUnits: counter.consumedUnits,
          uniqueResourceCount: counter.uniqueResourceCount,
        })),
      },
      200,
    );
  });

  app.openapi(routes.resetCounter, async (c) => {
    const { identifier, counterId } = c.req.valid("param");
    const t = meterOf(c, identifier);
    const existed = await t.stub.resetCounter(counterId);
    if (!existed) throw new ApiError("not_found", `Counter ${counterId} not found for ${identifier}`);
    await audit(c, t, identifier, { action: "counter.reset", counterId });
    return c.json({ identifier, counterId, reset: true as const }, 200);
  });

  app.openapi(routes.charges, async (c) => {
    const { identifier } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    const ledger = await meterOf(c, identifier).stub.agentLedger({ ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) });
    return c.json({ identifier, ...ledger }, 200);
  });

  app.openapi(routes.balance, async (c) => {
    const { identifier, creditId } = c.req.valid("param");
    const t = meterOf(c, identifier);
    return c.json({ identifier, creditId, balance: await t.stub.getBalance(creditId) }, 200);
  });

  app.openapi(routes.grant, async (c) => {
    const { identifier, creditId } = c.req.valid("param");
    const body = c.req.valid("json");
    const idempotencyKey = c.req.valid("header")["idempotency-key"];
    const t = meterOf(c, identifier);
    // Balances belong to the user data store, which environments of one type share: a key sent through two of them is
    // one grant (and one audit entry), not one per environment.
    const storeScope = `${t.organizationId}:${storeOf(t.environment)}`;
    const result = await t.stub.grantCredits({
      creditId,
      amount: body.amount,
      reason: body.reason,
      idempotencyKey: meterIdempotencyKey(storeScope, "grant", idempotencyKey),
      requestHash: idempotencyKey ? await sha256Hex(JSON.stringify({ creditId, ...body })) : undefined,
    });
    if ("conflict" in result) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
    if (!result.ok) throw new ApiError("conflict", `Grant refused: ${result.reason}`);
    const eventId = idempotencyKey ? await eventIdFor(storeScope, { identifier, authenticated: t.authenticated }, "grant", idempotencyKey) : undefined;
    await audit(c, t, identifier, { action: "credits.grant", creditId, amount: body.amount, reason: body.reason, balance: result.balance, idempotencyKey: idempotencyKey ?? null }, eventId);
    return c.json({ identifier, creditId, balance: result.balance }, 200);
  });
}
