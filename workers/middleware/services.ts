/**
 * Builds the request's Services once, from the Worker's bindings, and hands them to the routes (`c.var.services`).
 * The per-isolate caches behind them (snapshots, keys, customers, settings, bot verdicts) outlive the request; what is
 * built here is the request's view of them plus its clock, logger, timer and `waitUntil`.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { setMetric } from "hono/timing";
import { createMeterClient, meterDeadlineOf, type MeterClient } from "../../durable-objects/meter/client";
import type { AppEnv } from "../context";
import type { Clock, Logger, Services, StageTimer } from "../decision/services";
import { userAgentVerdicts } from "../services/caches";
import { isolateKeyDirectories } from "../services/keyDirectories";
import { getX402Settings } from "../services/x402Settings";
import { x402GatewayFor } from "../payments/x402Charge";
import { getCustomerCached } from "../services/customers";
import { type CustomerLookupMessage, requestCustomerLookup } from "../payments/lookup";
import { type CreditTopUpMessage, requestCreditTopUps } from "../payments/topUp";
import type { UsageReportMessage } from "../payments/usage";
import { paymentsAccess } from "../workflows/paymentsAccess";
import { workflowEnvironment } from "../services/environmentSettings";
import { insertEvent } from "../services/events";
import { eventStoreOf } from "../services/eventStore";
import { isolateSnapshots } from "../services/snapshots";
import { lookupApiKey, lookupEnvironment } from "../services/tenantCache";
import { selectWorkflowRunner } from "../workflows/select";
import { triggerQueue } from "../workflows/triggers";
import { mintOfferToken } from "../offers/tokens";

/** What a test (or an embedding) may put in place of the real thing. */
export interface ServiceOverrides {
  /** Wraps the meter client built from the METER binding (e.g. a meter that fails or answers late). */
  meter?: (real: MeterClient) => MeterClient;
  clock?: Clock;
}

const systemClock: Clock = { now: () => Date.now() };

export const jsonLogger: Logger = {
  warn: (event, fields) => console.warn(JSON.stringify({ event, ...fields })),
  error: (event, fields) => console.error(JSON.stringify({ event, ...fields })),
};

export function buildServices(c: Context<AppEnv>, overrides: ServiceOverrides = {}): Services {
  const env = c.env;
  const db = env.DB;
  const meter = createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS));
  // `c.executionCtx` throws when the app runs without one (app.request in a unit test): read it only when used.
  const waitUntil = (work: Promise<unknown>) => c.executionCtx.waitUntil(work);
  const clock = overrides.clock ?? systemClock;
  const events = eventStoreOf(env);
  // One object for the request's invocation: the event store keys per-invocation budgets on it.
  const invocation = { waitUntil };
  return {
    db,
    clock,
    logger: jsonLogger,
    timing: stageTimer(c),
    waitUntil,
    snapshot: (versionId) => isolateSnapshots.get(db, versionId),
    lookupApiKey: (rawKey) => lookupApiKey(db, rawKey),
    lookupEnvironment: (environmentId) => lookupEnvironment(db, environmentId),
    customer: (organizationId, store, identifier) => getCustomerCached(db, organizationId, store, identifier),
    lookUpCustomerLater: (environment, identifier) =>
      waitUntil(
        requestCustomerLookup(env.PAYMENTS as Queue<CustomerLookupMessage>, db, environment, identifier).catch((error: unknown) =>
          jsonLogger.warn("customer_lookup_not_requested", { environmentId: environment.id, error: String(error) }),
        ),
      ),
    reportUsageLater: (message) =>
      waitUntil(
        (env.PAYMENTS as Queue<UsageReportMessage>)
          .send(message)
          .catch((error: unknown) => jsonLogger.warn("usage_report_not_queued", { environmentId: message.environmentId, eventId: message.eventId, counterId: message.counterId, value: message.value, error: String(error) })),
      ),
    requestCreditTopUps: (environment, identifier, due) =>
      waitUntil(
        requestCreditTopUps(env.PAYMENTS as Queue<CreditTopUpMessage>, environment, identifier, due).catch((error: unknown) =>
          jsonLogger.warn("credit_top_up_not_requested", { environmentId: environment.id, error: String(error) }),
        ),
      ),
    workflowEnvironment: (environmentId) => workflowEnvironment(db, env.SECRETS_KEY, environmentId),
    meter: overrides.meter ? overrides.meter(meter) : meter,
    payments: (scope) => paymentsAccess({ db, secretsKey: env.SECRETS_KEY, stripeApiBase: env.STRIPE_API_BASE, logger: jsonLogger, clock }, scope),
    workflowRunner: (target) => selectWorkflowRunner(env, c.executionCtx, target),
    triggers: triggerQueue(env.TRIGGERS, clock),
    recordEvent: (event) => events.record(invocation, event),
    insertEvent: (event) => insertEvent(db, event),
    botVerdicts: userAgentVerdicts,
    keyDirectories: isolateKeyDirectories(env.WEB_BOT_AUTH_ALLOW_LOOPBACK === "true"),
    x402: async (environmentId) => {
      const settings = await getX402Settings(db, environmentId);
      return settings ? x402GatewayFor(settings, { allowLoopbackFacilitator: env.X402_ALLOW_LOOPBACK_FACILITATOR === "true" }) : null;
    },
    offerTokens: { mint: (input) => mintOfferToken(env.SECRETS_KEY, input, clock.now()) },
  };
}

export function servicesMiddleware(overrides: ServiceOverrides = {}) {
  return createMiddleware<AppEnv>(async (c, next) => {
    c.set("services", buildServices(c, overrides));
    await next();
  });
}

/**
 * Stage durations into `Server-Timing` (hono/timing, on the routes that mount its middleware) and into the decision
 * record. The first mark measures from the moment the services were built, i.e. everything before the pipeline.
 */
function stageTimer(c: Context<AppEnv>): StageTimer {
  const durations: Record<string, number> = {};
  let last = performance.now();
  return {
    mark(stage) {
      const now = performance.now();
      const ms = now - last;
      last = now;
      durations[stage] = Math.round(((durations[stage] ?? 0) + ms) * 1000) / 1000;
      if (c.get("metric")) setMetric(c, stage, ms, undefined, 2);
    },
    toRecord: () => ({ ...durations }),
  };
}
