/**
 * The Worker's work after its responses (ctx.waitUntil: decision records, triggers, a late meter answer) belongs to
 * the test that made the request. Every in-process call gets an execution context of its own, registered here, so a
 * test can wait for that work instead of sleeping, and test/setup/console.ts waits for it after each test — its
 * errors are then reported against the test that caused them, never the next one.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";

const open = new Set<ExecutionContext>();

/** An execution context for one call into the Worker, awaited by waitForBackgroundWork. */
export function trackedExecutionContext(): ExecutionContext {
  const ctx = createExecutionContext();
  open.add(ctx);
  return ctx;
}

/**
 * Waits until everything the Worker passed to ctx.waitUntil in this test's calls so far has settled (including work
 * that background work starts). Rejects with the first failure of that work.
 */
export async function waitForBackgroundWork(): Promise<void> {
  for (;;) {
    // A context leaves the set only once its work has settled, so a wait that gave up (the setup's time limit) or a
    // second wait running meanwhile never makes another wait return early or miss a failure.
    const contexts = [...open];
    if (contexts.length === 0) return;
    const results = await Promise.allSettled(contexts.map((ctx) => waitOnExecutionContext(ctx)));
    for (const ctx of contexts) open.delete(ctx);
    const failure = results.find((result) => result.status === "rejected");
    if (failure) throw failure.reason;
  }
}
