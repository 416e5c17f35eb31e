/**
 * A meter that fails on purpose, put in front of the real one through the app's service overrides (no switch in
 * production code): the Worker built here is the real app with one service replaced.
 */
import { env } from "cloudflare:workers";
import { withMeterDeadline, type MeterClient } from "../../durable-objects/meter/client";
import type { EvaluateResult } from "../../durable-objects/meter/MeterObject";
import { createApp } from "../../workers/app";
import type { ServiceOverrides } from "../../workers/middleware/services";
import { registerRoutes } from "../../workers/routes";
import { callThrough, type CallOptions, type CallResult } from "./api";
import { trackedExecutionContext } from "./background";

/**
 *   'timeout' — the call does not answer before the deadline fires (it fails a little later, as a call to an object
 *               that is gone eventually does, so the test's background work settles);
 *   'error'   — the call throws, like a broken or overloaded object;
 *   'slow'    — the call reaches the object only after the deadline (the caller has fallen back; the object acts).
 */
export type MeterFault = "timeout" | "error" | "slow";

/** Fails the meter calls of `identifiers` only, so tests running alongside are unaffected. */
export function faultyMeter(mode: MeterFault, identifiers: readonly string[]): NonNullable<ServiceOverrides["meter"]> {
  return (real: MeterClient): MeterClient => ({
    deadlineMs: real.deadlineMs,
    // 'error' reaches the objects of the named identifiers however they are called (counter updates, links too).
    stub: (key) => (mode === "error" && identifiers.includes(key.identifier) ? brokenObject() : real.stub(key)),
    evaluate(key, input) {
      if (!identifiers.includes(key.identifier)) return real.evaluate(key, input);
      const deadline = real.deadlineMs;
      if (mode === "timeout") {
        const noAnswer = () => scheduler.wait(deadline + 100).then((): Promise<EvaluateResult> => Promise.reject(new Error("injected: no answer")));
        return withMeterDeadline(noAnswer, deadline);
      }
      if (mode === "error") return withMeterDeadline<EvaluateResult>(() => Promise.reject(new Error("injected meter fault")), deadline);
      const late = () => scheduler.wait(deadline + 50).then(() => real.stub(key).evaluate(input) as Promise<EvaluateResult>);
      return withMeterDeadline(late, deadline);
    },
  });
}

/** An object every call of which fails, as an overloaded Durable Object's does. */
function brokenObject(): ReturnType<MeterClient["stub"]> {
  // As the runtime marks it: an overloaded object's error says so (`overloaded`) and may be retried (`retryable`).
  const fail = () => Promise.reject(Object.assign(new Error("Durable Object is overloaded. Requests queued for too long."), { overloaded: true, retryable: true }));
  return { evaluate: fail, updateCounter: fail, exportCounters: fail, importOnce: fail, customDataGet: fail, customDataSet: fail, customDataDelete: fail } as never;
}

/** The app with `overrides`, called like test/support/api.ts `call`. */
export function workerWith(overrides: ServiceOverrides) {
  const app = createApp(overrides);
  registerRoutes(app);
  const fetcher = (request: Request) => Promise.resolve(app.fetch(request, env, trackedExecutionContext()));
  return (method: string, path: string, options: CallOptions = {}): Promise<CallResult> => callThrough(fetcher, method, path, options);
}
