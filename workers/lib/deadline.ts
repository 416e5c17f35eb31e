/** How a call raced against its deadline ended. */
export type DeadlineOutcome<T> =
  | { status: "value"; value: T }
  | { status: "error"; error: unknown }
  /** `late`: the abandoned call, which may still settle (the caller may act on it after moving on). */
  | { status: "timeout"; late: Promise<T> };

/**
 * Races `call` against a timer; never throws (a synchronous throw of `call` is an error too) and always clears the
 * timer. A call still running at the deadline is abandoned, not cancelled: cancelling is the caller's business (an
 * AbortSignal it gave the call), and the abandoned promise is handed back for that reason.
 */
export async function raceDeadline<T>(call: () => Promise<T>, deadlineMs: number): Promise<DeadlineOutcome<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), Math.max(0, deadlineMs));
  });
  const pending = new Promise<T>((resolve) => resolve(call()));
  try {
    // Wrapped, so a call whose value happens to equal the timer's marker is still a value.
    const winner = await Promise.race([pending.then((value) => ({ value })), expired]);
    return winner === "expired" ? { status: "timeout", late: pending } : { status: "value", value: winner.value };
  } catch (error) {
    return { status: "error", error };
  } finally {
    clearTimeout(timer);
  }
}
