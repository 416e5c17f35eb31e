/**
 * Settling an x402 `upto` payment (`POST /api/v1/x402-settlements/{paymentId}`). A surface decision granted on an
 * `upto` authorization (the client allowed at most the surface's price) stored it as a pending payment in the meter
 * object of the identity it decided for, and named it in its response (`payment.id`). Once the work is done and its
 * cost known, the business settles the actual amount, from 0 to the maximum:
 *   1. the object takes the payment in one atomic step (agentLedger.ts `beginX402Settlement`): unknown, expired,
 *      settled with another amount, being settled by another call, or an amount above the authorization → 409/422,
 *      nothing settled; a repeat of a finished settlement → its first answer; 0 → released, nothing charged;
 *   2. the environment's facilitator settles the amount (payments/x402Charge.ts);
 *   3. the object records the charge on the identity's ledger and marks the payment settled — or, when the
 *      facilitator failed, puts it back to authorized so the call can be retried.
 * The payment is found in the object it was stored in: a signed-in or anonymous identity's (named by `identity`, with
 * the same rules as decisions and counter updates), or a verified agent operator's (named by `agent`, its origin).
 * Another identity's or another organization's payment id is simply not there (409 `payment_not_found`).
 */
import type { BeginX402Settlement, SettledX402Payment } from "../../durable-objects/meter/agentLedger";
import type { MeterObjectKey, MeterStub } from "../../durable-objects/meter/client";
import { formatCrawlerPrice, parseCrawlerPrice } from "../engine/payPerCrawl";
import { ApiError } from "../errors";
import type { PaymentPayload, PaymentRequirements } from "../payments/x402";
import { X402_CURRENCY } from "../payments/x402Charge";
import { eventIdFor, type EventInput } from "../services/events";
import { agentStore, isAgentStore } from "../services/customers";
import type { CallerScope } from "./context";
import { insertEventLater } from "./eventsLater";
import { callMeter, meterKeyOf } from "./meterCall";
import { recordingRequiredFailures } from "./requiredWorkflows";
import type { Services } from "./services";
import { loadConfig } from "./stages";
import { resolveSubject } from "./subject";

export interface X402SettleBody {
  /** The identity the decision was made for (humans, anonymous visitors, and agents acting for a signed-in user). */
  identity: unknown;
  /** A verified agent's operator (its Signature-Agent origin), when the decision was made for the agent itself. */
  agent?: string;
  /** The actual cost, a price string: `"USD 0.004"`. */
  amount: string;
}

export interface X402SettleRequest extends CallerScope {
  paymentId: string;
  body: X402SettleBody;
}

export interface X402SettleResult {
  status: "success";
  eventId: string;
  payment: {
    id: string;
    method: "x402";
    scheme: "upto";
    /** `settled`: the amount was paid (a charge on the ledger); `released`: 0 was settled, nothing charged. */
    status: "settled" | "released";
    amount: string;
    maxAmount: string;
    transaction?: string;
    settledAt: string;
  };
}

export async function settleX402Payment(services: Services, request: X402SettleRequest): Promise<X402SettleResult> {
  const { paymentId, body, environment } = request;
  const price = parseCrawlerPrice(body.amount);
  if (!price || price.currency !== X402_CURRENCY) {
    throw new ApiError("validation_failed", `amount: a price in ${X402_CURRENCY}, e.g. "USD 0.004" (x402 payments are made in a USD stablecoin)`, [
      { path: "amount", message: `expected "${X402_CURRENCY} <amount>"` },
    ]);
  }
  const owner = await ownerOf(services, request);
  const gateway = await services.x402(environment.id);
  if (!gateway) throw new ApiError("conflict", "This environment takes no x402 payments (no x402 settings): nothing can be settled");
  const stub = services.meter.stub(owner);
  const now = services.clock.now();
  const begun = await callMeter(() => stub.beginX402Settlement(paymentId, price.micros, now) as Promise<BeginX402Settlement>);
  if ("refused" in begun) throw refusalError(begun, paymentId);

  let settled: SettledX402Payment;
  if ("done" in begun) {
    settled = begun.done;
    if (!begun.replayed) record(services, request, owner, paymentId, settled);
  } else {
    const authorization = JSON.parse(begun.settle.authorization) as { payload: PaymentPayload; requirements: PaymentRequirements };
    const result = await gateway.settleUpto(authorization, price.micros);
    if (!result.ok || !result.transaction) {
      // No answer from the facilitator: it may have settled. The payment stays settleable, marked as attempted.
      const unknown = !result.ok && result.facilitatorFailure;
      await callMeter(() => stub.completeX402Settlement(paymentId, { ok: false, unknown }, services.clock.now()));
      const reason = result.ok ? "the facilitator gave no transaction" : result.message;
      if (unknown) throw new ApiError("payments_unavailable", `The facilitator did not answer (${reason}): whether the payment settled is not known yet; retry`);
      if (begun.settle.attempted) {
        throw new ApiError(
          "payment_settlement_unknown",
          `The facilitator refuses to settle the payment now (${reason}), but an earlier attempt went unanswered and may have settled it: check the facilitator's records for this payer's authorization`,
        );
      }
      throw new ApiError("payment_settlement_failed", `The facilitator refused to settle the payment: ${reason}. Nothing was charged.`);
    }
    const completed = await bookSettlement(services, stub, paymentId, price.micros, result.transaction);
    if (!completed) throw new ApiError("payment_not_found", `Payment ${paymentId} is no longer held for this identity (settled as ${result.transaction})`);
    settled = completed;
    record(services, request, owner, paymentId, settled);
  }
  return {
    status: "success",
    eventId: await eventIdOf(request, owner, paymentId),
    payment: {
      id: settled.id,
      method: "x402",
      scheme: "upto",
      status: settled.state,
      amount: formatCrawlerPrice({ currency: settled.currency, micros: settled.micros }),
      maxAmount: formatCrawlerPrice({ currency: settled.currency, micros: settled.maxMicros }),
      ...(settled.transaction ? { transaction: settled.transaction } : {}),
      settledAt: settled.settledAt,
    },
  };
}

