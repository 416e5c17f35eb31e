/**
 * A call to a user's meter object outside a decision (counter updates, identity links), where there is no fallback to
 * answer with. An error the runtime marks as passing — `retryable` (a dropped connection, a restart) or `overloaded` —
 * is a 503 with Retry-After; any other error (thrown by the object's own code) stays a platform error (500, logged).
 */
import type { MeterObjectKey } from "../../durable-objects/meter/client";
import { meterUnavailable } from "../errors";

export async function callMeter<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const flags = (error ?? {}) as { retryable?: unknown; overloaded?: unknown };
    if (flags.retryable === true || flags.overloaded === true) {
      console.warn(JSON.stringify({ event: "meter_unavailable", overloaded: flags.overloaded === true, error: String(error) }));
      throw meterUnavailable(flags.overloaded === true);
    }
    throw error;
  }
}

/** Which meter object a resolved identity's data lives in: its organization, store (or partition) and class. */
export function meterKeyOf({ environment, store, identity }: { environment: { organizationId: string }; store: string; identity: { isAuthenticated: boolean; identifier: string } }): MeterObjectKey {
  return { organizationId: environment.organizationId, store, authenticated: identity.isAuthenticated, identifier: identity.identifier };
}
