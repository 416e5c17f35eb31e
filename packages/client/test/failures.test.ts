/**
 * Failures as values: what each failure becomes (ClientError), which are retried and how often, what hasAccess answers
 * in each failure mode, timeouts, the caller's signal, Retry-After, and what createClient refuses outright. The
 * platform is real; a scripted fetch in front of it plays the network and the proxies that fail.
 */
import { createClient, isUnavailable, type AccessCheckRequest, type ClientError, type ClientOptions } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";
import { fetchWorker } from "../../../test/support/api";
import { MAX_RETRY_DELAY_MS, retryDelayMs } from "../src/retry";
import { parseRetryAfter } from "../src/errors";
import { randomId } from "../src/keys";
import { BASE_URL, clientSite, errorResponse, recording, scripted, tenant } from "./site";

const VISITOR = { identity: { anonymousIdentifier: "visitor" } };
const options = (extra: Partial<ClientOptions>): ClientOptions => ({
  baseUrl: BASE_URL,
  apiKey: "sk_env_unknown_secret",
  failureMode: "open",
  retryBaseDelayMs: 0,
  fetch: fetchWorker,
  ...extra,
});

describe("the platform's errors", () => {
  it("are values with the platform's code, message and request id, never retried, never failed open", async () => {
    for (const failureMode of ["open", "closed"] as const) {
      const traffic = scripted(fetchWorker, []);
      const client = createClient(options({ failureMode, fetch: traffic.fetch, apiKey: "sk_env_nope_wrong" }));
      const result = await client.accessCheck(VISITOR);
      expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "api", status: 401, code: "invalid_api_key" } });
      if (result.ok || result.error.kind !== "api") throw new Error("expected an api error");
      expect(result.error.requestId).toMatch(/^req_/);
      expect(result.error.message).toEqual(expect.any(String));
      // The caller's bug is never access, whatever the failure mode.
      expect(client.hasAccess(result, "articles.enabled")).toBe(false);
      expect(client.property(result, "articles.enabled")).toBeUndefined();
      expect(traffic.requests).toHaveLength(1);
    }
  });

  it("carry the validation details", async () => {
    const org = await tenant();
    const client = createClient(options({ apiKey: org.preview.secretKey }));
    const result = await client.accessCheck({ identity: { anonymousIdentifier: "x" }, resource: "not an object" } as unknown as AccessCheckRequest);
    expect(result).toMatchObject({ ok: false, error: { kind: "api", status: 400, details: expect.arrayContaining([expect.objectContaining({ path: expect.any(String) })]) } });
  });

  it("a required workflow that failed (531) is final: not retried, not unavailable, not failed open", async () => {
    const document = clientSite();
    document.workflows.strict = { type: "provisioning", required: true, source: `export default () => { throw new Error("boom"); };` };
    const org = await tenant(document);
    const traffic = scripted(fetchWorker, []);
    const client = createClient(options({ apiKey: org.preview.secretKey, fetch: traffic.fetch }));
    const result = await client.surfaceDecision({ ...VISITOR, surfaceSlug: "article-page" });
    expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "api", status: 531, code: "workflow_error" } });
    expect(traffic.requests).toHaveLength(1);
    expect(client.hasAccess(result, "articles.enabled")).toBe(false);
  });
});