/**
 * Books a settlement that went through: the funds moved, so the booking is retried (twice now, once more after the
 * response) rather than lost; a booking that still fails answers 503 naming the transaction.
 */
async function bookSettlement(services: Services, stub: MeterStub, paymentId: string, micros: number, transaction: string): Promise<SettledX402Payment | null> {
  const book = () => stub.completeX402Settlement(paymentId, { ok: true, micros, transaction }, services.clock.now()) as Promise<SettledX402Payment | null>;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return await book();
    } catch {
      // retried below
    }
  }
  services.waitUntil(
    book().catch((error: unknown) => services.logger.error("x402_settlement_not_booked", { paymentId, transaction, error: String(error) })),
  );
  throw new ApiError("payments_unavailable", `The payment settled (transaction ${transaction}) but could not be booked yet; retry to get its answer`);
}

/** The meter object the decision stored the payment in. */
async function ownerOf(services: Services, request: X402SettleRequest): Promise<MeterObjectKey> {
  const { environment, body } = request;
  if (body.agent !== undefined) {
    const origin = URL.parse(body.agent)?.origin;
    if (!origin || origin !== body.agent.replace(/\/$/, "")) {
      throw new ApiError("validation_failed", "agent: the agent operator's origin, e.g. https://crawler.example", [{ path: "agent", message: "expected an origin" }]);
    }
    const { store } = await loadConfig(services, request);
    return { organizationId: environment.organizationId, store: agentStore(store), authenticated: true, identifier: origin };
  }
  const subject = await recordingRequiredFailures(services, { ...request, kind: "payment", action: "x402.settle" }, () => resolveSubject(services, request));
  return meterKeyOf(subject);
}

/** One event per payment: a repeat of the settle call answers the same id. */
const eventIdOf = (request: X402SettleRequest, owner: MeterObjectKey, paymentId: string) =>
  eventIdFor(request.environment.id, { identifier: owner.identifier, authenticated: owner.authenticated }, "x402.settle", paymentId);

function refusalError(outcome: Extract<BeginX402Settlement, { refused: string }>, paymentId: string): ApiError {
  const detail = outcome.detail ? `: ${outcome.detail}` : "";
  switch (outcome.refused) {
    case "payment_not_found":
      return new ApiError("payment_not_found", `Payment ${paymentId} not found for this identity (unknown, or finished more than 24 hours ago)`);
    case "payment_expired":
      return new ApiError("payment_expired", `Payment ${paymentId} expired unsettled: it was released, nothing was charged`);
    case "payment_settling":
      return new ApiError("payment_settling", `Payment ${paymentId} is being settled by another call; retry to get its answer`);
    case "payment_settled":
      return new ApiError("payment_settled", `Payment ${paymentId} is already settled${detail}`);
    case "payment_above_authorization":
      return new ApiError("payment_above_authorization", `The amount is more than payment ${paymentId} authorized${detail}. Nothing was settled.`);
  }
}

/** The settlement's record (kind `payment`), written after the response. */
function record(services: Services, request: X402SettleRequest, owner: MeterObjectKey, paymentId: string, settled: SettledX402Payment): void {
  const { environment } = request;
  const event = eventIdOf(request, owner, paymentId).then(
    (id): EventInput => ({
      id,
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind: "payment",
      identifier: owner.identifier,
      outcome: settled.state,
      idempotent: true,
      record: {
        action: "x402.settle",
        paymentId,
        amount: formatCrawlerPrice({ currency: settled.currency, micros: settled.micros }),
        maxAmount: formatCrawlerPrice({ currency: settled.currency, micros: settled.maxMicros }),
        ...(settled.transaction ? { transaction: settled.transaction } : {}),
        ...(isAgentStore(owner.store) ? { agent: owner.identifier } : {}),
      },
    }),
  );
  insertEventLater(services, event, { log: "x402_settlement_event_not_written", idempotent: true, fields: { paymentId } });
}
