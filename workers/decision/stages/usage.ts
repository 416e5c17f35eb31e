/**
 * After the response, with the triggers: the overage units the meter object billed for a request (past the limit of an
 * `overage: overflow` setting that reports to a Stripe meter event, and past what it billed before this period),
 * queued for usage-based billing (payments/usage.ts) — one message per counter and request. A replay queues nothing
 * (the first request did).
 */
import type { MeterReading, MeterRequest, PreparedSnapshot } from "../../engine";
import { overageReportsOf } from "../../engine/meters";
import type { Environment } from "../../services/tenancy";
import type { Services } from "../services";

export function queueOverageReports(
  services: Services,
  scope: { environment: Environment; identifier: string; eventId: string },
  requests: readonly MeterRequest[],
  readings: Iterable<MeterReading>,
): void {
  const { environment, identifier, eventId } = scope;
  for (const { counterId, eventName, value } of overageReportsOf(requests, readings)) {
    services.reportUsageLater({ kind: "usage", organizationId: environment.organizationId, environmentId: environment.id, identifier, counterId, eventName, value, eventId });
  }
}

/**
 * The requests whose late answer is billed: those whose response granted on the meter fallback (`onMeterFailure:
 * open`), so the visitor used the unit the object consumed. A visitor refused on the fallback (`closed`) is not billed.
 */
export function grantedOnFallback(prepared: PreparedSnapshot, requests: readonly MeterRequest[]): MeterRequest[] {
  return requests.filter((request) => {
    const featureId = request.counterId.slice(request.counterId.indexOf(":") + 1, request.counterId.lastIndexOf("."));
    const definition = prepared.featureById.get(featureId)?.propertyBySlug.get("enabled")?.definition;
    return definition?.type === "enabled" && definition.onMeterFailure === "open";
  });
}
