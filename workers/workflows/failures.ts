/**
 * How a workflow call failed, decided in one place for both runtimes (Worker Loader and dispatch). A failure reaches
 * the platform only as an error message (across RPC or the dispatch protocol's JSON), so the message the budget guard
 * throws inside the isolate and the check that recognises it here are built from the same constant.
 */

export type WorkflowFailureKind = "timeout" | "threw" | "budget" | "bad_result" | "unavailable";

/** What the operation-budget tick (BUDGET_SOURCE in runner.ts) throws when a call runs out of operations. */
export const BUDGET_EXCEEDED_MESSAGE = "workflow exceeded its CPU budget";

/**
 * What the runtime throws when a call runs past its `limits.cpuMs` (production; local workerd accepts the limits but
 * does not enforce them): the same kind as the operation budget, since both are the call's CPU allowance.
 */
const CPU_LIMIT_MARKERS = ["exceeded CPU time limit", "exceeded resource limits"];

/**
 * workerd cancels a call whose isolate can never make progress (a promise nothing will resolve) with "…detected that
 * your Worker's code had hung and would never generate a response": for the caller, that call timed out.
 */
const HUNG_ISOLATE_MARKER = "code had hung";

/** The kind of a call that threw (or was rejected with) `error`. */
export function workflowFailureKind(error: unknown): Extract<WorkflowFailureKind, "budget" | "timeout" | "threw"> {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes(BUDGET_EXCEEDED_MESSAGE) || CPU_LIMIT_MARKERS.some((marker) => message.includes(marker))) return "budget";
  if (message.includes(HUNG_ISOLATE_MARKER)) return "timeout";
  return "threw";
}
