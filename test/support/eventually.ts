/**
 * Polls `read` until `done` holds or `timeoutMs` passes; returns the last value. Only for work no test hook can
 * await (Miniflare's own queue delivery): the Worker's work after a response is awaited with waitForBackgroundWork
 * (support/api.ts), and queue consumers are run directly with captured triggers (support/triggers.ts).
 */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 8000): Promise<T> {
  const started = Date.now();
  let value = await read();
  while (!done(value) && Date.now() - started < timeoutMs) {
    await scheduler.wait(100);
    value = await read();
  }
  return value;
}
