/**
 * A console.error nobody expected fails the test: test/setup/console.ts records every console.error of a test —
 * the Worker under test runs in the test's isolate, so its errors are recorded too — and, after the test, fails it
 * for each error no declaration below matches, and for each expected error that never came.
 *
 * console.warn is not checked: the platform logs structured warnings by design (a dropped cookie, a refused trigger).
 */
import { format } from "node:util";

export type ErrorPattern = string | RegExp;

interface Declaration {
  pattern: ErrorPattern;
  /** Expected errors must happen at least once; allowed ones may. */
  required: boolean;
}

interface ConsoleErrorState {
  /** Every console.error since the last check, formatted like the console prints it. */
  logged: string[];
  declarations: Declaration[];
}

// On globalThis, not in this module: the setup file and the test file must see one record even if the module runner
// ever evaluates this module twice, and console.error is wrapped once per isolate (see recordConsoleErrors).
const STATE_KEY = Symbol.for("edge-monetization.test.console-errors");
const globals = globalThis as unknown as Record<symbol, ConsoleErrorState | undefined>;
const state: ConsoleErrorState = (globals[STATE_KEY] ??= { logged: [], declarations: [] });

const matches = (line: string, pattern: ErrorPattern) => (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line));

/**
 * Declares that this test logs a console.error matching `pattern` (a substring or a regular expression), at least
 * once; the test fails if none came. Returns the matching lines logged so far, for assertions on their content.
 */
export function expectConsoleError(pattern: ErrorPattern): { readonly lines: string[] } {
  state.declarations.push({ pattern, required: true });
  return {
    get lines() {
      return state.logged.filter((line) => matches(line, pattern));
    },
  };
}

/**
 * Tolerates console.errors matching `pattern` in this test without requiring them: for tests whose inputs are
 * generated (a fuzz sweep) and may or may not reach the path that logs. Prefer expectConsoleError.
 */
export function allowConsoleError(pattern: ErrorPattern): void {
  state.declarations.push({ pattern, required: false });
}

/** Wraps console.error (once per isolate) so every call is recorded instead of printed. */
export function recordConsoleErrors(): void {
  const WRAPPED = Symbol.for("edge-monetization.test.console-error-wrapped");
  const consoleObject = console as Console & { [WRAPPED]?: true };
  if (consoleObject[WRAPPED]) return;
  // Not vi.spyOn: a test's vi.restoreAllMocks() would take the recorder away for the rest of the file.
  console.error = (...args: unknown[]) => {
    state.logged.push(format(...args));
  };
  consoleObject[WRAPPED] = true;
}

/**
 * Compares what was logged with what was declared, then forgets both. Returns the problems (empty when the test
 * logged exactly what it declared); `when` says where in the run the errors were logged.
 */
export function checkConsoleErrors(when: string): string[] {
  const { logged, declarations } = state;
  state.logged = [];
  state.declarations = [];
  const problems: string[] = [];
  for (const line of logged) {
    if (!declarations.some((declaration) => matches(line, declaration.pattern))) problems.push(`unexpected console.error ${when}:\n${line}`);
  }
  for (const declaration of declarations) {
    if (declaration.required && !logged.some((line) => matches(line, declaration.pattern))) {
      problems.push(`expected a console.error matching ${String(declaration.pattern)} ${when}, none was logged`);
    }
  }
  return problems;
}

