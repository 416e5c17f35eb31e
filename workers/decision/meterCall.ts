/**
 * A call to a user's meter object outside a decision (counter updates, identity links), where there is no fallback to
 * answer with: an object that throws (overloaded, restarting, unreachable) is a 503 with Retry-After — the call
 * changed nothing, or its transaction did not commit — not a 500.
 */
import { meterUnavailable } from "../errors";

export async function callMeter<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw meterUnavailable(error);
  }
}
