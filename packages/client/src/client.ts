/**
 * createClient: the decision API with a deadline per attempt, retries only where they are safe, failures as values and
 * an explicit failure mode; the admin API as a typed openapi-fetch client. Both are openapi-fetch over the paths
 * generated from the platform's OpenAPI document, so a request body that drifts from the platform's schema is a type
 * error here.
 */
import createOpenApiClient, { type Client } from "openapi-fetch";
import { describe, errorFromResponse, isUnavailable, parseRetryAfter, type ClientError } from "./errors";
import { environmentIdOfKey, randomId } from "./keys";
import { attemptDeadline, isRetryable, RETRYABLE_STATUSES, retryDelayMs, sleep } from "./retry";
import type { paths } from "./schema";
import type {
  AccessCheckRequest,
  AccessCheckResponse,
  CounterUpdateRequest,
  CounterUpdateResponse,
  IdentityLinkRequest,
  IdentityLinkResponse,
  OfferRedemptionRequest,
  OfferRedemptionResponse,
  PropertyState,
  ReservationFinalizeRequest,
  ReservationReleaseRequest,
  ReservationRequest,
  ReservationResponse,
  ReservationSettleResponse,
  X402SettlementRequest,
  X402SettlementResponse,
  SurfaceDecisionRequest,
  SurfaceDecisionResponse,
} from "./types";

export type FetchLike = (request: Request) => Promise<Response>;

export interface ClientOptions {
  /** The platform's origin, e.g. "https://monetization.example.com" (with a service binding, any URL: only its path is routed). */
  baseUrl: string;
  /** `sk_`/`pk_` for decisions; `ok_`/`sk_` (or the operator token) for the admin API. */
  apiKey: string;
  /** Required: what hasAccess() answers when the platform cannot be reached. See the README, "Failure modes". */
  failureMode: "open" | "closed";
  /** Per attempt; default 2000. */
  timeoutMs?: number;
  /** Extra attempts for retryable failures; default 2. */
  retries?: number;
  /** Default 100: delay = base × 2^attempt with full jitter, or Retry-After (at most 5 s). */
  retryBaseDelayMs?: number;
  /** A service binding, a test double; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Sent on every call (e.g. a proxy's X-MOS-Proxy-Version). */
  headers?: Record<string, string>;
  /** Default "Bearer". "PublicBearer" is what a proxy relaying a visitor's call sends (decision calls only). */
  authorizationScheme?: "Bearer" | "PublicBearer";
}

export interface CallOptions {
  /** Aborts the call, including the wait between attempts (the result is an `aborted` error). */
  signal?: AbortSignal;
  timeoutMs?: number;
  retries?: number;
  /** Surface decisions, counter updates, identity links, reservations: the Idempotency-Key of every attempt (default: a new UUID per call). */
  idempotencyKey?: string;
  /** Access checks and surface decisions: ask for the decision's trace (secret keys only). */
  trace?: boolean;
}

export type Result<T> =
  | { ok: true; data: T; requestId: string | null; attempts: number }
  | {
      ok: false;
      error: ClientError;
      attempts: number;
      /** failureMode is "open" and the failure is the platform's (unavailable), not the caller's. */
      failedOpen: boolean;
    };

export type PropertyPath = `${string}.${string}`;