describe("an unreachable platform", () => {
  const unreachable = () => Promise.reject(new TypeError("fetch failed: connect ECONNREFUSED"));

  it("is a network error, tried 1 + retries times; hasAccess answers the failure mode", async () => {
    for (const [failureMode, expected] of [["open", true], ["closed", false]] as const) {
      let calls = 0;
      const client = createClient(options({ failureMode, retries: 3, fetch: () => (calls++, unreachable()) }));
      const result = await client.accessCheck(VISITOR);
      expect(result).toMatchObject({ ok: false, attempts: 4, failedOpen: expected, error: { kind: "network", message: "fetch failed: connect ECONNREFUSED" } });
      expect(calls).toBe(4);
      expect(client.hasAccess(result, "articles.enabled")).toBe(expected);
      expect(client.failureMode).toBe(failureMode);
    }
  });

  it("retries: 0 tries once; a call's own retries override the client's", async () => {
    let calls = 0;
    const client = createClient(options({ retries: 0, fetch: () => (calls++, unreachable()) }));
    expect(await client.accessCheck(VISITOR)).toMatchObject({ attempts: 1 });
    expect(await client.accessCheck(VISITOR, { retries: 1 })).toMatchObject({ attempts: 2 });
    expect(calls).toBe(3);
  });

  it("times out per attempt, even through a fetch that ignores signals", async () => {
    const hangs = scripted(fetchWorker, ["hang", "hang", "hang"]);
    const client = createClient(options({ timeoutMs: 20, retries: 2, fetch: hangs.fetch }));
    const result = await client.accessCheck(VISITOR);
    expect(result).toMatchObject({ ok: false, attempts: 3, failedOpen: true, error: { kind: "timeout" } });
    // Each attempt's request carried a signal that the deadline aborted.
    expect(hangs.requests).toHaveLength(3);
  });

  it("recovers when a retry gets through, and the result says how many attempts it took", async () => {
    const org = await tenant();
    const flaky = scripted(fetchWorker, [new TypeError("reset"), errorResponse(503, "service_unavailable")]);
    const client = createClient(options({ apiKey: org.preview.secretKey, fetch: flaky.fetch }));
    const result = await client.accessCheck(VISITOR);
    expect(result).toMatchObject({ ok: true, attempts: 3 });
  });
});

describe("retryable answers", () => {
  for (const status of [429, 500, 502, 503, 504]) {
    it(`${status} is retried, and unavailable`, async () => {
      const org = await tenant();
      const flaky = scripted(fetchWorker, [errorResponse(status, "scripted_failure")]);
      const client = createClient(options({ apiKey: org.preview.secretKey, fetch: flaky.fetch }));
      expect(await client.accessCheck(VISITOR)).toMatchObject({ ok: true, attempts: 2 });
      const failing = scripted(fetchWorker, [errorResponse(status, "x"), errorResponse(status, "x"), errorResponse(status, "x")]);
      const failed = await createClient(options({ apiKey: org.preview.secretKey, fetch: failing.fetch })).accessCheck(VISITOR);
      expect(failed).toMatchObject({ ok: false, attempts: 3, failedOpen: true, error: { kind: "api", status, requestId: "req_scripted" } });
    });
  }

  for (const status of [400, 403, 404, 409, 422]) {
    it(`${status} is not retried`, async () => {
      const failing = scripted(fetchWorker, [errorResponse(status, "x", { "Retry-After": "0" })]);
      const result = await createClient(options({ fetch: failing.fetch })).surfaceDecision({ ...VISITOR, surfaceSlug: "s" });
      expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "api", status } });
    });
  }

  it("an answer without the platform's error shape is an invalid_response: retried when its status is, unavailable", async () => {
    const org = await tenant();
    const gateway = scripted(fetchWorker, [new Response("<h1>Bad gateway</h1>", { status: 502, headers: { "Content-Type": "text/html" } })]);
    const client = createClient(options({ apiKey: org.preview.secretKey, fetch: gateway.fetch, retries: 0 }));
    const result = await client.accessCheck(VISITOR);
    expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: true, error: { kind: "invalid_response", status: 502 } });
    expect(await createClient(options({ apiKey: org.preview.secretKey, fetch: scripted(fetchWorker, [new Response("<h1>Bad gateway</h1>", { status: 502 })]).fetch })).accessCheck(VISITOR)).toMatchObject({ ok: true, attempts: 2 });

    const broken = scripted(fetchWorker, [new Response("{not json", { status: 200 })]);
    const garbled = await createClient(options({ apiKey: org.preview.secretKey, fetch: broken.fetch })).accessCheck(VISITOR);
    expect(garbled).toMatchObject({ ok: false, attempts: 1, error: { kind: "invalid_response", status: 200 } });
  });

  it("Retry-After is read (seconds) and kept on the error", async () => {
    const failing = scripted(fetchWorker, [errorResponse(503, "meter_unavailable", { "Retry-After": "0" })]);
    const result = await createClient(options({ fetch: failing.fetch, retries: 0 })).counterUpdate({ ...VISITOR, counterId: "c" });
    expect(result).toMatchObject({ ok: false, error: { kind: "api", code: "meter_unavailable", retryAfterSeconds: 0 } });
  });
});

