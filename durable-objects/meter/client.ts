/**
 * How the Worker reaches a user's meter object: the stub naming (tenant-scoped) and a deadline, so a slow or
 * unreachable meter degrades the decision to its fallback instead of failing it.
 */
import type { EvaluateInput, EvaluateResult, MeterObject } from "./MeterObject";

export type MeterStub = DurableObjectStub<MeterObject>;

/** `storeKey` is `{organizationId}:{store}`: one organization can never address another's objects. */
export function meterStub(namespace: DurableObjectNamespace<MeterObject>, storeKey: string, identifier: string): MeterStub {
  return namespace.get(namespace.idFromName(`${storeKey}:${identifier}`));
}

export type Deadlined<T> = { ok: true; value: T } | { ok: false; reason: "timeout" | "error"; error?: string };

export async function withMeterDeadline<T>(call: () => Promise<T>, deadlineMs: number): Promise<Deadlined<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), deadlineMs);
  });
  try {
    const result = await Promise.race([call(), timeout]);
    return result === "timeout" ? { ok: false, reason: "timeout" } : { ok: true, value: result as T };
  } catch (error) {
    return { ok: false, reason: "error", error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export function evaluateWithDeadline(stub: MeterStub, input: EvaluateInput, deadlineMs: number): Promise<Deadlined<EvaluateResult>> {
  return withMeterDeadline(() => stub.evaluate(input) as Promise<EvaluateResult>, deadlineMs);
}
