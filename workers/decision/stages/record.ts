/**
 * Stage 12 — the decision record, written after the response (batched; see services/events.ts): who, which plans and
 * why, every feature's state, what was denied and why, the meter's status, every workflow run and the stage timings.
 * A surface decision is granted when everything it consumes was granted; an access check when nothing is denied.
 */
import { denials, type Denial } from "../../engine";
import type { Configured, DecisionRequest, Featured, Identified, Metered, Planned, WithOffers } from "../context";
import type { Services } from "../services";
import type { DecisionResponse } from "./response";
import { crawlRecordOf, paymentRecorded, type Crawled } from "./crawl";

export function recordDecision<C extends DecisionRequest & Configured & Identified & Planned & Metered & Featured & WithOffers & Partial<Crawled>>(
  services: Services,
  context: C,
  response: DecisionResponse,
): Denial[] {
  const { environment, identity, kind, surfaceSlug, decision, meter, features, overrides, bot, category, body, jwtError, workflows, prepared, offers, agentSignature } = context;
  const { crawl } = context;
  // A crawler that did not pay (or whose payment was not recorded) got none of what the surface consumes.
  const unpaid = crawl !== undefined && (crawl.kind === "refused" || !paymentRecorded(meter));
  const denied: Denial[] = unpaid
    ? (decision.surface?.consumes ?? []).map((entry) => ({ featureSlug: entry.featureSlug, property: entry.property, reason: "payment_required" }))
    : denials(features, {
        metered: new Set(decision.meterRequests.map((request) => request.counterId)),
        only: decision.surface?.consumes.map((entry) => ({ featureSlug: entry.featureSlug, property: entry.property })),
        overridden: overrides,
      });
  services.recordEvent({
    id: response.eventId,
    organizationId: environment.organizationId,
    environmentId: environment.id,
    kind,
    identifier: identity.identifier,
    surfaceSlug: surfaceSlug ?? null,
    outcome: denied.length ? "denied" : "granted",
    // Under an Idempotency-Key the event id is derived (eventIdFor): a replay writes the same record again.
    idempotent: context.idempotencyKey !== undefined,
    ...(meter.replayed ? { replayed: true } : {}),
    record: {
      identity: response.identity,
      bot: bot ?? null,
      // Only when a signature was sent: why it was refused, or whose it was.
      ...(agentSignature.status === "absent" ? {} : { agentSignature }),
      ...(crawl ? { crawl: crawlRecordOf(crawl, paymentRecorded(meter)) } : {}),
      category,
      plans: decision.planSlugs,
      planSources: decision.planSources,
      unknownPlanSlugs: decision.unknownPlanSlugs,
      features,
      ...(body.action !== undefined ? { action: body.action } : {}),
      denials: denied,
      // Surface decisions: the offers shown (the funnel's impressions) and, when any was considered, why others were not.
      ...(offers ? { offers: offers.impressions } : {}),
      ...(offers?.filtered.length ? { offersFiltered: offers.filtered } : {}),
      meter: meter.failure ? { status: "fallback", reason: meter.failure } : meter.readings ? { status: "ok" } : { status: "none" },
      workflows: workflows?.records ?? [],
      jwtError,
      timings: services.timing.toRecord(),
      versionId: prepared.versionId,
    },
  });
  return denied;
}