describe("an answer that is not the platform's", () => {
  const html = (status: number) => new Response("<html>Sign in</html>", { status, headers: { "Content-Type": "text/html" } });

  it("is unavailable only with an outage's status (5xx, 429, 408); any other is a misconfiguration, never failed open", async () => {
    const invalid = (status: number): ClientError => ({ kind: "invalid_response", status, message: "x" });
    expect([500, 502, 503, 504, 531, 429, 408].map((status) => isUnavailable(invalid(status)))).toEqual(Array(7).fill(true));
    expect([200, 201, 301, 400, 401, 403, 404, 410].map((status) => isUnavailable(invalid(status)))).toEqual(Array(8).fill(false));

    // A wrong baseUrl answering its own 404 page, a login wall answering 200: not open, whatever the failure mode.
    for (const status of [404, 200]) {
      const wrongSite = scripted(fetchWorker, [html(status)]);
      const client = createClient(options({ failureMode: "open", fetch: wrongSite.fetch }));
      const result = await client.accessCheck(VISITOR);
      expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "invalid_response", status } });
      expect(client.hasAccess(result, "articles.enabled")).toBe(false);
    }
  });

  it("a 2xx decision without a features object and an identity is an invalid_response, not a decision that throws when read", async () => {
    const identity = { authType: "anonymous", identifier: "v", isAuthenticated: false, jwtClaims: {} };
    const bodies = [
      { status: "success" },
      { status: "success", identity, features: null },
      { status: "success", identity, features: [] },
      { status: "success", identity, features: "all" },
      { status: "success", features: {} },
      { status: "success", identity: null, features: {} },
    ];
    for (const body of bodies) {
      for (const call of ["accessCheck", "surfaceDecision"] as const) {
        const other = scripted(fetchWorker, [Response.json(body)]);
        const client = createClient(options({ failureMode: "open", fetch: other.fetch }));
        const result = await client[call]({ ...VISITOR, surfaceSlug: "article-page" });
        expect(result).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "invalid_response", status: 200 } });
        expect(client.hasAccess(result, "articles.enabled")).toBe(false);
        expect(client.property(result, "articles.enabled")).toBeUndefined();
      }
    }
  });

  it("hasAccess() and property() read the decision's own entries only: no path throws or finds Object's", async () => {
    const decision = {
      status: "success",
      identity: { authType: "anonymous", identifier: "v", isAuthenticated: false, jwtClaims: {} },
      features: { articles: { properties: { enabled: { type: "boolean", value: true, isFallback: false } } }, bare: {}, broken: null, odd: { properties: { enabled: "yes" } } },
    };
    const client = createClient(options({ fetch: scripted(fetchWorker, [Response.json(decision)]).fetch }));
    const result = await client.accessCheck(VISITOR);
    expect(result.ok).toBe(true);
    expect(client.hasAccess(result, "articles.enabled")).toBe(true);
    const paths = ["constructor.enabled", "__proto__.enabled", "toString.x", "hasOwnProperty.enabled", "articles.constructor", "articles.__proto__",
      "articles.toString", "bare.enabled", "broken.enabled", "odd.enabled", "videos.enabled", "articles.missing"] as const;
    for (const path of paths) {
      expect(client.hasAccess(result, path), path).toBe(false);
      expect(client.property(result, path), path).toBeUndefined();
    }
    expect(client.property(result, "nodot" as `${string}.${string}`)).toBeUndefined();
  });
});

