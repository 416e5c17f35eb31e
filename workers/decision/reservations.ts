/**
 * Reservations (`POST /api/v1/reservations`, `…/{id}/finalize`, `…/{id}/release`): usage whose cost is known only
 * afterwards — an LLM call's tokens. The backend reserves units of a metered counter (or credits) before the work, in
 * one meter call that checks the room and takes it, then finalizes with the actual amount: what was not used goes
 * back, what went over is taken as far as the limit or balance allows. A reservation nobody settles gives everything
 * back when it expires. Counters are addressed, and the identity's plans resolved, exactly as counter updates do
 * (counterUpdate.ts), so the limit and period are the ones a decision would enforce. The meter object does the
 * bookkeeping atomically (durable-objects/meter/reservations.ts); this file resolves, calls once, and reports.
 */
import type { IdempotencyConflict, Replayable } from "../../durable-objects/meter/MeterObject";
import type { ReservedCounter, ReserveOutcome, SettledReservation, SettleOutcome } from "../../durable-objects/meter/reservations";
import type { CreditReading, CreditRequest, Decision, MeterReading, MeterRequest } from "../engine";
import { reportedReading } from "../engine/meters";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { eventIdFor, meterIdempotencyKey } from "../services/events";
import { counterSettingsOf } from "../workflows/scopedUtils";
import type { CallerScope, Subject } from "./context";
import { requestTopUpsAfter } from "./creditTopUps";
import { callMeter, meterKeyOf } from "./meterCall";
import { recordingRequiredFailures } from "./requiredWorkflows";
import type { Services } from "./services";
import { counterProperty, meterRequestFor, planFor } from "./counterSubject";
import { insertEventLater } from "./eventsLater";
import { queueOverageReports } from "./stages/usage";
import { resolveSubject } from "./subject";

export const DEFAULT_RESERVATION_TTL_SECONDS = 300;

export interface ReserveBody {
  identity: unknown;
  counterId: string;
  /** Units (integer ≥ 1) of a metered counter; credits (> 0) of a credits property, by default the action's price. */
  amount?: number;
  ttlSeconds?: number;
  resourceId?: string;
  action?: string;
  resource?: Record<string, unknown>;
}

export interface ReserveRequest extends CallerScope {
  body: ReserveBody;
  idempotencyKey?: string;
}

export type ReserveResult = {
  status: "success";
  eventId: string;
  granted: boolean;
  reservation?: { id: string; counterId: string; amount: number; expiresAt: string };
} & ({ counter: MeterReading } | { credit: CreditReading });

export interface SettleRequest extends CallerScope {
  reservationId: string;
  action: "finalize" | "release";
  body: { identity: unknown; amount?: number };
}

export type SettleResult = { status: "success"; eventId: string; reservation: SettledReservation } & ({ counter: MeterReading } | { credit: CreditReading });

type ReserveCallResult = (ReserveOutcome & Replayable) | IdempotencyConflict;

const userObject = (services: Services, subject: Subject) => services.meter.stub(meterKeyOf(subject));

