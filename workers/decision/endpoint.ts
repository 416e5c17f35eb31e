/**
 * Endpoint workflows: `ANY /api/v1/envs/{environmentId}/endpoints/{path…}` runs the endpoint workflow bound to that
 * path in the environment's deployed version. Access is checked with the `X-MOS-Key` header against the workflow's
 * level (`none`, `publishable` = a publishable or secret key of this environment, `secret`; unset means `secret`).
 * The identity is anonymous (a fresh `anon_…` id) unless `X-MOS-User-Jwt` carries a JWT that the environment's auth
 * methods verify. The workflow's Response is returned as is; a failure is a 531 (endpoints have no fallback body).
 */
import { classifyBot, type PreparedSnapshot } from "../engine";
import type { SnapshotWorkflow } from "../engine/snapshot";
import { testGroup100 } from "../engine/testGroup";
import type { ResolvedIdentity } from "../engine/types";
import { ApiError } from "../errors";
import { verifyUserJwt } from "../identity/jwt";
import { mintAnonymousIdentifier } from "../identity/resolveIdentity";
import { newId } from "../lib/ids";
import { utf8ByteLength } from "../lib/json";
import { storeOf, type Environment } from "../services/tenancy";
import type { EndpointArgs } from "../workflows/authorTypes";
import { DEFAULT_DEADLINE_MS } from "../workflows/runner";
import { counterSettingsOf, knownCounterSettings, scopedUtils } from "../workflows/scopedUtils";
import type { TransportFacts } from "./context";
import type { Services } from "./services";
import type { PendingTrigger } from "./workflowSession";
import { planDecision } from "./stages";
import { resolveSubject } from "./subject";
import { workflowContext, workflowIdentity } from "./workflowArgs";

export const MAX_ENDPOINT_BODY_BYTES = 1024 * 1024;
export const ENDPOINT_PREFIX = /^\/api\/v1\/envs\/[^/]+\/endpoints\/?/;

const trimSlashes = (path: string) => path.replace(/^\/+|\/+$/g, "");

/** The part of the request path after `/endpoints/`, without leading or trailing slashes. */
export function endpointPathOf(pathname: string): string {
  return trimSlashes(pathname.replace(ENDPOINT_PREFIX, ""));
}

/**
 * Throws the API error for a caller that may not invoke a workflow with this access level; otherwise the type of the
 * key the caller showed (null for an endpoint that needs none).
 */
export async function checkEndpointAccess(
  services: Pick<Services, "lookupApiKey">,
  environment: Environment,
  access: SnapshotWorkflow["access"],
  rawKey: string | undefined,
): Promise<"secret" | "publishable" | null> {
  const level = access ?? "secret";
  if (level === "none") return null;
  const token = rawKey?.trim();
  if (!token) throw new ApiError("invalid_api_key", `This endpoint needs a ${level} key in the X-MOS-Key header`);
  const key = await services.lookupApiKey(token);
  if (!key) throw new ApiError("invalid_api_key", "Invalid API key");
  if (key.environmentId !== environment.id) throw new ApiError("forbidden", "This key belongs to another environment");
  if (level === "secret" && key.type !== "secret") throw new ApiError("forbidden", "This endpoint needs a secret key (sk_…)");
  return key.type;
}

async function identityOf(jwt: string | undefined, workflowAuthMethods: Parameters<typeof verifyUserJwt>[1], now: number): Promise<ResolvedIdentity> {
  if (jwt) {
    const result = await verifyUserJwt(jwt.trim(), workflowAuthMethods, { now });
    if (!result.ok) throw new ApiError("invalid_jwt", `X-MOS-User-Jwt: ${result.reason}`);
    return { authType: "jwt", identifier: result.identifier, isAuthenticated: true, jwtClaims: result.claims, testGroup100: testGroup100(result.identifier) };
  }
  const identifier = mintAnonymousIdentifier();
  return { authType: "anonymous", identifier, isAuthenticated: false, jwtClaims: {}, testGroup100: testGroup100(identifier) };
}

/** What the route hands over: the environment and path from the URL, the request, and the platform's headers. */
export interface EndpointCall {
  environmentId: string;
  request: Request;
  /** `X-MOS-Key`: the caller's key, checked against the endpoint's access level. */
  key: string | undefined;
  /** `X-MOS-User-Jwt`: the user, verified with the environment's auth methods. */
  userJwt: string | undefined;
  transport: TransportFacts;
}

