/**
 * Running customer workflows behind one interface. The local default (and the one tests exercise) is the Worker
 * Loader binding: one dynamic isolate per workflow version, cached by code hash, with no network unless the
 * environment allow-lists hosts. Production may use a Workers for Platforms dispatch namespace instead (see
 * dispatchRunner.ts); the pipeline only sees `WorkflowRunner`.
 */
import type { SnapshotWorkflow } from "../engine/snapshot";
import { raceDeadline } from "../lib/deadline";
import { WORKFLOW_CPU_MS_CAP, type WorkflowType } from "../../schema/config";
import { GUARD_MODULE, TICK_FUNCTION } from "../config/workflowModule";
import { BUDGET_EXCEEDED_MESSAGE, workflowFailureKind, type WorkflowFailureKind } from "./failures";

export type { WorkflowFailureKind } from "./failures";

export type WorkflowOutcome<T = unknown> =
  | { ok: true; value: T; durationMs: number }
  | { ok: false; kind: WorkflowFailureKind; error: string; durationMs: number };

export interface WorkflowCall {
  workflow: SnapshotWorkflow;
  /** Arguments without utils; structured-cloneable. */
  args: Record<string, unknown>;
  /** RPC target the isolate calls back into (scoped to tenant, environment and identity). */
  utils: object;
  deadlineMs: number;
}

export interface WorkflowRunner {
  run(call: WorkflowCall): Promise<WorkflowOutcome>;
  /** Endpoint workflows: a Request in, a Response out. */
  runEndpoint(call: WorkflowCall, request: Request): Promise<WorkflowOutcome<Response>>;
}

export const DEFAULT_DEADLINE_MS = 50;

/** How late past its deadline a call's value may arrive and still count (see withDeadline). */
export const LATE_RESULT_GRACE_MS = 250;

/**
 * CPU time (ms) one call may use unless the workflow sets `cpuMs` (at most WORKFLOW_CPU_MS_CAP): the types that
 * decide a request get little, actions (off the request path, on a queue) more.
 */
export const DEFAULT_CPU_MS: Readonly<Record<WorkflowType, number>> = {
  middleware: 50,
  provisioning: 50,
  feature: 50,
  surface: 50,
  component: 50,
  endpoint: 50,
  action: 1_000,
  // A redemption answers a person who clicked "buy" and waits for it: more than a decision, less than an action.
  redemption: 200,
};

/** Subrequests one call may make (egress and, in the dispatch runtime, each utils call). */
export const WORKFLOW_SUBREQUESTS = 50;

/**
 * Operations (loop iterations + function calls) per millisecond of a call's CPU limit: its operation budget. At
 * roughly 40 ns per guarded operation this stops a runaway loop at about its CPU limit where nothing else can
 * (local workerd does not enforce `limits.cpuMs`).
 */
export const OPERATIONS_PER_CPU_MS = 20_000;

/**
 * What module evaluation (a workflow's top-level code, run once per isolate outside any call) may spend. It closes
 * when the first call starts: code that runs later outside any call (a callback top-level code registered on a
 * promise a call then resolves) has no allowance left.
 */
export const STARTUP_OPERATION_BUDGET = 1_000_000;

export interface WorkflowLimits {
  cpuMs: number;
  subRequests: number;
}

/** The CPU limit of one call of `workflow` (ms). */
export function cpuLimitOf(workflow: Pick<SnapshotWorkflow, "type" | "cpuMs">): number {
  return Math.min(workflow.cpuMs ?? DEFAULT_CPU_MS[workflow.type], WORKFLOW_CPU_MS_CAP);
}

/** The operation budget of one call of `workflow`. */
export function operationBudgetOf(workflow: Pick<SnapshotWorkflow, "type" | "cpuMs">): number {
  return cpuLimitOf(workflow) * OPERATIONS_PER_CPU_MS;
}