export async function reserve(services: Services, request: ReserveRequest): Promise<ReserveResult> {
  const { body, idempotencyKey } = request;
  const subject = await recordingRequiredFailures(services, { ...request, kind: "counter_update", action: "reservation.reserve" }, () => resolveSubject(services, request));
  const { environment, identity } = subject;
  const kind = counterProperty(subject, body.counterId).kind;
  const decision = planFor(services, subject, body.action, body.resource);
  const ttlSeconds = body.ttlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS;
  let target: { counter: ReservedCounter } | { credit: CreditRequest };
  let amount: number;
  if (kind === "metered") {
    const meterRequest = meterRequestFor(decision, subject, body.counterId);
    if (meterRequest.uniqueResources) {
      throw new ApiError("conflict", `Counter ${body.counterId} counts unique resources, not units: it cannot be reserved (send counter updates with resourceId)`);
    }
    if (body.amount === undefined || !Number.isInteger(body.amount) || body.amount < 1) {
      throw new ApiError("validation_failed", "amount: a metered counter is reserved in whole units (an integer ≥ 1)", [{ path: "amount", message: "expected an integer ≥ 1" }]);
    }
    amount = body.amount;
    target = { counter: settingOf(meterRequest) };
  } else {
    const credit = creditRequestOf(decision, body.counterId);
    amount = body.amount ?? credit.cost;
    // Credits are kept to 6 decimals: an amount that rounds to nothing reserves nothing.
    if (!(Math.round(amount * 1e6) > 0)) {
      throw new ApiError("validation_failed", `amount: nothing to reserve (${body.action ? `${body.action} costs ${credit.cost}` : "send amount, or an action with a price"})`, [
        { path: "amount", message: "expected a number > 0" },
      ]);
    }
    target = { credit };
  }
  const eventId = await eventIdFor(environment.id, { identifier: identity.identifier, authenticated: identity.isAuthenticated }, "reservation", idempotencyKey);
  const requestHash = idempotencyKey ? await sha256Hex(JSON.stringify(body)) : undefined;
  const result = await callMeter<ReserveCallResult>(() =>
    userObject(services, subject).reserve({
      ...target,
      amount,
      ttlMs: ttlSeconds * 1000,
      timeZone: subject.prepared.snapshot.timeZone,
      now: services.clock.now(),
      idempotencyKey: meterIdempotencyKey(environment.id, "reservation", idempotencyKey),
      requestHash,
    }) as Promise<ReserveCallResult>,
  );
  if ("conflict" in result) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
  const reservation = result.reservation;
  const reading = readingOf(result, decision);
  // Only a reservation that took something changes what workflows and billing see (an overflow one takes nothing yet).
  if (!result.replayed && reservation && (result.credit || result.counter?.consumedInRequest)) announce(services, subject, decision, eventId, result.counter, result.credit);
  record(services, subject, {
    id: eventId,
    idempotent: idempotencyKey !== undefined,
    outcome: result.granted ? "granted" : "denied",
    details: { action: "reservation.reserve", counterId: body.counterId, amount, ttlSeconds, reservationId: reservation?.id ?? null, resourceId: body.resourceId ?? null, ...reading },
  });
  return { status: "success", eventId, granted: result.granted, ...(reservation ? { reservation } : {}), ...reading };
}

/**
 * Finalizes (with the actual amount) or releases one reservation of the identity. The reservation lives in the
 * identity's own meter object, so another identity's — or another organization's — id is simply not found there.
 */
export async function settleReservation(services: Services, request: SettleRequest): Promise<SettleResult> {
  const { reservationId, action } = request;
  const subject = await recordingRequiredFailures(services, { ...request, kind: "counter_update", action: `reservation.${action}` }, () => resolveSubject(services, request));
  const { environment, identity } = subject;
  // The plans' current settings of every counter and credit: the object picks the reservation's own.
  const decision = planFor(services, subject);
  const outcome = await callMeter<SettleOutcome>(() =>
    userObject(services, subject).settleReservation({
      reservationId,
      action,
      ...(action === "finalize" ? { actual: request.body.amount } : {}),
      counters: decision.countedMeterRequests.map(settingOf),
      credits: decision.creditRequests.map((credit) => ({ ...credit, cost: 0, consume: false })),
      timeZone: subject.prepared.snapshot.timeZone,
      now: services.clock.now(),
    }) as Promise<SettleOutcome>,
  );
  if ("refused" in outcome) throw refusalError(outcome, reservationId);
  // One event per settlement: a repeat of it answers (and would record) the same id.
  const eventId = await eventIdFor(environment.id, { identifier: identity.identifier, authenticated: identity.isAuthenticated }, `reservation.${action}`, reservationId);
  const reading = readingOf(outcome, decision);
  if (!outcome.replayed) {
    announce(services, subject, decision, eventId, outcome.counter, outcome.credit);
    record(services, subject, {
      id: eventId,
      idempotent: true,
      outcome: outcome.reservation.status,
      details: { action: `reservation.${action}`, reservation: outcome.reservation, counterId: outcome.counter?.counterId ?? outcome.credit?.creditId, ...reading },
    });
  }
  return { status: "success", eventId, reservation: outcome.reservation, ...reading };
}