export interface MonetizationClient {
  accessCheck(body: AccessCheckRequest, options?: CallOptions): Promise<Result<AccessCheckResponse>>;
  /** Consumes the surface's meters; retried under one Idempotency-Key, so a retry consumes nothing more. */
  surfaceDecision(body: SurfaceDecisionRequest, options?: CallOptions): Promise<Result<SurfaceDecisionResponse>>;
  counterUpdate(body: CounterUpdateRequest, options?: CallOptions): Promise<Result<CounterUpdateResponse>>;
  identityLink(body: IdentityLinkRequest, options?: CallOptions): Promise<Result<IdentityLinkResponse>>;
  /**
   * Secret keys only. Reserves units or credits for usage measured afterwards (`granted: false` when there is no
   * room); retried under one Idempotency-Key, so a retry reserves nothing more.
   */
  reserve(body: ReservationRequest, options?: CallOptions): Promise<Result<ReservationResponse>>;
  /** Settles a reservation on the actual amount. Retried as it is: a repeat of the same finalize answers the first one. */
  finalizeReservation(reservationId: string, body: ReservationFinalizeRequest, options?: CallOptions): Promise<Result<ReservationSettleResponse>>;
  /** Gives a reservation back unused. Retried as it is: a repeat answers the first release. */
  releaseReservation(reservationId: string, body: ReservationReleaseRequest, options?: CallOptions): Promise<Result<ReservationSettleResponse>>;
  /**
   * Secret keys only. Settles an x402 `upto` payment a surface decision was granted on (its `payment.id`) for the
   * actual cost, from "USD 0" (released, nothing charged) to its `maxAmount`. Retried as it is: a repeat of the same
   * amount answers the first settlement, and nothing is settled twice.
   */
  settleX402(paymentId: string, body: X402SettlementRequest, options?: CallOptions): Promise<Result<X402SettlementResponse>>;
  /** Secret keys only. */
  redeemOffer(body: OfferRedemptionRequest, options?: CallOptions): Promise<Result<OfferRedemptionResponse>>;
  /**
   * A custom endpoint of the key's environment (`/api/v1/envs/{environmentId}/endpoints/{path}`), the key in
   * `X-MOS-Key`. The workflow's Response whatever its status, redirects included (`redirect: "manual"` unless the init
   * says otherwise: a proxy passes them on); like fetch, it rejects when there is no answer (network failure, the
   * init's signal). No client timeout (the platform bounds an endpoint by its workflow's deadline); not retried (an
   * endpoint may do anything).
   */
  endpoint(path: string, init?: RequestInit & { userJwt?: string }): Promise<Response>;
  /** Whether the decision grants `feature.property`; for a failed call, `failedOpen`. */
  hasAccess(result: Result<AccessCheckResponse>, property: PropertyPath): boolean;
  property(result: Result<AccessCheckResponse>, property: PropertyPath): PropertyState | undefined;
  /** The typed admin API: `client.admin.GET("/api/v1/admin/…")`. GETs are retried; writes never are. */
  readonly admin: Client<paths>;
  readonly failureMode: "open" | "closed";
}

const DEFAULT_TIMEOUT_MS = 2_000;
const DEFAULT_RETRIES = 2;
const DEFAULT_RETRY_BASE_DELAY_MS = 100;

/** Checks a 2xx body before the caller reads it as T: a body that fails is an `invalid_response`. */
type BodyCheck = (body: object) => boolean;

/**
 * Decisions are read by hasAccess() and property() and by every integration through `data.features` and
 * `data.identity`: a 2xx without them (a wrong baseUrl answering some other JSON) is not a decision, and must not reach
 * them as one.
 */
const isDecision: BodyCheck = (body) => isRecord((body as { features?: unknown }).features) && isRecord((body as { identity?: unknown }).identity);

