/**
 * A counter update (`POST /api/v1/counter-updates`): usage the customer's backend measured itself, added to (or given
 * back from) one of the identity's metered counters, or an action charged to a credits balance. The identity's plans
 * are resolved exactly as a decision resolves them (subject.ts → plans stage), so the limit and period are the ones a
 * decision would enforce.
 */
import type { EvaluateResult, UpdateCounterResult } from "../../durable-objects/meter/MeterObject";
import type { CreditReading, CreditRequest, MeterReading } from "../engine";
import { reportedReading } from "../engine/meters";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { eventIdFor, meterIdempotencyKey } from "../services/events";
import { counterSettingsOf } from "../workflows/scopedUtils";
import type { CallerScope, Subject } from "./context";
import type { Services } from "./services";
import { requestTopUpsAfter } from "./creditTopUps";
import { callMeter, meterKeyOf } from "./meterCall";
import { recordingRequiredFailures } from "./requiredWorkflows";
import { resolveSubject } from "./subject";
import { counterKind, meterRequestFor, planFor } from "./counterSubject";
import { insertEventLater } from "./eventsLater";
import { queueOverageReports } from "./stages/usage";

export interface CounterUpdateBody {
  identity: unknown;
  counterId: string;
  update?: number;
  resourceId?: string;
  action?: string;
  resource?: Record<string, unknown>;
}

export interface CounterUpdateRequest extends CallerScope {
  body: CounterUpdateBody;
  idempotencyKey?: string;
}

export type CounterUpdateResult =
  | { status: "success"; eventId: string; counter: MeterReading }
  | { status: "success"; eventId: string; credit: CreditReading };

export async function updateCounter(services: Services, request: CounterUpdateRequest): Promise<CounterUpdateResult> {
  const { body, idempotencyKey } = request;
  // A browser holds the publishable key: it may spend units but not give them back (that would reset its own quota).
  if (request.keyType === "publishable" && (body.update ?? 1) < 1) {
    throw new ApiError("forbidden", "Publishable keys may only add units (update ≥ 1); give units back with a secret key");
  }
  const subject = await recordingRequiredFailures(services, { ...request, kind: "counter_update" }, () => resolveSubject(services, request));
  const { environment, identity } = subject;
  const update: PendingUpdate = {
    subject,
    body,
    idempotencyKey,
    requestHash: idempotencyKey ? await sha256Hex(JSON.stringify(body)) : undefined,
    // A retry with the same key gets the same event id: one entry per update, and a response identical to the first.
    eventId: await eventIdFor(environment.id, { identifier: identity.identifier, authenticated: identity.isAuthenticated }, "counter_update", idempotencyKey),
    meterKey: meterIdempotencyKey(environment.id, "counter_update", idempotencyKey),
  };
  return counterKind(subject, body.counterId) === "credits" ? chargeCredits(services, update) : addUnits(services, update);
}

interface PendingUpdate {
  subject: Subject;
  body: CounterUpdateBody;
  idempotencyKey: string | undefined;
  requestHash: string | undefined;
  eventId: string;
  /** The Idempotency-Key as the meter object stores it (scoped to the environment and the operation). */
  meterKey: string | undefined;
}

const userObject = (services: Services, subject: Subject) => services.meter.stub(meterKeyOf(subject));

/** Charging credits: priced by the action, deducted atomically (with the plan's periodic grant), never below 0. */
async function chargeCredits(services: Services, update: PendingUpdate): Promise<CounterUpdateResult> {
  const { subject, body, eventId } = update;
  const credit = creditRequestFor(services, subject, body.counterId, body.action, body.resource);
  const evaluated = await callMeter<EvaluateResult>(() =>
    userObject(services, subject).evaluate({
      counters: [],
      credits: [credit],
      timeZone: subject.prepared.snapshot.timeZone,
      idempotencyKey: update.meterKey,
      requestHash: update.requestHash,
    }),
  );
  if ("conflict" in evaluated) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
  const reading = evaluated.credits?.[0];
  if (!reading) throw new ApiError("not_found", `Credits ${body.counterId} not found`);
  if (!reading.deductedInRequest && reading.cost > 0) {
    throw new ApiError("insufficient_credits", `Insufficient credits: ${body.action ?? "this action"} costs ${reading.cost}, the balance is ${reading.balance}`);
  }
  recordUpdate(services, update, "granted", { creditId: body.counterId, action: body.action ?? null, credit: reading });
  // A replay's deduction is the first request's, which asked for any top-up it needed.
  if (!evaluated.replayed) requestTopUpsAfter(services, subject, [reading]);
  return { status: "success", eventId, credit: reading };
}

