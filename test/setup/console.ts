/**
 * Fails a test that logs a console.error it did not declare with expectConsoleError / allowConsoleError
 * (test/support/console.ts), or that declared one which never came. The Worker's background work of the test is
 * awaited first, so what it logs counts for the test that started it.
 */
import { afterAll, afterEach, beforeEach } from "vitest";
import { waitForBackgroundWork } from "../support/background";
import { checkConsoleErrors, recordConsoleErrors } from "../support/console";

recordConsoleErrors();

function failOn(problems: string[]): void {
  if (problems.length > 0) throw new Error(problems.join("\n\n"));
}

beforeEach(() => {
  failOn(checkConsoleErrors("before this test started (in a beforeAll hook, or background work of an earlier test)"));
});

afterEach(async () => {
  // Background work that fails is a failure of this test too, but its console.errors are reported first.
  const settled = await waitForBackgroundWork().then(
    () => null,
    (error: unknown) => error,
  );
  failOn(checkConsoleErrors("during this test"));
  if (settled) throw settled;
});

afterAll(() => {
  failOn(checkConsoleErrors("after the last test of the file (in an afterAll hook)"));
});