/**
 * Compatibility date of workflow isolates and dispatch scripts; pinned below the platform's own date so that older
 * workerd builds (the benchmark's miniflare 4) can load workflow isolates too. `nodejs_als` gives the budget module
 * `AsyncLocalStorage` (and nothing else of Node: no `process`, no `Buffer`). `disallow_eval_during_startup` refuses
 * `eval` and `new Function` in top-level code as workerd already does inside calls: code made from a string was never
 * seen by the compiler, so it carries no ticks and would run unbudgeted in every call that reaches it.
 */
export const WORKFLOW_COMPATIBILITY_DATE = "2026-07-01";
export const WORKFLOW_COMPATIBILITY_FLAGS: readonly string[] = ["nodejs_als", "disallow_eval_during_startup"];

/** Where the operation budget of each call lives; only the harness imports it (compile.ts refuses every import). */
export const BUDGET_MODULE = "./__mos_budget.js";

/**
 * The operation budget, per call: the harness runs each call inside `withOperationBudget`, and the tick charges the
 * budget of the call it runs in, found through AsyncLocalStorage, which follows the call across every `await`. Two
 * concurrent calls in one isolate never share or reset each other's budget, and nothing but the harness can start one.
 * A call that ran out fails with the budget's error even if its code caught the one the tick threw.
 */
export const BUDGET_SOURCE = `
import { AsyncLocalStorage } from "node:async_hooks";

const budgets = new AsyncLocalStorage();
const startup = { remaining: ${STARTUP_OPERATION_BUDGET} };
// Taken before the workflow module evaluates (the harness imports this module first), so it cannot be replaced.
const NativeResponse = Response;

export async function withOperationBudget(operations, run) {
  // The harness imports the workflow, so module evaluation is over by the first call: close its allowance.
  startup.remaining = 0;
  const budget = { remaining: operations, exceeded: false };
  const result = await budgets.run(budget, run);
  // Code that caught the budget's error still ran out of budget: the call fails all the same.
  if (budget.exceeded) throw new Error(${JSON.stringify(BUDGET_EXCEEDED_MESSAGE)});
  return result instanceof NativeResponse && result.body ? withBodyInBudget(budget, result) : result;
}

/**
 * The runtime pulls a streamed body after the call has returned, outside any call's context, where the tick finds no
 * budget: the body is read through a stream that pulls the workflow's within the call's own budget.
 */
function withBodyInBudget(budget, response) {
  const reader = response.body.getReader();
  const body = new ReadableStream({
    pull: (controller) =>
      budgets.run(budget, () => reader.read()).then(({ done, value }) => {
        // A pull that caught the budget's error still ran out of budget: the body fails rather than ending as if whole.
        if (budget.exceeded) {
          reader.cancel().catch(() => {});
          controller.error(new Error(${JSON.stringify(BUDGET_EXCEEDED_MESSAGE)}));
        } else if (done) controller.close();
        else controller.enqueue(value);
      }),
    cancel: (reason) => reader.cancel(reason),
  });
  return new NativeResponse(body, response);
}

export function ${TICK_FUNCTION}() {
  const budget = budgets.getStore() ?? startup;
  if (--budget.remaining < 0) {
    budget.remaining = 0;
    budget.exceeded = true;
    throw new Error(${JSON.stringify(BUDGET_EXCEEDED_MESSAGE)});
  }
}`;

/** The module compiled workflows import (see compile.ts): the tick and nothing else. Shared with the dispatch scripts. */
export const GUARD_SOURCE = `export { ${TICK_FUNCTION} } from "${BUDGET_MODULE}";`;

/** The platform's modules of every workflow isolate and dispatch script, besides its harness, by module name. */
export function guardModules(): Record<string, string> {
  return { [moduleName(GUARD_MODULE)]: GUARD_SOURCE, [moduleName(BUDGET_MODULE)]: BUDGET_SOURCE };
}

