/**
 * Running customer workflows behind one interface. The local default (and the one tests exercise) is the Worker
 * Loader binding: one dynamic isolate per workflow version, cached by code hash, with no network unless the
 * environment allow-lists hosts. Production may use a Workers for Platforms dispatch namespace instead (see
 * dispatchRunner.ts); the pipeline only sees `WorkflowRunner`.
 */
import type { SnapshotWorkflow } from "../engine/snapshot";
import { raceDeadline } from "../lib/deadline";
import { GUARD_MODULE, TICK_FUNCTION } from "./compile";
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

/** Operations (loop iterations + function calls) one invocation may spend before it is stopped. */
export const OPERATION_BUDGET = 5_000_000;
export const DEFAULT_DEADLINE_MS = 50;
/**
 * Compatibility date of workflow isolates and dispatch scripts; pinned below the platform's own date so that older
 * workerd builds (the benchmark's miniflare 4) can load workflow isolates too.
 */
export const WORKFLOW_COMPATIBILITY_DATE = "2026-07-01";

/** The operation-budget module the compiled workflow imports (see compile.ts); shared with the dispatch scripts. */
export const GUARD_SOURCE = `
let remaining = 0;
export function __mosReset(budget) { remaining = budget; }
export function ${TICK_FUNCTION}() {
  if (--remaining < 0) { remaining = 0; throw new Error(${JSON.stringify(BUDGET_EXCEEDED_MESSAGE)}); }
}`;

/**
 * The isolate's entry: adapts the flat RPC utils into the documented nested shape, resets the budget, and calls
 * the customer's default export. Results cross the boundary as structured clones.
 */
const HARNESS_SOURCE = `
import { WorkerEntrypoint } from "cloudflare:workers";
import { __mosReset } from "${GUARD_MODULE}";
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
    testGroup100: (identifier) => raw.testGroup100(identifier),
  };
}

export default class extends WorkerEntrypoint {
  async run(args, rawUtils, budget) {
    __mosReset(budget);
    const result = await workflow({ ...args, utils: wrapUtils(rawUtils) });
    return result === undefined ? null : result;
  }
  async runEndpoint(request, args, rawUtils, budget) {
    __mosReset(budget);
    const response = await workflow(request, { ...args, utils: wrapUtils(rawUtils) });
    if (!(response instanceof Response)) throw new TypeError("an endpoint workflow must return a Response");
    return response;
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

  private entrypoint(workflow: SnapshotWorkflow): WorkflowEntrypoint {
    const outbound = this.outbound(workflow);
    const { organizationId, environmentId, egressScope } = this.sharing;
    const id = `wf:${workflow.codeHash}:${organizationId}:${environmentId}:${outbound ? egressScope : "closed"}`;
    const stub = this.loader.get(id, () => ({
      compatibilityDate: WORKFLOW_COMPATIBILITY_DATE,
      mainModule: "harness.js",
      modules: { "harness.js": HARNESS_SOURCE, "__mos_guard.js": GUARD_SOURCE, "workflow.js": workflow.code },
      env: {},
      globalOutbound: outbound,
    }));
    return stub.getEntrypoint() as unknown as WorkflowEntrypoint;
  }

  run(call: WorkflowCall): Promise<WorkflowOutcome> {
    return withDeadline(call.deadlineMs, () => this.entrypoint(call.workflow).run(call.args, utilsFor(call), OPERATION_BUDGET));
  }

  runEndpoint(call: WorkflowCall, request: Request): Promise<WorkflowOutcome<Response>> {
    return withDeadline(call.deadlineMs, () => this.entrypoint(call.workflow).runEndpoint(request, call.args, utilsFor(call), OPERATION_BUDGET));
  }
}

/**
 * The utils RPC target travels only to code that names `utils`: sending a target costs a stub on both sides of every
 * call, and most provisioning workflows read only their arguments.
 */
function utilsFor(call: WorkflowCall): object | null {
  return /\butils\b/.test(call.workflow.code) ? call.utils : null;
}

/** Races a call against its deadline and turns every failure into a typed outcome (never throws). */
export async function withDeadline<T>(deadlineMs: number, start: () => Promise<T>): Promise<WorkflowOutcome<T>> {
  const began = performance.now();
  const outcome = await raceDeadline(start, deadlineMs);
  const durationMs = performance.now() - began;
  switch (outcome.status) {
    case "value":
      return { ok: true, value: outcome.value, durationMs };
    case "timeout":
      return { ok: false, kind: "timeout", error: `workflow did not finish within ${deadlineMs} ms`, durationMs };
    case "error": {
      const error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      return { ok: false, kind: workflowFailureKind(outcome.error), error, durationMs };
    }
  }
}