export async function runEndpointWorkflow(services: Services, call: EndpointCall): Promise<Response> {
  const { environment, prepared, workflow, path } = await endpointOf(services, call);
  const keyType = await checkEndpointAccess(services, environment, workflow.access, call.key);
  // A header of blanks is a JWT that is empty (401), not an absent one.
  const identity = await identityOf(call.userJwt, prepared.snapshot.authMethods, services.clock.now());
  const jwt = call.userJwt?.trim();
  const settings = await services.workflowEnvironment(environment.id).catch((error: unknown) => {
    // A secret that no longer decrypts (SECRETS_KEY changed), D1 down: the workflow cannot run, and an endpoint has no
    // fallback — a 531, recorded like any other failure of the workflow; logged as the platform's error.
    services.logger.error("workflow_settings_unavailable", { environmentId: environment.id, error: String(error) });
    const failure = { kind: "unavailable" as const, error: "the environment's workflow settings could not be read", durationMs: 0 };
    recordEndpointFailure(services, { environment, prepared, workflow, identity, request: call.request }, failure);
    throw new ApiError("workflow_error", `Endpoint workflow ${workflow.slug} failed (unavailable): ${failure.error}`);
  });
  const args = endpointArgs(services, call, identity, settings.values, path);

  // The platform's credentials stay with the platform: the workflow sees the request without X-MOS-Key.
  const raw = call.request;
  const headers = new Headers(raw.headers);
  headers.delete("x-mos-key");
  const hasBody = raw.method !== "GET" && raw.method !== "HEAD";
  const request = new Request(raw.url, { method: raw.method, headers, body: hasBody ? await raw.arrayBuffer() : null });

  const fired: PendingTrigger[] = [];
  const utils = endpointUtils(services, { environment, prepared, identity, jwt, transport: call.transport, fired });
  const runner = services.workflowRunner({ organizationId: environment.organizationId, environmentId: environment.id, egressHosts: settings.egressAllowList });
  const outcome = await runner.runEndpoint({ workflow, args, utils, deadlineMs: workflow.deadlineMs ?? DEFAULT_DEADLINE_MS }, request);
  if (fired.length > 0) {
    services.waitUntil(knownCounterSettings(utils).then((counters) => services.triggers.enqueue(prepared, environment, identity, fired, 0, counters)));
  }
  if (!outcome.ok) {
    services.logger.warn("endpoint_workflow_failed", { environmentId: environment.id, workflow: workflow.slug, kind: outcome.kind, error: outcome.error });
    recordEndpointFailure(services, { environment, prepared, workflow, identity, request }, outcome);
    // The customer's error text reaches only a secret-key caller (their own server); the record keeps it for everyone.
    const detail = keyType === "secret" ? `: ${outcome.error}` : "";
    throw new ApiError("workflow_error", `Endpoint workflow ${workflow.slug} failed (${outcome.kind})${detail}`);
  }
  // A fresh Response: the one from the isolate may have immutable headers, and the app sets X-Request-Id on it.
  return new Response(outcome.value.body, { status: outcome.value.status, statusText: outcome.value.statusText, headers: confinedHeaders(outcome.value.headers, environment.id, services.logger, new URL(request.url).pathname) });
}

/** The failed call's record (kind `endpoint`, outcome `failed`), with the run and the error. */
function recordEndpointFailure(
  services: Services,
  scope: { environment: Environment; prepared: PreparedSnapshot; workflow: SnapshotWorkflow; identity: ResolvedIdentity; request: Request },
  failure: { kind: string; error: string; durationMs: number },
): void {
  const { environment, prepared, workflow, identity, request } = scope;
  services.recordEvent({
    id: newId("evt"),
    organizationId: environment.organizationId,
    environmentId: environment.id,
    kind: "endpoint",
    identifier: identity.identifier,
    outcome: "failed",
    record: {
      workflows: [{ slug: workflow.slug, type: "endpoint", ok: false, kind: failure.kind, error: failure.error, durationMs: failure.durationMs }],
      method: request.method,
      path: new URL(request.url).pathname,
      versionId: prepared.versionId,
    },
  });
}

/** The environment, its deployed version and the endpoint workflow bound to the request's path, or 404. */
async function endpointOf(services: Services, call: EndpointCall): Promise<{ environment: Environment; prepared: PreparedSnapshot; workflow: SnapshotWorkflow; path: string }> {
  const path = endpointPathOf(new URL(call.request.url).pathname);
  const environment = await services.lookupEnvironment(call.environmentId);
  if (!environment) throw new ApiError("not_found", `Environment ${call.environmentId} not found`);
  if (!environment.deployedVersionId) throw new ApiError("not_found", "No configuration version is deployed to this environment");
  const prepared = await services.snapshot(environment.deployedVersionId);
  const workflow = prepared.snapshot.workflows.find((candidate) => candidate.type === "endpoint" && trimSlashes(candidate.path ?? "") === path);
  if (!workflow) throw new ApiError("not_found", `No endpoint workflow at ${path || "/"} in this environment`);
  return { environment, prepared, workflow, path };
}

function endpointArgs(services: Services, call: EndpointCall, identity: ResolvedIdentity, env: Record<string, string>, path: string): EndpointArgs {
  const { cf, userAgent, connectingIp } = call.transport;
  const bot = classifyBot({ userAgent, cf }, services.botVerdicts);
  const facts = { cf, userAgent, url: call.request.url, referer: call.request.headers.get("referer") ?? undefined, clientIp: connectingIp };
  return { identity: workflowIdentity(identity, bot), context: workflowContext(facts, bot), env, path };
}

/**
 * The endpoint's utils. Counters: the limits of this identity's plans, resolved (bots, middleware, Stripe products,
 * provisioning) only if the workflow uses utils.counters, exactly as a counter update from this caller would.
 */
