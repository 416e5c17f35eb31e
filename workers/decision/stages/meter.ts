/**
 * Stage 7 — the meter: every metered counter and credit balance of the decision in ONE call to the user's Durable
 * Object (consumption is all-or-nothing across them), under a deadline. A slow or failing meter degrades the decision
 * to each property's fallback instead of failing it; a known Idempotency-Key is answered with the first result
 * (`replayed`), and from then on workflows' counters only read.
 */
import { ApiError } from "../../errors";
import type { PreparedSnapshot } from "../../engine";
import { meterIdempotencyKey } from "../../services/events";
import { webhooksTrackUsers } from "../../webhooks/decisionEvents";
import { listensTo } from "../../workflows/triggers";
import type { DecisionRequest, Metered, MeterOutcome, Planned, Subject } from "../context";
import type { Services } from "../services";
import type { AgentCharge } from "../../../durable-objects/meter/agentLedger";
import type { EvaluateResult } from "../../../durable-objects/meter/MeterObject";
import { agentChargeOf, x402PaymentOf, type Crawled } from "./crawl";
import { meterKeyOf } from "../meterCall";

const NOT_CALLED: MeterOutcome = Object.freeze({ replayed: false, userAdded: false });

export async function consumeMeter<C extends DecisionRequest & Subject & Planned & Partial<Crawled>>(services: Services, context: C): Promise<C & Metered> {
  const { decision, prepared, environment, identity, kind, idempotencyKey, requestHash, body } = context;
  const agentCharge = agentChargeOf(context.crawl, context);
  const x402Payment = x402PaymentOf(context.crawl, context);
  // The user's plan set rides along only when an action workflow or a webhook subscription listens to plan changes or
  // new users (it costs the object a write). The subscriptions come from a per-isolate cache (10 s).
  const tracksUser =
    listensTo(prepared, "plans.changed") || listensTo(prepared, "user.added") || (await webhooksTrackUsers(services.db, environment.id, identity.isAuthenticated));
  // A keyed request whose triggers someone may act on goes to the meter even when it meters nothing: the object
  // records the key, so a retry is recognised (`replayed`) and does not enqueue the triggers a second time.
  const keyedWithActions = idempotencyKey !== undefined && hasActionWorkflows(prepared);
  if (decision.countedMeterRequests.length === 0 && decision.creditRequests.length === 0 && !tracksUser && !keyedWithActions && !agentCharge && !x402Payment) {
    return { ...context, meter: NOT_CALLED };
  }
  const result = await services.meter.evaluate(
    meterKeyOf(context),
    {
      // Unlimited counters (an `on` over a metered plan) ride in the same call: they never refuse, and they keep counting.
      counters: decision.countedMeterRequests,
      ...(decision.creditRequests.length > 0 ? { credits: decision.creditRequests } : {}),
      ...(tracksUser ? { plans: decision.planSlugs } : {}),
      resourceId: body.resource?.id as string | undefined,
      timeZone: prepared.snapshot.timeZone,
      idempotencyKey: meterIdempotencyKey(environment.id, kind, idempotencyKey),
      requestHash,
      ...(agentCharge ? { agentCharge } : {}),
      ...(x402Payment ? { x402Payment } : {}),
    },
  );
  services.timing.mark("meter");
  if (!result.ok) {
    const failure = result.reason === "error" ? `error: ${result.error}` : "timeout";
    // An x402 payment already settled is the payer's money spent: it is served, and booked once the object answers.
    const settled = agentCharge?.method === "x402" && agentCharge.reference !== undefined;
    if (settled) bookLater(services, context, agentCharge);
    // A pay-per-crawl charge is only a promise to pay: nothing is served (503), so a late write must not stand.
    else if (agentCharge) voidLater(services, context, agentCharge, meterIdempotencyKey(environment.id, kind, idempotencyKey), result.reason === "timeout" ? result.late : undefined);
    return { ...context, meter: { replayed: false, userAdded: false, failure, ...(result.reason === "timeout" ? { late: result.late } : {}), ...(settled ? { agentCharged: true } : {}) } };
  }
  const answer = result.value;
  if ("conflict" in answer) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
  if (answer.replayed) context.workflows?.markReplayed();
  // An `upto` authorization stored counts as the decision's payment being recorded; one this identity had already
  // used is not (the crawl stage answers it with a 402).
  const authorized = answer.x402Authorized;
  const crawl = authorized !== undefined && context.crawl?.kind === "paid" ? { ...context.crawl, payment: authorized } : context.crawl;
  return {
    ...context,
    ...(crawl ? { crawl } : {}),
    meter: {
      readings: new Map(answer.readings.map((reading) => [reading.counterId, reading])),
      ...(answer.credits ? { creditReadings: new Map(answer.credits.map((reading) => [reading.creditId, reading])) } : {}),
      replayed: answer.replayed === true,
      userAdded: answer.userAdded === true,
      plansChanged: answer.plansChanged,
      ...(answer.agentCharged !== undefined ? { agentCharged: answer.agentCharged } : authorized ? { agentCharged: true } : {}),
    },
  };
}

/** Whether any action workflow of the version listens to any trigger (system or custom). */
function hasActionWorkflows(prepared: PreparedSnapshot): boolean {
  return prepared.snapshot.workflows.some((workflow) => workflow.type === "action" && (workflow.triggers?.length ?? 0) > 0);
}

/** The ledger entry of a settled payment whose decision's meter call failed, written after the response (once: by id). */
function bookLater(services: Services, context: Subject, charge: AgentCharge): void {
  const { environment, identity } = context;
  const stub = services.meter.stub(meterKeyOf(context));
  services.waitUntil(
    (stub.recordAgentCharge(charge) as Promise<boolean>).catch((error: unknown) =>
      services.logger.error("x402_charge_not_booked", { environmentId: environment.id, identifier: identity.identifier, chargeId: charge.id, error: String(error) }),
    ),
  );
}

/**
 * The charge of a decision answered 503 because its meter call failed: once the abandoned call has finished (if it
 * ever answers), the charge is taken off the ledger if it was written — the crawler was served nothing and signs again.
 */
function voidLater(services: Services, context: Subject, charge: AgentCharge, idempotencyKey: string | undefined, late: Promise<EvaluateResult> | undefined): void {
  const { environment, identity } = context;
  const stub = services.meter.stub(meterKeyOf(context));
  const finished = late ? late.then(() => undefined, () => undefined) : Promise.resolve();
  services.waitUntil(
    finished
      .then(() => stub.voidAgentCharge(charge.id, idempotencyKey) as Promise<boolean>)
      .catch((error: unknown) => services.logger.warn("crawl_charge_not_voided", { environmentId: environment.id, identifier: identity.identifier, chargeId: charge.id, error: String(error) })),
  );
}
