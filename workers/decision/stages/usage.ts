/**
 * After the response, with the triggers: the overage units the meter object billed for a request (past the limit of an
 * `overage: overflow` setting that reports to a Stripe meter event, and past what it billed before this period),
 * queued for usage-based billing (payments/usage.ts) — one message per counter and request; and a paid pay-per-crawl
 * charge, invoiced the same way. A replay queues nothing (the first request did).
 */
import type { MeterReading, MeterRequest, PreparedSnapshot } from "../../engine";
import { overageReportsOf } from "../../engine/meters";
import type { Environment } from "../../services/tenancy";
import type { Configured, Identified, MeterOutcome } from "../context";
import type { Services } from "../services";
import { paymentRecorded, type Crawl } from "./crawl";

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

/**
 * With the triggers, when `settings.payPerCrawl.stripeMeterEvent` is set: the charge of a paid pay-per-crawl decision,
 * queued for usage-based billing like overage (payments/usage.ts) — its value in micro-units of the price's currency,
 * to the payer's customer record (a verified agent's operator is in the store's agents partition, `context.store`).
 * Only a charge the meter put on the ledger, once per logical request (the caller skips replays); x402 payments are
 * settled already and an `upto` authorization is not a charge.
 */
export function queueCrawlChargeReport(
  services: Services,
  context: Configured & Pick<Identified, "identity"> & { environment: Environment; surfaceSlug?: string; crawl?: Crawl; meter: MeterOutcome },
  eventId: string,
): void {
  const { crawl, prepared, environment, identity, store, surfaceSlug } = context;
  const eventName = prepared.snapshot.payPerCrawl?.stripeMeterEvent;
  if (!eventName || crawl?.kind !== "paid" || crawl.method !== "crawl" || crawl.pending || !paymentRecorded(context.meter)) return;
  if (crawl.charged.micros <= 0) return;
  services.reportUsageLater({
    kind: "usage",
    organizationId: environment.organizationId,
    environmentId: environment.id,
    identifier: identity.identifier,
    counterId: `crawl:${surfaceSlug ?? ""}`,
    eventName,
    value: crawl.charged.micros,
    eventId,
    store,
  });
}