function endpointUtils(
  services: Services,
  scope: { environment: Environment; prepared: PreparedSnapshot; identity: ResolvedIdentity; jwt: string | undefined; transport: TransportFacts; fired: PendingTrigger[] },
) {
  const { environment, prepared, identity, jwt, transport, fired } = scope;
  return scopedUtils({
    meter: services.meter,
    organizationId: environment.organizationId,
    store: storeOf(environment),
    prepared,
    identifier: () => identity.identifier,
    authenticated: () => identity.isAuthenticated,
    readOnly: false,
    resolveCounterSettings: async () => {
      const body = { identity: jwt ? { userJwt: jwt } : { anonymousIdentifier: identity.identifier } };
      const subject = await resolveSubject(services, { environment, keyType: "publishable" as const, body, transport });
      // Triggers the middleware fired go out with the endpoint's own.
      fired.push(...(subject.workflows?.triggers ?? []));
      // Middleware may rewrite the identity; limits of another identity must not be charged to this one.
      if (subject.identity.identifier !== identity.identifier) throw new Error("middleware changed the identity of an endpoint call");
      return counterSettingsOf(planDecision(services, subject).decision.meterRequests);
    },
    fireTrigger: (name, payload) => fired.push({ name, payload }),
  });
}

/**
 * Every tenant's endpoints share the platform's origin, so what one workflow returns must not reach the others: its
 * documents render sandboxed (scripts run in an opaque origin, away from this origin's cookies and responses), and
 * it may set cookies only for its own environment's endpoint path.
 */
export function confinedHeaders(headers: Headers, environmentId: string, logger: Services["logger"], requestPath = ""): Headers {
  const out = new Headers();
  const ownPath = `/api/v1/envs/${environmentId}/endpoints`;
  for (const [name, value] of headers) {
    if (name === "set-cookie") continue;
    if (ORIGIN_WIDE_HEADERS.has(name)) {
      logger.warn("endpoint_header_dropped", { environmentId, header: name, reason: "it acts on the platform's whole origin" });
      continue;
    }
    out.append(name, value);
  }
  for (const cookie of headers.getSetCookie()) {
    const { domain, path = defaultCookiePath(requestPath) } = cookieScope(cookie);
    const confined = !domain && (path === ownPath || path.startsWith(`${ownPath}/`));
    if (confined) out.append("set-cookie", cookie);
    else logger.warn("endpoint_cookie_dropped", { environmentId, reason: "Domain or Path outside the environment's endpoints" });
  }
  out.append("content-security-policy", "sandbox allow-scripts allow-forms allow-popups allow-downloads");
  out.set("x-content-type-options", "nosniff");
  return out;
}

/**
 * Response headers that act on the whole origin (every tenant's endpoints and the API), not on the one response:
 * wiping its storage, pinning transport or alternative services for the host, routing its error reports, widening
 * service-worker scopes, persisting client hints.
 */
const ORIGIN_WIDE_HEADERS: ReadonlySet<string> = new Set([
  "clear-site-data",
  "strict-transport-security",
  "alt-svc",
  "nel",
  "report-to",
  "reporting-endpoints",
  "origin-agent-cluster",
  "service-worker-allowed",
  "accept-ch",
  "critical-ch",
  "public-key-pins",
  "public-key-pins-report-only",
  "expect-ct",
  "set-cookie2",
  "set-login",
]);

/**
 * A Set-Cookie's Domain and Path as a browser reads them (RFC 6265 §5.2, and 6265bis): attribute names in any case,
 * spaces around the name and the value ignored (`Domain =x`, `PATH= /a`), the last attribute of a name winning, and a
 * Path that does not start with "/" ignored (the cookie then gets the default path). A Domain or Path value longer
 * than 1024 bytes, which browsers ignore, makes the cookie count as unconfined (reported as `domain`).
 */
function cookieScope(cookie: string): { domain: boolean; path: string | undefined } {
  let domain = false;
  let path: string | undefined;
  for (const attribute of cookie.split(";").slice(1)) {
    const equals = attribute.indexOf("=");
    const name = (equals < 0 ? attribute : attribute.slice(0, equals)).trim().toLowerCase();
    const value = equals < 0 ? "" : attribute.slice(equals + 1).trim();
    // Browsers ignore such a value, and how they count its bytes varies: a cookie that sends one is dropped whole.
    if ((name === "domain" || name === "path") && utf8ByteLength(value) > MAX_COOKIE_ATTRIBUTE_BYTES) return { domain: true, path: undefined };
    // Any Domain attribute, even an empty one, is refused: the platform's host is shared by every tenant.
    if (name === "domain") domain = true;
    else if (name === "path") path = value.startsWith("/") ? value : undefined;
  }
  return { domain, path };
}

/** Browsers ignore a cookie attribute whose value is longer than this (RFC 6265bis). */
const MAX_COOKIE_ATTRIBUTE_BYTES = 1024;

/** RFC 6265 §5.1.4: the request path up to its right-most "/" (or "/"). */
function defaultCookiePath(requestPath: string): string {
  const last = requestPath.lastIndexOf("/");
  return last <= 0 ? "/" : requestPath.slice(0, last);
}
