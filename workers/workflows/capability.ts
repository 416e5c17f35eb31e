/**
 * Capabilities for workflows that run outside the platform's isolate (the Workers for Platforms runtime). A
 * dispatched script cannot receive the `utils` RPC target, so the platform mints a short-lived token naming exactly
 * what this one call may touch — environment, egress allow-list and, when the call has utils, the tenant, version,
 * user data store and identity — and hands it to the namespace's outbound Worker as an outbound parameter, where the
 * customer's code never sees it. The outbound Worker passes it back with every request the script makes; the
 * platform trusts the token's claims, never the request's.
 *
 * HS256 JWS (jose) under a key derived from SECRETS_KEY with HKDF, so no new secret has to be provisioned and a
 * token signed for one deployment is worthless to another.
 */
import { jwtVerify, SignJWT } from "jose";
import { LRUCache } from "lru-cache";
import { secretsKeyBytes } from "../lib/secrets";
import { PERIODS } from "../../schema/config";
import type { CounterSettings } from "./scopedUtils";

/** The host a dispatched script's utils calls go to; only the outbound Worker ever sees it. */
export const UTILS_HOST = "utils.mos.internal";
export const PROBE_PATH = "/v1/probe";

const AUDIENCE = "mos-workflow-outbound";
const HKDF_INFO = "mos/workflow-capability/v1";
const TOKEN_TYPE = "mos-capability+jwt";
/**
 * Beyond the call's own deadline (tokens count whole seconds): enough for a slow-starting isolate, short enough that
 * a call the platform gave up on (and aborted) cannot keep using its utils for long.
 */
const GRACE_SECONDS = 5;

/** What a call's utils may reach: serializable, so the platform can rebuild the same scoped utils anywhere. */
export interface RemoteUtilsScope {
  organizationId: string;
  versionId: string;
  store: string;
  identifier: string;
  authenticated: boolean;
  readOnly: boolean;
  /** The request is an idempotent replay: counters read and consume nothing. */
  replaying?: boolean;
  /**
   * A redemption workflow: its custom-data writes are staged by the runtime that runs it and applied by the platform
   * only once it succeeded, so the remote side refuses them (and counters and identity links, as staged utils do).
   */
  staged?: boolean;
  /** Counters this call's request resolved for the user (`counterId` → limit, period, unique resources, overridden limit). */
  counters: [string, CounterSettings][];
}

export interface WorkflowCapability {
  environmentId: string;
  workflow: string;
  /** The environment's egress allow-list at the time of the call. */
  hosts: string[];
  /** Absent when the call has no platform utils (the script then answers "not available"). */
  utils?: RemoteUtilsScope;
  /** Set on the runner's probe call only: the platform echoes it, proving the outbound Worker is in the path. */
  probe?: string;
}

/** One deployment has one SECRETS_KEY; the bound only matters to tests that try several. */
const keys = new LRUCache<string, Promise<Uint8Array>>({ max: 16 });

function signingKey(secretsKey: string): Promise<Uint8Array> {
  let key = keys.get(secretsKey);
  if (!key) {
    key = (async () => {
      const material = await crypto.subtle.importKey("raw", secretsKeyBytes(secretsKey), "HKDF", false, ["deriveBits"]);
      const bits = await crypto.subtle.deriveBits(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new TextEncoder().encode(HKDF_INFO) },
        material,
        256,
      );
      return new Uint8Array(bits);
    })();
    keys.set(secretsKey, key);
  }
  return key;
}

export async function mintCapability(secretsKey: string, capability: WorkflowCapability, deadlineMs: number): Promise<string> {
  const lifetimeSeconds = Math.ceil(deadlineMs / 1000) + GRACE_SECONDS;
  return new SignJWT({ cap: capability })
    .setProtectedHeader({ alg: "HS256", typ: TOKEN_TYPE })
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
    .sign(await signingKey(secretsKey));
}

const KNOWN_PERIODS: ReadonlySet<string> = new Set(PERIODS);

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function isCounterEntry(value: unknown): value is [string, CounterSettings] {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== "string") return false;
  const settings = value[1] as Partial<CounterSettings> | null;
  return (
    typeof settings === "object" &&
    settings !== null &&
    typeof settings.limit === "number" &&
    typeof settings.period === "string" &&
    KNOWN_PERIODS.has(settings.period) &&
    typeof settings.uniqueResources === "boolean" &&
    (settings.overriddenLimit === undefined || isUnitCount(settings.overriddenLimit))
  );
}

/** A limit as configurations state them: a whole number of units the meter can count. */
function isUnitCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The well-formed `[counterId, settings]` entries of a serialized counter list (queue messages, tokens). */
export function counterEntriesOf(value: unknown): [string, CounterSettings][] {
  return Array.isArray(value) ? value.filter(isCounterEntry) : [];
}

function isScope(value: unknown): value is RemoteUtilsScope {
  const scope = value as Partial<RemoteUtilsScope> | null;
  return (
    typeof scope === "object" &&
    scope !== null &&
    typeof scope.organizationId === "string" &&
    typeof scope.versionId === "string" &&
    typeof scope.store === "string" &&
    typeof scope.identifier === "string" &&
    typeof scope.authenticated === "boolean" &&
    typeof scope.readOnly === "boolean" &&
    (scope.replaying === undefined || typeof scope.replaying === "boolean") &&
    (scope.staged === undefined || typeof scope.staged === "boolean") &&
    Array.isArray(scope.counters) &&
    scope.counters.every(isCounterEntry)
  );
}

/** The token's capability, or null when it is missing, forged, expired or malformed. */
export async function verifyCapability(secretsKey: string, token: unknown): Promise<WorkflowCapability | null> {
  // Large enough for the limits of a few thousand metered counters; anything beyond is not a token we minted.
  if (typeof token !== "string" || token.length === 0 || token.length > 512 * 1024) return null;
  try {
    const { payload } = await jwtVerify(token, await signingKey(secretsKey), {
      audience: AUDIENCE,
      algorithms: ["HS256"],
      typ: TOKEN_TYPE,
      requiredClaims: ["exp", "iat"],
      maxTokenAge: "10m",
    });
    const capability = payload.cap as Partial<WorkflowCapability> | undefined;
    if (!capability || typeof capability.environmentId !== "string" || typeof capability.workflow !== "string" || !isStringArray(capability.hosts)) return null;
    if (capability.utils !== undefined && !isScope(capability.utils)) return null;
    if (capability.probe !== undefined && typeof capability.probe !== "string") return null;
    return capability as WorkflowCapability;
  } catch {
    return null;
  }
}
