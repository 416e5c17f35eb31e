/**
 * Endpoint workflows: `ANY /api/v1/envs/{environmentId}/endpoints/{path…}` runs the endpoint workflow bound to that
 * path in the environment's deployed version. Access is checked with the `X-MOS-Key` header against the workflow's
 * level (`none`, `publishable` = a publishable or secret key of this environment, `secret`; unset means `secret`).
 * The identity is anonymous (a fresh `anon_…` id) unless `X-MOS-User-Jwt` carries a JWT that the environment's auth
 * methods verify. The workflow's Response is read whole (bounded in time and size, never streamed through) and
 * returned with headers fit for the origin it is served on; a failure is a 531 (endpoints have no fallback body).
 */
import { classifyBot, type PreparedSnapshot } from "../engine";
import type { SnapshotWorkflow } from "../engine/snapshot";
import { testGroup100 } from "../engine/testGroup";
import type { ResolvedIdentity } from "../engine/types";
import { ApiError } from "../errors";
import { verifyUserJwt } from "../identity/jwt";
import { mintAnonymousIdentifier } from "../identity/resolveIdentity";
import { BodyTooLargeError, readBoundedBytes } from "../lib/boundedBody";
import { raceDeadline } from "../lib/deadline";
import { newId } from "../lib/ids";
import { utf8ByteLength } from "../lib/json";
import { storeOf, type Environment } from "../services/tenancy";
import type { EndpointArgs } from "../workflows/authorTypes";
import { workflowFailureKind } from "../workflows/failures";
import { DEFAULT_DEADLINE_MS, type WorkflowFailureKind } from "../workflows/runner";
import { counterSettingsOf, knownCounterSettings, scopedUtils } from "../workflows/scopedUtils";
import type { TransportFacts } from "./context";
import type { Services } from "./services";
import type { PendingTrigger } from "./workflowSession";
import { planDecision } from "./stages";
import { resolveSubject } from "./subject";
import { workflowContext, workflowIdentity } from "./workflowArgs";

export const MAX_ENDPOINT_BODY_BYTES = 1024 * 1024;
/** What an endpoint workflow may answer: a body of at most 1 MiB, at most 100 header lines of 32 KiB together. */
export const MAX_ENDPOINT_RESPONSE_BYTES = 1024 * 1024;
export const MAX_ENDPOINT_RESPONSE_HEADERS = 100;
export const MAX_ENDPOINT_RESPONSE_HEADER_BYTES = 32 * 1024;
/** Sent by the customer's own server-side proxy that serves endpoints first-party on their site (see isProxied). */
export const PROXY_VERSION_HEADER = "X-MOS-Proxy-Version";
/** The proxy's other header: the platform reads nothing from it (the workflow sees it), but no browser may send it. */
const PROXY_CLIENT_HEADER = "X-MOS-Proxy-Client";
const PROXY_HEADERS: readonly string[] = [PROXY_VERSION_HEADER, PROXY_CLIENT_HEADER].map((name) => name.toLowerCase());
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
  /** `X-MOS-Proxy-Version`: the customer's own proxy's marker (see isProxied). */
  proxyVersion: string | undefined;
  transport: TransportFacts;
}

export async function runEndpointWorkflow(services: Services, call: EndpointCall): Promise<Response> {
  refuseProxyHeaderPreflight(call.request);
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

  const request = await workflowRequest(call.request);
  const fired: PendingTrigger[] = [];
  const utils = endpointUtils(services, { environment, prepared, identity, jwt, transport: call.transport, fired });
  const runner = services.workflowRunner({ organizationId: environment.organizationId, environmentId: environment.id, egressHosts: settings.egressAllowList });
  const deadlineMs = workflow.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const ran = await runner.runEndpoint({ workflow, args, utils, deadlineMs }, request);
  const outcome = ran.ok ? await readWithinBounds(ran.value, deadlineMs, ran.durationMs) : ran;
  // After the body: a workflow may fire triggers while it streams.
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
  const { response, body } = outcome;
  const scope = {
    environmentId: environment.id,
    requestPath: new URL(request.url).pathname,
    requestedHeaders: request.headers.get("access-control-request-headers"),
    proxied: isProxied(call.proxyVersion),
  };
  // A fresh Response: the one from the isolate may have immutable headers, and the app sets X-Request-Id on it.
  return new Response(body, { status: response.status, statusText: response.statusText, headers: endpointHeaders(response.headers, scope, services.logger) });
}