describe("the caller's signal", () => {
  it("aborted before the call: no request, an aborted error, not failed open", async () => {
    let calls = 0;
    const client = createClient(options({ fetch: (request) => (calls++, fetchWorker(request)) }));
    const result = await client.accessCheck(VISITOR, { signal: AbortSignal.abort() });
    expect(result).toMatchObject({ ok: false, attempts: 0, failedOpen: false, error: { kind: "aborted" } });
    expect(calls).toBe(0);
    expect(client.hasAccess(result, "articles.enabled")).toBe(false);
  });

  it("aborts a hanging attempt, and the wait before a retry (Retry-After: 5 would hold the test past its timeout)", async () => {
    const controller = new AbortController();
    const hangs = scripted(fetchWorker, ["hang"]);
    const pending = createClient(options({ fetch: hangs.fetch, timeoutMs: 60_000 })).accessCheck(VISITOR, { signal: controller.signal });
    await Promise.resolve();
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, attempts: 1, error: { kind: "aborted" } });

    const waiting = new AbortController();
    const busy = scripted(fetchWorker, [errorResponse(503, "service_unavailable", { "Retry-After": "5" })]);
    const client = createClient(options({ fetch: async (request) => {
      const response = await busy.fetch(request);
      queueMicrotask(() => waiting.abort());
      return response;
    } }));
    expect(await client.accessCheck(VISITOR, { signal: waiting.signal })).toMatchObject({ ok: false, attempts: 1, error: { kind: "aborted" } });
    expect(busy.requests).toHaveLength(1);
    // Without an abortable wait, the 5 s Retry-After would outlast this timeout.
  }, 3_000);
});

describe("the retry delay", () => {
  it("is full jitter over base × 2^n, or Retry-After, never over 5 s", () => {
    expect(retryDelayMs(0, 100, undefined, () => 0.5)).toBe(50);
    expect(retryDelayMs(3, 100, undefined, () => 0.999)).toBe(799);
    expect(retryDelayMs(0, 100, undefined, () => 0)).toBe(0);
    expect(retryDelayMs(20, 100, undefined, () => 0.9)).toBe(MAX_RETRY_DELAY_MS);
    expect(retryDelayMs(0, 100, 2)).toBe(2_000);
    expect(retryDelayMs(0, 100, 0)).toBe(0);
    expect(retryDelayMs(0, 100, 3600)).toBe(MAX_RETRY_DELAY_MS);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("3")).toBe(3);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:04 GMT", now)).toBe(4);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now)).toBe(0);
  });
});

