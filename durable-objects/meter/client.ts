/**
 * How the Worker reaches a user's meter object: the stub naming (tenant-scoped) and a deadline, so a slow or
 * unreachable meter degrades the decision to its fallback instead of failing it.
 */
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
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<{ timeout: true }>((resolve) => {
    timer = setTimeout(() => resolve({ timeout: true }), Math.max(0, deadlineMs));
  });
  try {
    const pending = Promise.resolve().then(call);
    const winner = await Promise.race([pending.then((value) => ({ value })), timeout]);
    return "timeout" in winner ? { ok: false, reason: "timeout", late: pending } : { ok: true, value: winner.value };
  } catch (error) {
    return { ok: false, reason: "error", error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Test seam: makes `evaluateWithDeadline` fail as an unreachable meter would, without a real outage. Integration tests
 * run the Worker in the same isolate as the test file (vitest workers pool), so a test can import this module and set
 * `mode`; production code never writes it. `identifiers`, when set, limits the fault to those identifiers' objects
 * (matched on the stub's name `{organizationId}:{store}:{identifier}`), so tests running alongside are unaffected.
 *   'timeout' — the call never answers, so the deadline fires (`{ok:false, reason:'timeout'}`);
 *   'error'   — the call throws (`{ok:false, reason:'error'}`), like a broken or overloaded object;
 *   'slow'    — the call reaches the object only after the deadline (the caller has fallen back; the object acts).
 */
export const meterFaults: { mode: "timeout" | "error" | "slow" | null; identifiers: ReadonlySet<string> | null } = { mode: null, identifiers: null };

function faultFor(stub: { name?: string; id?: { name?: string } }): "timeout" | "error" | "slow" | null {
  const mode = meterFaults.mode;
  if (mode === null) return null;
  if (meterFaults.identifiers === null) return mode;
  const name = stub.name ?? stub.id?.name ?? "";
  for (const identifier of meterFaults.identifiers) if (name.endsWith(`:${identifier}`)) return mode;
  return null;
}

/** The decision's one meter call, with a deadline: `{ ok: false }` means "use each property's fallback". */
export function evaluateWithDeadline(
  stub: Pick<MeterStub, "evaluate"> & { name?: string; id?: { name?: string } },
  input: EvaluateInput,
  deadlineMs: number,
): Promise<Deadlined<EvaluateResult>> {
  const fault = faultFor(stub);
  if (fault === "timeout") return withMeterDeadline(() => new Promise<EvaluateResult>(() => {}), deadlineMs);
  if (fault === "error") return withMeterDeadline<EvaluateResult>(() => Promise.reject(new Error("injected meter fault")), deadlineMs);
  if (fault === "slow") {
    const slow = () => new Promise((resolve) => setTimeout(resolve, deadlineMs + 50)).then(() => stub.evaluate(input) as Promise<EvaluateResult>);
    return withMeterDeadline(slow, deadlineMs);
  }
  return withMeterDeadline(() => stub.evaluate(input) as Promise<EvaluateResult>, deadlineMs);
}
