/**
 * Fails a test that logs a console.error it did not declare with expectConsoleError / allowConsoleError
 * (test/support/console.ts), or that declared one which never came. The Worker's background work of the test is
 * awaited first, so what it logs counts for the test that started it.
 */
import { afterAll, afterEach, beforeEach } from "vitest";
import { waitForBackgroundWork } from "../support/background";
import { checkConsoleErrors, recordConsoleErrors } from "../support/console";

recordConsoleErrors();

/** Below vitest's 10 s hook timeout, so a stuck waitUntil is reported as such rather than as a slow hook. */
const BACKGROUND_WORK_LIMIT_MS = 8_000;

function failOn(problems: string[]): void {
  if (problems.length > 0) throw new Error(problems.join("\n\n"));
}

beforeEach(() => {
  failOn(checkConsoleErrors("before this test started (in a beforeAll hook, or background work of an earlier test)"));
});

afterEach(async () => {
  // Background work that fails is a failure of this test too, but its console.errors are reported first.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    waitForBackgroundWork().then(
      () => null,
      (error: unknown) => error,
    ),
    new Promise<Error>((resolve) => {
      timer = setTimeout(
        () => resolve(new Error(`the Worker's work after its responses (ctx.waitUntil) had not settled ${BACKGROUND_WORK_LIMIT_MS} ms after the test: a promise passed to waitUntil that never settles?`)),
        BACKGROUND_WORK_LIMIT_MS,
      );
    }),
  ]);
  clearTimeout(timer);
  failOn(checkConsoleErrors("during this test"));
  if (settled) throw settled;
});

afterAll(() => {
  failOn(checkConsoleErrors("after the last test of the file (in an afterAll hook)"));
});
