/**
 * A record written after the response, by the flows that write their own (counter updates, reservations, x402
 * settlements). Under a derived id (an Idempotency-Key, a payment id) a retry writes the same id again: the
 * unique-constraint error then means the first attempt's record stands, not a failure.
 */
import { isUniqueConstraintError } from "../lib/d1Errors";
import type { EventInput } from "../services/events";
import type { Services } from "./services";

export function insertEventLater(
  services: Services,
  event: EventInput | Promise<EventInput>,
  onFailure: { log: string; idempotent: boolean; fields: Record<string, unknown> },
): void {
  const written = Promise.resolve(event).then((input) => services.insertEvent(input));
  services.waitUntil(
    written.catch((error: unknown) => {
      if (!(onFailure.idempotent && isUniqueConstraintError(error))) services.logger.error(onFailure.log, { ...onFailure.fields, error: String(error) });
    }),
  );
}