/** The request as the workflow sees it: the caller's key, a platform credential, stays here. */
async function workflowRequest(raw: Request): Promise<Request> {
  const headers = new Headers(raw.headers);
  headers.delete("x-mos-key");
  const hasBody = raw.method !== "GET" && raw.method !== "HEAD";
  return new Request(raw.url, { method: raw.method, headers, body: hasBody ? await raw.arrayBuffer() : null });
}

type BoundedOutcome = { ok: true; response: Response; body: Uint8Array | null } | { ok: false; kind: WorkflowFailureKind; error: string; durationMs: number };

/**
 * The workflow's Response read whole within what is left of its deadline and within the size caps, before any of it
 * is sent: a failure then is still a clean 531, never a cut-off body, and a stream the workflow keeps open (or fills
 * forever) is cancelled instead of holding the request.
 */
async function readWithinBounds(response: Response, deadlineMs: number, spentMs: number): Promise<BoundedOutcome> {
  const headersOver = headerExcess(response.headers);
  if (headersOver) {
    response.body?.cancel().catch(() => {});
    return { ok: false, kind: "bad_result", error: headersOver, durationMs: spentMs };
  }
  if (!response.body) return { ok: true, response, body: null };
  const began = performance.now();
  const reader = response.body.getReader();
  const read = await raceDeadline(() => readBoundedBytes(reader, MAX_ENDPOINT_RESPONSE_BYTES), deadlineMs - spentMs);
  const durationMs = spentMs + performance.now() - began;
  if (read.status === "value") return { ok: true, response, body: read.value };
  // Not awaited: cancelling reaches into the workflow's isolate, and the answer must not wait on it.
  reader.cancel().catch(() => {});
  const late = { ok: false, kind: "timeout", error: `the response was not complete within ${deadlineMs} ms`, durationMs } as const;
  if (read.status === "timeout") return late;
  if (read.error instanceof BodyTooLargeError) return { ok: false, kind: "bad_result", error: `the response body is larger than ${MAX_ENDPOINT_RESPONSE_BYTES} bytes`, durationMs };
  // workerd ends a stream nothing will ever write to as a hung isolate: for the caller, that body is late too.
  const kind = workflowFailureKind(read.error);
  if (kind === "timeout") return late;
  return { ok: false, kind, error: `reading the response body failed: ${read.error instanceof Error ? read.error.message : String(read.error)}`, durationMs };
}

/** Why the response's headers are refused (too many lines, too many bytes), or undefined. */
function headerExcess(headers: Headers): string | undefined {
  let lines = 0;
  let bytes = 0;
  // Header values are byte strings: a character is a byte. Each Set-Cookie is a line of its own.
  for (const [name, value] of headers) {
    lines += 1;
    bytes += name.length + value.length;
  }
  if (lines > MAX_ENDPOINT_RESPONSE_HEADERS) return `the response has more than ${MAX_ENDPOINT_RESPONSE_HEADERS} headers`;
  if (bytes > MAX_ENDPOINT_RESPONSE_HEADER_BYTES) return `the response's headers are larger than ${MAX_ENDPOINT_RESPONSE_HEADER_BYTES} bytes`;
  return undefined;
}

/**
 * Proxy mode: the customer's own proxy (a Worker on their site) serves this environment's endpoints first-party,
 * `https://site.example/mos-endpoints/*` → `/api/v1/envs/{environmentId}/endpoints/*`, so what the workflow answers
 * acts on the customer's site, not on the platform's shared origin. The marker alone selects it, with no key: the
 * proxy forwards browsers' requests and holds none. That is safe because no browser can send the marker to this
 * origin. It is not a CORS-safelisted header, so a cross-origin request carrying it needs a preflight, the platform
 * refuses that preflight (refuseProxyHeaderPreflight), and no workflow's answer to another preflight may allow it
 * (allowNoProxyHeaders); simple requests and navigations carry no custom headers; and the tenants' pages on this
 * origin are sandboxed into opaque origins (confinedHeaders), so their requests are cross-origin too. Whoever else sends the marker — a server, a command-line client, a proxy on another
 * site — gets the unconfined cookies for itself or for its own site, never into a browser on the shared origin.
 */
