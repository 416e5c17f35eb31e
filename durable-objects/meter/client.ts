/**
 * How the Worker reaches a user's meter object: the stub naming (tenant-scoped) and a deadline, so a slow or
 * unreachable meter degrades the decision to its fallback instead of failing it.
 */
import { raceDeadline } from "../../workers/lib/deadline";
import type { EvaluateInput, EvaluateResult, MeterObject } from "./MeterObject";

export type MeterStub = DurableObjectStub<MeterObject>;

/**
 * The object of one identifier in one user data store. `storeKey` is `{organizationId}:{store}`, so one organization
 * can never address another's objects.
 */
/**
 * The key of a user data store for one class of identity: `{organizationId}:{store}:{u|a}`. Signed-in identities
 * (provided or JWT) and anonymous ones live apart, so a browser that sends `anonymousIdentifier: "alice@…"` reaches
 * an anonymous object of that name, never Alice's own counters, credits or custom data.
 */
export function userStoreKey(organizationId: string, store: string, authenticated: boolean): string {
  return `${organizationId}:${store}:${authenticated ? "u" : "a"}`;
}

export function meterStub(namespace: DurableObjectNamespace<MeterObject>, storeKey: string, identifier: string): MeterStub {
  return namespace.get(namespace.idFromName(`${storeKey}:${identifier}`));
}

export type Deadlined<T> =
  | { ok: true; value: T }
  /** `late`: the abandoned call, which may still answer (the caller can act on its outcome after responding). */
  | { ok: false; reason: "timeout"; late: Promise<T> }
  | { ok: false; reason: "error"; error: string };

/** Races `call` against a timer; never throws. A call still running after the deadline is abandoned, not cancelled. */
export async function withMeterDeadline<T>(call: () => Promise<T>, deadlineMs: number): Promise<Deadlined<T>> {
  const outcome = await raceDeadline(call, deadlineMs);
  if (outcome.status === "value") return { ok: true, value: outcome.value };
  if (outcome.status === "timeout") return { ok: false, reason: "timeout", late: outcome.late };
  return { ok: false, reason: "error", error: outcome.error instanceof Error ? outcome.error.message : String(outcome.error) };
}

/** Which object: one identifier of one class (signed-in or anonymous) in one organization's user data store. */
export interface MeterObjectKey {
  organizationId: string;
  store: string;
  authenticated: boolean;
  identifier: string;
}

/**
 * What the Worker needs of the meter objects, built once per request from the binding: the object of an identity,
 * and the decision's one call under a deadline. An interface, so tests can put a failing or slow meter in front of
 * the real one without production code carrying a fault switch.
 */
export interface MeterClient {
  readonly deadlineMs: number;
  stub(key: MeterObjectKey): MeterStub;
  /** The decision's one meter call, with the deadline: `{ ok: false }` means "use each property's fallback". */
  evaluate(key: MeterObjectKey, input: EvaluateInput): Promise<Deadlined<EvaluateResult>>;
}

export function createMeterClient(namespace: DurableObjectNamespace<MeterObject>, deadlineMs: number): MeterClient {
  const stub = (key: MeterObjectKey) => meterStub(namespace, userStoreKey(key.organizationId, key.store, key.authenticated), key.identifier);
  return {
    deadlineMs,
    stub,
    evaluate: (key, input) => evaluateWithDeadline(stub(key), input, deadlineMs),
  };
}

/** One evaluate call on a stub under a deadline; never throws. */
export function evaluateWithDeadline(stub: Pick<MeterStub, "evaluate">, input: EvaluateInput, deadlineMs: number): Promise<Deadlined<EvaluateResult>> {
  return withMeterDeadline(() => stub.evaluate(input) as Promise<EvaluateResult>, deadlineMs);
}

/** The meter deadline an operator configured (`METER_DEADLINE_MS`), or 200 ms. */
export function meterDeadlineOf(configured: string | undefined): number {
  const parsed = Number(configured);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : 200;
}