describe("Idempotency-Keys", () => {
  it("are UUIDs, or 32 random hex digits where crypto.randomUUID is missing (insecure pages, Node 18)", () => {
    expect(randomId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const fromRandomValues = randomId({ getRandomValues: (bytes) => bytes.fill(171) });
    expect(fromRandomValues).toBe("ab".repeat(16));
    const withoutWebCrypto = [randomId(null), randomId(null)];
    expect(withoutWebCrypto[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(withoutWebCrypto[1]).not.toBe(withoutWebCrypto[0]);
  });
});

describe("isUnavailable", () => {
  const api = (status: number): ClientError => ({ kind: "api", status, code: "x", message: "x", requestId: null });
  it("is the platform's failure, not the caller's", () => {
    expect(isUnavailable({ kind: "network", message: "x", cause: null })).toBe(true);
    expect(isUnavailable({ kind: "timeout", message: "x" })).toBe(true);
    expect(isUnavailable({ kind: "aborted", message: "x" })).toBe(false);
    expect([429, 500, 502, 503, 504, 520].map((status) => isUnavailable(api(status)))).toEqual([true, true, true, true, true, true]);
    expect([400, 401, 403, 404, 409, 410, 422, 531].map((status) => isUnavailable(api(status)))).toEqual(Array(8).fill(false));
  });
});

describe("createClient", () => {
  it("throws for programmer errors, at once", () => {
    expect(() => createClient(options({ baseUrl: "platform.example" }))).toThrow(/baseUrl must be an absolute URL/);
    expect(() => createClient(options({ baseUrl: "ftp://platform.example" }))).toThrow(/http/);
    expect(() => createClient(options({ apiKey: "" }))).toThrow(/apiKey/);
    expect(() => createClient({ ...options({}), failureMode: undefined as unknown as "open" })).toThrow(/failureMode must be "open" or "closed"/);
    expect(() => createClient(options({ timeoutMs: 0 }))).toThrow(/timeoutMs/);
    expect(() => createClient(options({ retries: -1 }))).toThrow(/retries/);
    expect(() => createClient(options({ retries: Number.NaN }))).toThrow(/retries/);
    expect(() => createClient(options({ timeoutMs: Number.POSITIVE_INFINITY }))).toThrow(/timeoutMs/);
  });

  it("a call's own retries and timeoutMs are checked the same way: a TypeError, no request", async () => {
    let calls = 0;
    const client = createClient(options({ fetch: () => (calls++, Promise.reject(new TypeError("unreachable"))) }));
    const invalid = [
      { retries: Number.NaN }, { retries: Number.POSITIVE_INFINITY }, { retries: -1 }, { retries: "2" as unknown as number },
      { timeoutMs: Number.NaN }, { timeoutMs: Number.POSITIVE_INFINITY }, { timeoutMs: 0 },
    ];
    for (const call of invalid) {
      await expect(client.accessCheck(VISITOR, call), JSON.stringify(call)).rejects.toThrow(TypeError);
      await expect(client.surfaceDecision({ ...VISITOR, surfaceSlug: "s" }, call)).rejects.toThrow(/CallOptions: (retries|timeoutMs) must be a finite number/);
    }
    expect(calls).toBe(0);
    // Valid ones still apply (a fraction of a retry rounds down, as at createClient).
    expect(await client.accessCheck(VISITOR, { retries: 1.9, timeoutMs: 50 })).toMatchObject({ ok: false, attempts: 2, error: { kind: "network" } });
  });

  it("keeps a base path, and uses globalThis.fetch by default", async () => {
    const seen: string[] = [];
    const original = globalThis.fetch;
    globalThis.fetch = (async (input: RequestInfo | URL) => {
      seen.push(input instanceof Request ? input.url : String(input));
      return errorResponse(404, "not_found");
    }) as typeof fetch;
    try {
      const client = createClient({ baseUrl: "https://example.com/platform/", apiKey: "pk_env_a_b", failureMode: "closed" });
      await client.accessCheck(VISITOR);
      await client.endpoint("x");
    } finally {
      globalThis.fetch = original;
    }
    expect(seen).toEqual(["https://example.com/platform/api/v1/access-checks", "https://example.com/platform/api/v1/envs/env_a/endpoints/x"]);
  });
});

describe("endpoint()", () => {
  const ENDPOINTS = `${BASE_URL}/api/v1/envs/env_a/endpoints/`;

  it("refuses a path that could leave the environment's endpoints, before sending the key anywhere", async () => {
    const traffic = recording(async () => new Response("ok"));
    const client = createClient(options({ apiKey: "sk_env_a_secret", fetch: traffic.fetch }));
    const escapes = [
      "../../env_other/endpoints/steal", "..", ".", "./x", "a/../../../admin", "a/./b", "%2e%2e/x", "%2E%2e/x", ".%2E/x", "%2e./x",
      "%2e/x", "x/%2E%2E", ".\t./x", ".\n./x", "a\\..\\..\\b", "a\\b", "a%2fb", "a%2F..%2Fb", "a%5cb", "a%5C..",
    ];
    for (const path of escapes) await expect(client.endpoint(path), path).rejects.toThrow(TypeError);
    expect(traffic.requests).toHaveLength(0);
  });

  it("keeps ordinary paths, dots inside names and anything in the query", async () => {
    const traffic = recording(async () => new Response("ok"));
    const client = createClient(options({ apiKey: "sk_env_a_secret", fetch: traffic.fetch }));
    for (const path of ["echo", "/a/b", "a..b/...", ".well-known/x", "v1.2/report", "echo?next=../../x&p=%2e%2e", "a%20b#../x"]) {
      expect((await client.endpoint(path)).status, path).toBe(200);
    }
    expect(traffic.requests.map((request) => request.url)).toEqual([
      `${ENDPOINTS}echo`, `${ENDPOINTS}a/b`, `${ENDPOINTS}a..b/...`, `${ENDPOINTS}.well-known/x`, `${ENDPOINTS}v1.2/report`,
      `${ENDPOINTS}echo?next=../../x&p=%2e%2e`, `${ENDPOINTS}a%20b#../x`,
    ]);
    expect(traffic.requests.every((request) => request.headers.get("X-MOS-Key") === "sk_env_a_secret")).toBe(true);
  });
});
