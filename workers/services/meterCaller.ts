/**
 * What the public meter routes (counter updates, identity links) share with a decision: the API key's environment,
 * its deployed version, the caller's identity and that identity's meter object. Kept apart from the decision
 * pipeline so these routes stay small and read the same snapshot cache.
 */
import type { Context } from "hono";
import { meterStub, userStoreKey, type MeterStub } from "../../durable-objects/meter/client";
import type { AppEnv } from "../context";
import { preparedSnapshotFor } from "../decision/snapshots";
import { resolveSubject, type Subject, type SubjectRequest } from "../decision/subject";
import { decide, type CreditRequest, type MeterRequest, type PreparedSnapshot, type ResolvedIdentity } from "../engine";
import { ApiError } from "../errors";
import type { Environment } from "./tenancy";
import { counterSettingsOf, type CounterSettings } from "../workflows/scopedUtils";

export interface MeterCaller {
  environment: Environment;
  prepared: PreparedSnapshot;
  store: string;
  identity: ResolvedIdentity;
  /** The identity's plans as a decision would see them (bots, middleware, Stripe products, provisioning workflows). */
  subject: Subject;
  /** The object of `identifier` among signed-in (`authenticated`) or anonymous identities. */
  stubFor(identifier: string, authenticated: boolean): MeterStub;
}

/** Auth (an environment's key), the deployed version and the subject, with the same rules as a decision. */
export async function meterCaller(c: Context<AppEnv>, body: SubjectRequest): Promise<MeterCaller> {
  const auth = c.get("auth");
  if (auth.kind !== "key") throw new ApiError("forbidden", "Counters are changed with an environment's API key");
  const { environment, key } = auth;
  if (!environment.deployedVersionId) {
    throw new ApiError("not_found", "No configuration version is deployed to this environment: create a version and deploy it");
  }
  const prepared = await preparedSnapshotFor(c.env.DB, environment.deployedVersionId);
  const subject = await resolveSubject(c, prepared, environment, key.type, body);
  const store = subject.store;
  return {
    environment,
    prepared,
    store,
    identity: subject.identity,
    subject,
    stubFor: (identifier, authenticated) => meterStub(c.env.METER, userStoreKey(environment.organizationId, store, authenticated), identifier),
  };
}

/** The engine's decision for the caller's plans, as an access check would make it. */
function decisionFor(caller: Pick<MeterCaller, "prepared" | "store" | "subject">, action?: string, resource?: Record<string, unknown>) {
  const { prepared, store, subject } = caller;
  return decide({
    prepared,
    category: subject.category,
    stripeProductIds: subject.stripeProductIds,
    workflowPlanSlugs: subject.workflowPlanSlugs,
    storeId: store,
    action,
    resource,
  });
}

/** The feature property a counter id (`{store}:{featureId}.{property}`) names in this caller's store, or 404. */
function counterProperty(caller: MeterCaller, counterId: string) {
  const { prepared, store } = caller;
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

/** What kind of counter an id names in this caller's store: a metered `enabled` property or a credits balance. */
export function counterKind(caller: MeterCaller, counterId: string): "metered" | "credits" {
  return counterProperty(caller, counterId).kind;
}

/**
 * The meter request the identity's plans make for `counterId` (limit, period, unique resources), found by running the
 * engine's plan and feature-state stages as an access check would.
 *   404 — the counter is not a metered `enabled` property of the deployed version in this environment's store;
 *   409 — it is, but none of the identity's plans meters it (on, off or unassigned for them).
 */
export function meterRequestFor(caller: MeterCaller, counterId: string): MeterRequest {
  const { feature, property } = counterProperty(caller, counterId);
  const decision = decisionFor(caller);
  const request = decision.meterRequests.find((candidate) => candidate.counterId === counterId);
  if (!request) {
    throw new ApiError(
      "conflict",
      `Counter ${counterId} (${feature.slug}.${property.slug}) is not metered for this identity: none of its plans (${decision.planSlugs.join(", ") || "none"}) gives it a metered limit`,
    );
  }
  return request;
}

/**
 * The credit request of a credits property for this identity: its plans' allowance and the price of `action` on
 * `resource` under the property's cost rules, consumed.
 */
export function creditRequestFor(caller: MeterCaller, creditId: string, action: string | undefined, resource: Record<string, unknown> | undefined): CreditRequest {
  const decision = decisionFor(caller, action, resource);
  const request = decision.creditRequests.find((candidate) => candidate.creditId === creditId);
  if (!request) throw new ApiError("not_found", `Credits ${creditId} not found`);
  return { ...request, consume: true };
}

/** Limits of every counter the subject's plans meter (what workflow `utils.counters` enforce outside a decision). */
export function counterSettingsFor(prepared: PreparedSnapshot, store: string, subject: Subject): Map<string, CounterSettings> {
  const { meterRequests } = decisionFor({ prepared, store, subject });
  return counterSettingsOf(meterRequests);
}
