/**
 * What the public meter routes (counter updates, identity links) share with a decision: the API key's environment,
 * its deployed version, the caller's identity and that identity's meter object. Kept apart from the decision
 * pipeline so these routes stay small and read the same snapshot cache.
 */
import type { Context } from "hono";
import { meterStub, type MeterStub } from "../../durable-objects/meter/client";
import type { AppEnv } from "../context";
import { preparedSnapshotFor } from "../decision/snapshots";
import { decide, type CreditRequest, type MeterRequest, type PreparedSnapshot, type ResolvedIdentity } from "../engine";
import { ApiError } from "../errors";
import { resolveIdentity } from "../identity/resolveIdentity";
import { getCustomerCached } from "./customers";
import { storeOf, type Environment } from "./tenancy";

export interface MeterCaller {
  environment: Environment;
  prepared: PreparedSnapshot;
  store: string;
  identity: ResolvedIdentity;
  stubFor(identifier: string): MeterStub;
}

/** Auth (an environment's key), the deployed version and the identity, with the same rules as a decision. */
export async function meterCaller(c: Context<AppEnv>, identityInput: unknown): Promise<MeterCaller> {
  const auth = c.get("auth");
  if (auth.kind !== "key") throw new ApiError("forbidden", "Counters are changed with an environment's API key");
  const { environment, key } = auth;
  if (!environment.deployedVersionId) {
    throw new ApiError("not_found", "No configuration version is deployed to this environment: create a version and deploy it");
  }
  const prepared = await preparedSnapshotFor(c.env.DB, environment.deployedVersionId);
  const resolved = await resolveIdentity(identityInput, { keyType: key.type, authMethods: prepared.snapshot.authMethods });
  if (!resolved.ok) throw new ApiError(resolved.code, resolved.message);
  const store = storeOf(environment);
  return {
    environment,
    prepared,
    store,
    identity: resolved.identity,
    stubFor: (identifier) => meterStub(c.env.METER, `${environment.organizationId}:${store}`, identifier),
  };
}

/**
 * The meter request the identity's plans make for `counterId` (limit, period, unique resources), found by running the
 * engine's plan and feature-state stages as an access check would.
 *   404 — the counter is not a metered `enabled` property of the deployed version in this environment's store;
 *   409 — it is, but none of the identity's plans meters it (on, off or unassigned for them).
 * Provisioning workflows are not run here (they belong to the decision pipeline): plans they would add are not seen.
 */
/** What kind of counter an id names in this caller's store: a metered `enabled` property or a credits balance. */
export function counterKind(caller: MeterCaller, counterId: string): "metered" | "credits" {
  const { prepared, store } = caller;
  const match = /^([^:]+):([^.]+)\.(.+)$/.exec(counterId);
  const feature = match && match[1] === store ? prepared.featureById.get(match[2]!) : undefined;
  const type = feature?.propertyBySlug.get(match![3]!)?.definition.type;
  if (type === "enabled") return "metered";
  if (type === "credits") return "credits";
  throw new ApiError(
    "not_found",
    `Counter ${counterId} not found: counter ids are {store}:{featureId}.{property} of a meterable or credits property (this environment's store is ${store})`,
  );
}

export async function meterRequestFor(c: Context<AppEnv>, caller: MeterCaller, counterId: string): Promise<MeterRequest> {
  const { prepared, store, identity, environment } = caller;
  counterKind(caller, counterId);
  const match = /^([^:]+):([^.]+)\.(.+)$/.exec(counterId)!;
  const feature = prepared.featureById.get(match[2]!)!;
  const property = feature.propertyBySlug.get(match[3]!)!;
  const customer = identity.isAuthenticated ? await getCustomerCached(c.env.DB, environment.organizationId, store, identity.identifier) : null;
  const decision = decide({ prepared, identity, stripeProductIds: customer?.stripeProductIds ?? [], storeId: store });
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
export async function creditRequestFor(
  c: Context<AppEnv>,
  caller: MeterCaller,
  creditId: string,
  action: string | undefined,
  resource: Record<string, unknown> | undefined,
): Promise<CreditRequest> {
  const { prepared, store, identity, environment } = caller;
  const customer = identity.isAuthenticated ? await getCustomerCached(c.env.DB, environment.organizationId, store, identity.identifier) : null;
  const decision = decide({ prepared, identity, stripeProductIds: customer?.stripeProductIds ?? [], storeId: store, action, resource });
  const request = decision.creditRequests.find((candidate) => candidate.creditId === creditId);
  if (!request) throw new ApiError("not_found", `Credits ${creditId} not found`);
  return { ...request, consume: true };
}
