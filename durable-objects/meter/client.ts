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
export function meterStub(namespace: DurableObjectNamespace<MeterObject>, storeKey: string, identifier: string): MeterStub {
  return namespace.get(namespace.idFromName(`${storeKey}:${identifier}`));
}

export type Deadlined<T> = { ok: true; value: T } | { ok: false; reason: "timeout" | "error"; error?: string };

/** Races `call` against a timer; never throws. A call still running after the deadline is abandoned, not cancelled. */
export async function withMeterDeadline<T>(call: () => Promise<T>, deadlineMs: number): Promise<Deadlined<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<{ timeout: true }>((resolve) => {
    timer = setTimeout(() => resolve({ timeout: true }), Math.max(0, deadlineMs));
  });
  try {
    const pending = Promise.resolve().then(call);
    const winner = await Promise.race([pending.then((value) => ({ value })), timeout]);
    return "timeout" in winner ? { ok: false, reason: "timeout" } : { ok: true, value: winner.value };
  } catch (error) {
    return { ok: false, reason: "error", error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The decision's one meter call, with a deadline: `{ ok: false }` means "use each property's fallback". */
export function evaluateWithDeadline(
  stub: Pick<MeterStub, "evaluate">,
  input: EvaluateInput,
  deadlineMs: number,
): Promise<Deadlined<EvaluateResult>> {
  return withMeterDeadline(() => stub.evaluate(input) as Promise<EvaluateResult>, deadlineMs);
}