const moduleName = (specifier: string) => specifier.replace(/^\.\//, "");

/**
 * The isolate's entry: adapts the flat RPC utils into the documented nested shape, gives the call its operation
 * budget, and calls the customer's default export. Results cross the boundary as structured clones.
 */
const HARNESS_SOURCE = `
import { WorkerEntrypoint } from "cloudflare:workers";
import { withOperationBudget } from "${BUDGET_MODULE}";
import workflow from "./workflow.js";

const NO_UTILS = new Proxy({}, {
  get: (_target, name) => () => Promise.reject(new Error("utils are not available to a workflow whose code never names them (utils." + String(name) + ")")),
});

function wrapUtils(raw) {
  raw = raw ?? NO_UTILS;
  return {
    customData: {
      get: (key) => raw.customDataGet(key),
      set: (key, value) => raw.customDataSet(key, value),
      delete: (key) => raw.customDataDelete(key),
    },
    counters: {
      consume: (counterId, options) => raw.countersConsume(counterId, options ?? {}),
      incrementCounter: (counterId, update, options) => raw.countersIncrement(counterId, update ?? 1, options ?? {}),
    },
    resolveJwt: (token) => raw.resolveJwt(token),
    identities: { link: (fromIdentifier, options) => raw.linkIdentity(fromIdentifier, options ?? {}) },
    triggers: { fire: (name, payload) => raw.fireTrigger(name, payload ?? {}) },
    payments: {
      customer: () => raw.paymentsCustomer(),
      invoices: (options) => raw.paymentsInvoices(options ?? {}),
      createCheckoutSession: (input) => raw.paymentsCheckout(input ?? {}),
      createPortalSession: (input) => raw.paymentsPortal(input ?? {}),
    },
    testGroup100: (identifier) => raw.testGroup100(identifier),
    offers: { list: (options) => raw.offersList(options ?? {}) },
  };
}

/**
 * The result copied inside the call's budget: RPC would copy it after the call, where a getter of the result has no
 * budget to tick against. What structured cloning cannot copy (a function) goes to RPC as it is, as before.
 */
function copiedInBudget(result) {
  try {
    return structuredClone(result);
  } catch (error) {
    if (error instanceof DOMException && error.name === "DataCloneError") return result;
    throw error;
  }
}

export default class extends WorkerEntrypoint {
  run(args, rawUtils, budget) {
    return withOperationBudget(budget, async () => {
      const result = await workflow({ ...args, utils: wrapUtils(rawUtils) });
      return result === undefined ? null : copiedInBudget(result);
    });
  }
  runEndpoint(request, args, rawUtils, budget) {
    return withOperationBudget(budget, async () => {
      const response = await workflow(request, { ...args, utils: wrapUtils(rawUtils) });
      if (!(response instanceof Response)) throw new TypeError("an endpoint workflow must return a Response");
      return response;
    });
  }
}`;

interface WorkflowEntrypoint {
  run(args: unknown, utils: unknown, budget: number): Promise<unknown>;
  runEndpoint(request: Request, args: unknown, utils: unknown, budget: number): Promise<Response>;
}

export class LoaderWorkflowRunner implements WorkflowRunner {
  constructor(
    private readonly loader: WorkerLoader,
    /** Outbound fetch for the isolate: null blocks all network (the default). */
    private readonly outbound: (workflow: SnapshotWorkflow) => Fetcher | null = () => null,
    /**
     * Which isolates may be shared: never across organizations (identical code of two tenants would otherwise share
     * its module-level state), and never across environments — their variables and secrets differ, and a workflow
     * that keeps `env.SECRET` in a global must not hand the live secret to preview code. Within one environment, a
     * loaded isolate keeps the globalOutbound it was created with, so an allow-list change needs a new one too.
     */
    private readonly sharing: { organizationId: string; environmentId: string; egressScope: string } = { organizationId: "", environmentId: "", egressScope: "" },
  ) {}

  /**
   * The isolate is cached across calls (and across changes of a workflow's `cpuMs`, which leave its code alone), so
   * the limits go with each call's entrypoint rather than with the isolate's code.
   */
  private entrypoint(workflow: SnapshotWorkflow): WorkflowEntrypoint {
    const outbound = this.outbound(workflow);
    const { organizationId, environmentId, egressScope } = this.sharing;
    const id = `wf:${workflow.codeHash}:${organizationId}:${environmentId}:${outbound ? egressScope : "closed"}`;
    const stub = this.loader.get(id, () => ({
      compatibilityDate: WORKFLOW_COMPATIBILITY_DATE,
      compatibilityFlags: [...WORKFLOW_COMPATIBILITY_FLAGS],
      mainModule: "harness.js",
      modules: { "harness.js": HARNESS_SOURCE, ...guardModules(), "workflow.js": workflow.code },
      env: {},
      globalOutbound: outbound,
    }));
    const limits: WorkflowLimits = { cpuMs: cpuLimitOf(workflow), subRequests: WORKFLOW_SUBREQUESTS };
    return stub.getEntrypoint(undefined, { limits }) as unknown as WorkflowEntrypoint;
  }

  run(call: WorkflowCall): Promise<WorkflowOutcome> {
    const refused = refusedOutcome(call.workflow);
    if (refused) return Promise.resolve(refused);
    return withDeadline(call.deadlineMs, () => this.entrypoint(call.workflow).run(call.args, utilsFor(call), operationBudgetOf(call.workflow)));
  }

  runEndpoint(call: WorkflowCall, request: Request): Promise<WorkflowOutcome<Response>> {
    const refused = refusedOutcome(call.workflow);
    if (refused) return Promise.resolve(refused);
    return withDeadline(call.deadlineMs, () => this.entrypoint(call.workflow).runEndpoint(request, call.args, utilsFor(call), operationBudgetOf(call.workflow)));
  }
}

/**
 * The outcome of every call of a workflow whose stored code this build refused (services/versions.ts): `unavailable`,
 * so that its fallback applies, without starting an isolate. Both runtimes answer it.
 */
export function refusedOutcome(workflow: SnapshotWorkflow): WorkflowOutcome<never> | null {
  return workflow.refused ? { ok: false, kind: "unavailable", error: workflow.refused, durationMs: 0 } : null;
}

/**
 * The utils RPC target travels only to code that names `utils`: sending a target costs a stub on both sides of every
 * call, and most provisioning workflows read only their arguments.
 */
function utilsFor(call: WorkflowCall): object | null {
  return /\butils\b/.test(call.workflow.code) ? call.utils : null;
}

/**
 * Races a call against its deadline and turns every failure into a typed outcome (never throws).
 *
 * A value that arrives well after the deadline is a timeout too. Locally the isolate runs on the caller's thread, so a
 * call that burns CPU without yielding (a catastrophic regular expression, which no operation budget sees) holds the
 * deadline's timer until it returns, and its result then wins the race; it must not count as a success. A result only
 * slightly late (within LATE_RESULT_GRACE_MS) is kept: on a busy machine the timer itself fires late, and a cold
 * isolate's start-up is the platform's time, not the workflow's.
 */
export async function withDeadline<T>(deadlineMs: number, start: () => Promise<T>): Promise<WorkflowOutcome<T>> {
  const began = performance.now();
  const outcome = await raceDeadline(start, deadlineMs);
  const durationMs = performance.now() - began;
  switch (outcome.status) {
    case "value":
      if (durationMs > deadlineMs + LATE_RESULT_GRACE_MS) {
        return { ok: false, kind: "timeout", error: `workflow finished after its deadline of ${deadlineMs} ms (${Math.round(durationMs)} ms): its result was discarded`, durationMs };
      }
      return { ok: true, value: outcome.value, durationMs };
    case "timeout":
      return { ok: false, kind: "timeout", error: `workflow did not finish within ${deadlineMs} ms`, durationMs };
    case "error": {
      const error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      return { ok: false, kind: workflowFailureKind(outcome.error), error, durationMs };
    }
  }
}
