/** Decision records and audit entries, read through the admin events API. */
import { call, waitForBackgroundWork } from "./api";

/**
 * The events matching `query` (the admin events API's query string), at least `expected` of them. Records are written
 * after the response (ctx.waitUntil), so this waits for the test's requests to finish that work first.
 */
export async function eventsFor(key: string, query: string, expected = 1): Promise<any[]> {
  await waitForBackgroundWork();
  const result = await call("GET", `/api/v1/admin/events?${query}`, { key });
  if (result.status !== 200) throw new Error(`events ${query}: ${result.status} ${JSON.stringify(result.body)}`);
  const events: any[] = result.body.events;
  if (events.length < expected) throw new Error(`${events.length} events for ${query}, expected at least ${expected}`);
  return events;
}