/** Adding (or giving back) units of a metered counter, under the limit and period the identity's plans give it. */
async function addUnits(services: Services, update: PendingUpdate): Promise<CounterUpdateResult> {
  const { subject, body, eventId } = update;
  const { environment, identity } = subject;
  // One engine run gives both this counter's limit and every limit the triggers carry.
  const decision = planFor(services, subject);
  const meterRequest = meterRequestFor(decision, subject, body.counterId);
  const result = await callMeter<UpdateCounterResult>(() =>
    userObject(services, subject).updateCounter({
      counterId: meterRequest.counterId,
      period: meterRequest.period,
      limit: meterRequest.limit,
      // An overflow setting's limit: the object bills the overage past it that it has not billed this period.
      ...(meterRequest.overflowLimit === undefined ? {} : { overflowLimit: meterRequest.overflowLimit }),
      uniqueResources: meterRequest.uniqueResources,
      timeZone: subject.prepared.snapshot.timeZone,
      update: body.update ?? 1,
      resourceId: body.resourceId,
      idempotencyKey: update.meterKey,
      requestHash: update.requestHash,
    }),
  );
  if ("conflict" in result) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
  // An unlimited counter's reading under the overridden setting's limit, an overflow setting's under its own with its
  // overage, as a decision reports them.
  const reading = reportedReading(result.reading, decision.countedMeterRequests);
  // Like a decision that consumes: counters.updated (plus what middleware fired) reaches action workflows, once per
  // logical request — a replayed retry's triggers are already queued.
  if (!result.replayed) {
    const triggers = [{ name: "counters.updated", payload: { eventId, identifier: identity.identifier, counters: [reading] } }, ...(subject.workflows?.triggers ?? [])];
    // Every counter the caller's plans meter (unlimited ones too), so the actions' utils.counters work on any of them.
    const limits = counterSettingsOf(decision.countedMeterRequests);
    services.waitUntil(services.triggers.enqueue(subject.prepared, environment, identity, triggers, 0, limits));
    queueOverageReports(services, { environment, identifier: identity.identifier, eventId }, decision.countedMeterRequests, [result.reading]);
  }
  recordUpdate(services, update, reading.hasAccess ? "granted" : "denied", { counterId: meterRequest.counterId, update: body.update ?? 1, resourceId: body.resourceId ?? null, counter: reading });
  return { status: "success", eventId, counter: reading };
}

/** The update's record, written after the response; a retry under the same key writes the same id and the first stands. */
function recordUpdate(services: Services, update: PendingUpdate, outcome: "granted" | "denied", details: Record<string, unknown>): void {
  const { subject, eventId, idempotencyKey } = update;
  const { environment, identity } = subject;
  insertEventLater(
    services,
    {
      id: eventId,
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind: "counter_update",
      identifier: identity.identifier,
      outcome,
      record: { ...details, idempotencyKey: idempotencyKey ?? null, identity: { authType: identity.authType, identifier: identity.identifier }, versionId: subject.prepared.versionId },
    },
    { log: "counter_update_event_not_written", idempotent: idempotencyKey !== undefined, fields: { eventId } },
  );
}

/** The credit request of a credits property: the plans' allowance and the price of `action` on `resource`, consumed. */
function creditRequestFor(services: Services, subject: Subject, creditId: string, action: string | undefined, resource: Record<string, unknown> | undefined): CreditRequest {
  const request = planFor(services, subject, action, resource).creditRequests.find((candidate) => candidate.creditId === creditId);
  if (!request) throw new ApiError("not_found", `Credits ${creditId} not found`);
  return { ...request, consume: true };
}
