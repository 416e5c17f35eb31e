/**
 * What counter updates and reservations share: the counter a request names (`{store}:{featureId}.{property}` of a
 * meterable or credits property of the deployed version, else 404) and the meter request the identity's plans make
 * for it (else 409), from the same engine run a decision would make.
 */
import type { Decision, MeterRequest } from "../engine";
import { ApiError } from "../errors";
import type { Subject } from "./context";
import type { Services } from "./services";
import { planDecision } from "./stages";

/** The engine's decision for the subject's plans, as an access check would make it (priced for `action` on `resource`). */
export function planFor(services: Services, subject: Subject, action?: string, resource?: Record<string, unknown>) {
  return planDecision(services, { ...subject, surfaceSlug: undefined, body: { ...subject.body, action, resource } }).decision;
}

/** The feature property a counter id (`{store}:{featureId}.{property}`) names in the subject's store, or 404. */
export function counterProperty(subject: Subject, counterId: string) {
  const { prepared, store } = subject;
  const match = /^([^:]+):([^.]+)\.(.+)$/.exec(counterId);
  const feature = match && match[1] === store ? prepared.featureById.get(match[2]!) : undefined;
  const property = feature?.propertyBySlug.get(match![3]!);
  const type = property?.definition.type;
  if (feature && property && (type === "enabled" || type === "credits")) return { feature, property, kind: type === "enabled" ? ("metered" as const) : ("credits" as const) };
  throw new ApiError(
    "not_found",
    `Counter ${counterId} not found: counter ids are {store}:{featureId}.{property} of a meterable or credits property (this environment's store is ${store})`,
  );
}

export function counterKind(subject: Subject, counterId: string): "metered" | "credits" {
  return counterProperty(subject, counterId).kind;
}

/**
 * The meter request the identity's plans make for `counterId` (limit, period, unique resources): a metered one, or an
 * unlimited one (a plan's `on` over another plan's metered setting — counted, never refused).
 *   404 — the counter is not a metered `enabled` property of the deployed version in this environment's store;
 *   409 — it is, but none of the identity's plans meters it (plain on, off or unassigned for them).
 */
export function meterRequestFor(decision: Decision, subject: Subject, counterId: string): MeterRequest {
  const { feature, property } = counterProperty(subject, counterId);
  const isCounter = (candidate: MeterRequest) => candidate.counterId === counterId;
  const request = decision.countedMeterRequests.find(isCounter);
  if (!request) {
    throw new ApiError(
      "conflict",
      `Counter ${counterId} (${feature.slug}.${property.slug}) is not metered for this identity: none of its plans (${decision.planSlugs.join(", ") || "none"}) gives it a metered limit`,
    );
  }
  return request;
}