function isProxied(marker: string | undefined): boolean {
  return Boolean(marker?.trim());
}

/**
 * The proxy's headers are for servers. On this origin the workflow would answer a preflight asking for them, and
 * could allow them: a browser page could then call an endpoint in proxy mode and have cookies set on the shared
 * origin. So the platform refuses such a preflight before any workflow sees it. `Access-Control-Request-Headers`
 * lists names separated by commas, in any case, with optional whitespace (Fetch standard).
 */
function refuseProxyHeaderPreflight(request: Request): void {
  if (request.method !== "OPTIONS") return;
  const requested = headerNames(request.headers.get("access-control-request-headers") ?? "");
  if (requested.some((name) => PROXY_HEADERS.includes(name.toLowerCase()))) {
    throw new ApiError("forbidden", `${PROXY_VERSION_HEADER} and ${PROXY_CLIENT_HEADER} are sent by the customer's server-side proxy, never by a browser`);
  }
}

/**
 * Refusing a preflight that asks for the proxy's headers is not enough: a browser caches every name a preflight's
 * answer allows, for as long as its `Access-Control-Max-Age`, and sends a later request with any of them without asking
 * again. A workflow could allow the marker in its answer to an innocent preflight, and a page could then call the
 * endpoint in proxy mode. So on the shared origin `Access-Control-Allow-Headers` never names the proxy's headers. A
 * `*` (any header, for requests without credentials) becomes the names this preflight asked for, without the proxy's:
 * the same grant for this request, and no wildcard in the cache for a later one with the marker to ride on. (It also
 * grants them to a credentialed request, for which `*` is a literal name: the workflow meant to allow every header.)
 */
function allowNoProxyHeaders(headers: Headers, requestedHeaders: string | null): void {
  const allowed = headers.get("access-control-allow-headers");
  if (allowed === null) return;
  const names = headerNames(allowed).flatMap((name) => (name === "*" ? headerNames(requestedHeaders ?? "") : [name]));
  const kept = names.filter((name) => !PROXY_HEADERS.includes(name.toLowerCase()));
  if (kept.length === 0) headers.delete("access-control-allow-headers");
  else headers.set("access-control-allow-headers", kept.join(", "));
}

/** A header's comma-separated list of names (Fetch standard): any case, optional whitespace, empty entries skipped. */
function headerNames(list: string): string[] {
  return list
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

/**
 * The workflow's headers for where the response is served. Through the customer's proxy they are the customer's
 * own site's, passed as they are: cookies for the site, origin-wide headers (a sign-out's Clear-Site-Data) for the
 * site, no sandbox. On the platform's shared origin they are confined (confinedHeaders). Either way `Vary` names the
 * proxy's marker, so a cache never serves one kind of answer for the other.
 */
function endpointHeaders(
  headers: Headers,
  scope: { environmentId: string; requestPath: string; requestedHeaders: string | null; proxied: boolean },
  logger: Services["logger"],
): Headers {
  const out = scope.proxied ? new Headers(headers) : confinedHeaders(headers, scope.environmentId, logger, scope.requestPath);
  if (!scope.proxied) allowNoProxyHeaders(out, scope.requestedHeaders);
  // The body was read whole: the runtime sets its length, not the workflow.
  out.delete("content-length");
  out.set("x-content-type-options", "nosniff");
  out.append("vary", PROXY_VERSION_HEADER);
  return out;
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
      // Unlimited counters (a plan's `on` over another's metered setting) count too, and never refuse.
      return counterSettingsOf(planDecision(services, subject).decision.countedMeterRequests);
    },
    fireTrigger: (name, payload) => fired.push({ name, payload }),
    payments: services.payments({ environment, prepared, store: storeOf(environment) }),
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