function refusalError(outcome: Extract<SettleOutcome, { refused: string }>, reservationId: string): ApiError {
  switch (outcome.refused) {
    case "reservation_not_found":
      return new ApiError("reservation_not_found", `Reservation ${reservationId} not found for this identity (unknown, or settled more than 24 hours ago)`);
    case "reservation_expired":
      return new ApiError("reservation_expired", `Reservation ${reservationId} expired: its amount went back, nothing was charged`);
    case "reservation_finalized":
      return new ApiError("reservation_finalized", `Reservation ${reservationId} is already settled: ${outcome.detail ?? "it was finalized"}`);
    case "fractional_units":
      return new ApiError("validation_failed", "amount: a metered counter's reservation is finalized in whole units (an integer ≥ 0)", [{ path: "amount", message: "expected an integer" }]);
  }
}

/** The counter reading as decisions report it (an overflow setting's under its own limit), or the credit reading. */
function readingOf(result: { counter?: MeterReading; credit?: CreditReading }, decision: Decision): { counter: MeterReading } | { credit: CreditReading } {
  if (!result.counter) return { credit: result.credit! };
  // What the object billed is for usage reporting, never for the wire (also when the plans no longer meter the counter).
  const { overageBilledUnits: _billed, ...counter } = reportedReading(result.counter, decision.countedMeterRequests);
  return { counter };
}

/**
 * What follows a change of units or credits, as after a counter update: `counters.updated` (with what middleware
 * fired) for action workflows, overage units for billing, top-ups for credits left below their threshold. Never for a
 * replayed request: the first one did it.
 */
function announce(services: Services, subject: Subject, decision: Decision, eventId: string, counter: MeterReading | undefined, credit: CreditReading | undefined): void {
  const { environment, identity } = subject;
  if (credit) {
    requestTopUpsAfter(services, subject, [credit]);
    return;
  }
  if (!counter) return;
  const reading = reportedReading(counter, decision.countedMeterRequests);
  const triggers = [{ name: "counters.updated", payload: { eventId, identifier: identity.identifier, counters: [reading] } }, ...(subject.workflows?.triggers ?? [])];
  services.waitUntil(services.triggers.enqueue(subject.prepared, environment, identity, triggers, 0, counterSettingsOf(decision.countedMeterRequests)));
  queueOverageReports(services, { environment, identifier: identity.identifier, eventId }, decision.countedMeterRequests, [counter]);
}

/** The operation's record (kind `counter_update`, `record.action` says which), written after the response. */
function record(services: Services, subject: Subject, event: { id: string; idempotent: boolean; outcome: string; details: Record<string, unknown> }): void {
  const { environment, identity } = subject;
  insertEventLater(
    services,
    {
      id: event.id,
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind: "counter_update",
      identifier: identity.identifier,
      outcome: event.outcome,
      idempotent: event.idempotent,
      record: { ...event.details, identity: { authType: identity.authType, identifier: identity.identifier }, versionId: subject.prepared.versionId },
    },
    { log: "reservation_event_not_written", idempotent: event.idempotent, fields: { eventId: event.id } },
  );
}

function creditRequestOf(decision: Decision, creditId: string): CreditRequest {
  const request = decision.creditRequests.find((candidate) => candidate.creditId === creditId);
  if (!request) throw new ApiError("not_found", `Credits ${creditId} not found`);
  return { ...request, consume: true };
}

const settingOf = (request: MeterRequest): ReservedCounter => ({
  counterId: request.counterId,
  period: request.period,
  limit: request.limit,
  ...(request.overflowLimit === undefined ? {} : { overflowLimit: request.overflowLimit }),
});