type Attempt = (init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<{ data?: unknown; error?: unknown; response: Response }>;

export function createClient(options: ClientOptions): MonetizationClient {
  const settings = validate(options);
  const { apiKey, failureMode } = options;
  const platformFetch: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const commonHeaders = options.headers ?? {};

  // Decision responses are read as text and parsed here, so that a body that is not JSON is an `invalid_response`
  // carrying its status rather than an exception indistinguishable from a network failure.
  const decisions = createOpenApiClient<paths>({
    baseUrl: settings.baseUrl,
    fetch: platformFetch,
    headers: { ...commonHeaders, Authorization: `${options.authorizationScheme ?? "Bearer"} ${apiKey}` },
  });

  const admin = createOpenApiClient<paths>({
    baseUrl: settings.baseUrl,
    fetch: (request) => (request.method === "GET" || request.method === "HEAD" ? retryingRead(request) : platformFetch(request)),
    headers: { ...commonHeaders, Authorization: `Bearer ${apiKey}` },
  });

  async function send<T>(
    call: CallOptions,
    attempt: Attempt,
    { extraHeaders = {}, conflictsRetry = false, check }: { extraHeaders?: Record<string, string>; conflictsRetry?: boolean; check?: BodyCheck } = {},
  ): Promise<Result<T>> {
    // Programmer errors, as at createClient: a NaN or Infinity here would otherwise retry forever or time out at once.
    const retries = Math.floor(countOption("CallOptions", "retries", call.retries, settings.retries, 0));
    const timeoutMs = countOption("CallOptions", "timeoutMs", call.timeoutMs, settings.timeoutMs, 1);
    const failed = (error: ClientError, attempts: number): Result<T> => ({
      ok: false,
      error,
      attempts,
      failedOpen: failureMode === "open" && isUnavailable(error),
    });
    for (let attempts = 1; ; attempts++) {
      if (call.signal?.aborted) return failed(abortedError(), attempts - 1);
      const outcome = await once<T>(attempt, extraHeaders, timeoutMs, call.signal, check);
      if (outcome.ok) return { ...outcome, attempts };
      const error = outcome.error;
      if (attempts > retries || !isRetryable(error, conflictsRetry)) return failed(error, attempts);
      const delay = retryDelayMs(attempts - 1, settings.retryBaseDelayMs, error.kind === "api" ? error.retryAfterSeconds : undefined);
      if (!(await sleep(delay, call.signal))) return failed(abortedError(), attempts);
    }
  }

  /** Reads the platform's admin API again after a transient failure; the caller's signal ends it at any point. */
  async function retryingRead(request: Request): Promise<Response> {
    for (let attempts = 1; ; attempts++) {
      const deadline = attemptDeadline(settings.timeoutMs, request.signal);
      let response: Response;
      try {
        response = await Promise.race([platformFetch(new Request(request, { signal: deadline.signal })), deadline.aborted]);
      } catch (cause) {
        deadline.release();
        if (request.signal.aborted || attempts > settings.retries) throw cause;
        if (!(await sleep(retryDelayMs(attempts - 1, settings.retryBaseDelayMs), request.signal))) throw cause;
        continue;
      }
      deadline.stopTimer();
      if (attempts > settings.retries || !RETRYABLE_STATUSES.has(response.status)) return response;
      deadline.release();
      await response.body?.cancel();
      const delay = retryDelayMs(attempts - 1, settings.retryBaseDelayMs, parseRetryAfter(response.headers.get("Retry-After")));
      if (!(await sleep(delay, request.signal))) throw request.signal.reason;
    }
  }

  const withIdempotencyKey = (call: CallOptions) => ({ "Idempotency-Key": call.idempotencyKey ?? randomId() });
  const traceQuery = (call: CallOptions) => (call.trace ? { query: { trace: "true" as const } } : {});

  const client: MonetizationClient = {
    failureMode,
    admin,
    accessCheck: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/access-checks", { body, params: traceQuery(call), parseAs: "text", ...init }), { check: isDecision }),
    surfaceDecision: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/surface-decisions", { body, params: traceQuery(call), parseAs: "text", ...init }), {
        extraHeaders: withIdempotencyKey(call),
        check: isDecision,
      }),
    counterUpdate: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/counter-updates", { body, parseAs: "text", ...init }), { extraHeaders: withIdempotencyKey(call) }),
    identityLink: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/identity-links", { body, parseAs: "text", ...init }), { extraHeaders: withIdempotencyKey(call) }),
    reserve: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/reservations", { body, parseAs: "text", ...init }), { extraHeaders: withIdempotencyKey(call) }),
    finalizeReservation: (reservationId, body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/reservations/{reservationId}/finalize", { params: { path: { reservationId } }, body, parseAs: "text", ...init })),
    releaseReservation: (reservationId, body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/reservations/{reservationId}/release", { params: { path: { reservationId } }, body, parseAs: "text", ...init })),
    settleX402: (paymentId, body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/x402-settlements/{paymentId}", { params: { path: { paymentId } }, body, parseAs: "text", ...init })),
    redeemOffer: (body, call = {}) =>
      send(call, (init) => decisions.POST("/api/v1/offer-redemptions", { body, parseAs: "text", ...init }), { conflictsRetry: true }),
    async endpoint(path, init = {}) {
      const { userJwt, signal, ...requestInit } = init;
      const environmentId = environmentIdOfKey(apiKey);
      if (environmentId === null) throw new TypeError("endpoint() needs an environment key (sk_… or pk_…): custom endpoints belong to an environment");
      const headers = new Headers(commonHeaders);
      new Headers(init.headers).forEach((value, name) => headers.set(name, value));
      headers.set("X-MOS-Key", apiKey);
      if (userJwt) headers.set("X-MOS-User-Jwt", userJwt);
      const url = endpointUrl(`${settings.baseUrl}/api/v1/envs/${encodeURIComponent(environmentId)}/endpoints/`, path);
      // Node's fetch streams a ReadableStream body only when told it is half-duplex; the other runtimes ignore it.
      const streamed = typeof ReadableStream === "function" && requestInit.body instanceof ReadableStream ? { duplex: "half" } : {};
      // No client timeout: the platform bounds every endpoint by its workflow's own deadline (531 past it), which may
      // well be longer than a decision's timeout. The caller's signal still ends it.
      return platformFetch(new Request(url, { redirect: "manual", ...requestInit, ...streamed, headers, signal: signal ?? null }));
    },
    hasAccess(result, path) {
      if (!result.ok) return result.failedOpen;
      const state = client.property(result, path);
      if (!state) return false;
      if (state.type === "meterable" || state.type === "credits") return state.hasAccess === true;
      if (state.type === "boolean") return state.value === true;
      return false;
    },
    property(result, path) {
      if (!result.ok) return undefined;
      const dot = path.indexOf(".");
      if (dot === -1) return undefined;
      // Own properties only: the path is the caller's string, and "constructor.enabled" must not find Object's.
      const feature = ownValue(result.data.features, path.slice(0, dot));
      const state = ownValue(ownValue(feature, "properties"), path.slice(dot + 1));
      return isRecord(state) ? (state as PropertyState) : undefined;
    },
  };
  return client;
}

type Outcome<T> = { ok: true; data: T; requestId: string | null } | { ok: false; error: ClientError };

/** One attempt under its deadline, its answer (or its absence) classified. */
async function once<T>(
  attempt: Attempt,
  headers: Record<string, string>,
  timeoutMs: number,
  callerSignal: AbortSignal | undefined,
  check: BodyCheck = () => true,
): Promise<Outcome<T>> {
  const deadline = attemptDeadline(timeoutMs, callerSignal);
  try {
    const { data, error, response } = await Promise.race([attempt({ signal: deadline.signal, headers }), deadline.aborted]);
    if (!response.ok) return { ok: false, error: errorFromResponse(response, error) };
    const parsed = parseJson(data);
    if (typeof parsed !== "object" || parsed === null) {
      return { ok: false, error: { kind: "invalid_response", status: response.status, message: `HTTP ${response.status} with a body that is not a JSON object` } };
    }
    if (!check(parsed)) {
      return { ok: false, error: { kind: "invalid_response", status: response.status, message: `HTTP ${response.status} with a body that is not the platform's answer` } };
    }
    return { ok: true, data: parsed as T, requestId: response.headers.get("X-Request-Id") };
  } catch (cause) {
    const endedBy = deadline.endedBy();
    if (endedBy === "caller") return { ok: false, error: abortedError() };
    if (endedBy === "timeout") return { ok: false, error: { kind: "timeout", message: `No answer within ${timeoutMs} ms` } };
    return { ok: false, error: { kind: "network", message: describe(cause), cause } };
  } finally {
    deadline.release();
  }
}

function parseJson(text: unknown): unknown {
  if (typeof text !== "string") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function ownValue(container: unknown, key: string): unknown {
  return isRecord(container) && Object.hasOwn(container, key) ? container[key] : undefined;
}

/**
 * The URL of a custom endpoint: `prefix` (…/endpoints/) and the caller's path, with its query. The key travels with
 * the request, so the path must not climb out of the environment's endpoints: the URL parser resolves `.` and `..`
 * segments, percent-encoded ones too (`%2e`, any case), strips tabs and newlines (`.\t.` is `..`) and reads `\` as `/`;
 * an encoded slash (`%2f`, `%5c`) would be one on a server that decodes before routing. All of these are refused, and
 * the parsed URL is checked to be under the prefix still.
 */
function endpointUrl(prefix: string, path: string): URL {
  const relative = path.replace(/^\/+/, "");
  const queryStart = relative.search(/[?#]/);
  const pathname = queryStart === -1 ? relative : relative.slice(0, queryStart);
  const refuse = (why: string) => new TypeError(`endpoint(): ${why} (got ${JSON.stringify(path)})`);
  if (/[\u0000-\u001f\u007f\\]/.test(pathname)) throw refuse("the path may not contain backslashes or control characters");
  if (/%(2f|5c)/i.test(pathname)) throw refuse("the path may not contain encoded slashes (%2f, %5c)");
  if (pathname.split("/").some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) throw refuse('the path may not contain "." or ".." segments');
  const url = new URL(prefix + relative);
  if (!url.pathname.startsWith(new URL(prefix).pathname)) throw refuse("the path must stay under the environment's endpoints");
  return url;
}

function abortedError(): ClientError {
  return { kind: "aborted", message: "The caller aborted the call" };
}

interface Settings {
  baseUrl: string;
  timeoutMs: number;
  retries: number;
  retryBaseDelayMs: number;
}

/** Programmer errors throw at once, at construction: they would otherwise surface as failures of every call. */
function validate(options: ClientOptions): Settings {
  let base: URL;
  try {
    base = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`createClient: baseUrl must be an absolute URL such as "https://monetization.example.com" (got ${JSON.stringify(options.baseUrl)})`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new TypeError(`createClient: baseUrl must be http(s) (got ${base.protocol})`);
  if (typeof options.apiKey !== "string" || options.apiKey.trim() === "") throw new TypeError("createClient: apiKey is required");
  if (options.failureMode !== "open" && options.failureMode !== "closed") {
    throw new TypeError(`createClient: failureMode must be "open" or "closed" (got ${JSON.stringify(options.failureMode)}): there is no default, see the README`);
  }
  return {
    baseUrl: `${base.origin}${base.pathname}`.replace(/\/+$/, ""),
    timeoutMs: countOption("createClient", "timeoutMs", options.timeoutMs, DEFAULT_TIMEOUT_MS, 1),
    retries: Math.floor(countOption("createClient", "retries", options.retries, DEFAULT_RETRIES, 0)),
    retryBaseDelayMs: countOption("createClient", "retryBaseDelayMs", options.retryBaseDelayMs, DEFAULT_RETRY_BASE_DELAY_MS, 0),
  };
}

/** A numeric option: `fallback` when absent; NaN, Infinity, a non-number or less than `minimum` is a programmer error. */
function countOption(where: string, name: string, value: number | undefined, fallback: number, minimum: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < minimum) throw new TypeError(`${where}: ${name} must be a finite number ≥ ${minimum} (got ${String(value)})`);
  return value;
}
