/**
 * Endpoint workflows at `ANY /api/v1/envs/{environmentId}/endpoints/{path…}`: routing, access levels with X-MOS-Key,
 * identity from X-MOS-User-Jwt, utils and env, the Response passed through as is, 531 on failure, body limit,
 * responses bounded in time and size, cookies confined on the shared origin and widened only through the customer's
 * own proxy.
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, fetchWorker, publish, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";

async function endpoint(environmentId: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: BodyInit } = {}) {
  const response = await fetchWorker(
    new Request(`http://platform.test/api/v1/envs/${environmentId}/endpoints/${path}`, { method: init.method ?? "GET", headers: init.headers, body: init.body }),
  );
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text
  }
  return { status: response.status, headers: response.headers, body };
}

const WORKFLOWS = {
  hello: {
    type: "endpoint",
    path: "hello",
    access: "none",
    source: `export default async (request: Request, { identity, path, env }: any) => new Response(JSON.stringify({
      method: request.method, body: await request.text(), path, authType: identity.authType, identifier: identity.identifier,
      sawKey: request.headers.has("x-mos-key"), proxy: request.headers.get("x-mos-proxy-version"), greeting: env.GREETING ?? null,
    }), { status: 201, headers: { "content-type": "application/json", "x-workflow": "hello" } });`,
  },
  length: { type: "endpoint", path: "length", access: "none", source: `export default async (request: Request) => new Response(String((await request.arrayBuffer()).byteLength));` },
  catalog: { type: "endpoint", path: "pub/catalog", access: "publishable", source: `export default () => Response.json({ items: [1, 2, 3] });` },
  admin: { type: "endpoint", path: "admin", access: "secret", source: `export default () => new Response("secret stuff", { headers: { "x-admin": "1" } });` },
  "default-access": { type: "endpoint", path: "unspecified", source: `export default () => new Response("ok");` },
  notes: {
    type: "endpoint",
    path: "notes",
    access: "none",
    source: `export default async (request: Request, { identity, utils }: any) => {
      if (request.method === "PUT") { await utils.customData.set("note", await request.text()); return new Response(null, { status: 204 }); }
      return Response.json({ who: identity.identifier, claims: identity.jwtClaims, note: await utils.customData.get("note") });
    };`,
  },
  meter: {
    type: "endpoint",
    path: "meter",
    access: "none",
    // The first call resolves the caller's plans and reaches the meter cold: more than the default 50 ms in a test.
    deadlineMs: 1000,
    source: `export default async (request: Request, { utils }: any) => {
      const counterId = new URL(request.url).searchParams.get("counter");
      try {
        const reading = await utils.counters.consume(counterId);
        return Response.json({ used: reading.consumedUnits, total: reading.totalUnits, hasAccess: reading.hasAccess });
      } catch (error) {
        return Response.json({ error: (error as Error).message }, { status: 409 });
      }
    };`,
  },
  page: {
    type: "endpoint",
    path: "page",
    access: "none",
    source: `export default () => {
      const headers = new Headers({ "content-type": "text/html" });
      headers.append("set-cookie", "site=1; Path=/");
      headers.append("set-cookie", "domain=1; Domain=platform.test");
      headers.append("set-cookie", "mine=1; Path=/api/v1/envs/" + "ENV_ID" + "/endpoints/page");
      headers.append("set-cookie", "default=1");
      // As browsers parse attributes (RFC 6265 §5.2): spaces around names and values, any case, the last one wins.
      headers.append("set-cookie", "spaced=1; Domain =platform.test");
      headers.append("set-cookie", "spacedpath=1; Path =/");
      headers.append("set-cookie", "upper=1; PATH=/");
      headers.append("set-cookie", "last=1; Path=/api/v1/envs/" + "ENV_ID" + "/endpoints; path=/");
      headers.append("set-cookie", "relative=1; Path=endpoints");
      // A browser ignores an attribute value over 1024 bytes: the earlier Path=/ would stand.
      headers.append("set-cookie", "long=1; Path=/; Path=/api/v1/envs/" + "ENV_ID" + "/endpoints/" + "x".repeat(1100));
      // Headers that act on the platform's whole origin.
      headers.set("clear-site-data", '"cookies", "storage"');
      headers.set("strict-transport-security", "max-age=31536000; includeSubDomains");
      headers.set("nel", '{"report_to":"x","max_age":86400}');
      headers.set("x-custom", "kept");
      return new Response("<script>document.cookie</script>", { headers });
    };`,
  },
  broken: { type: "endpoint", path: "broken", access: "none", source: `export default () => { throw new Error("kaput"); };` },
  "broken-internal": { type: "endpoint", path: "internal/broken", access: "publishable", source: `export default () => { throw new Error("kaput inside"); };` },
  "not-a-response": { type: "endpoint", path: "shape", access: "none", source: `export default () => ({ status: 200 });` },
  "slow-default": { type: "endpoint", path: "slow", access: "none", source: `export default () => new Promise((r) => setTimeout(() => r(new Response("late")), 300));` },
  "slow-allowed": {
    type: "endpoint",
    path: "slow-ok",
    access: "none",
    deadlineMs: 3000,
    source: `export default () => new Promise((r) => setTimeout(() => r(new Response("worth the wait")), 300));`,
  },
  // Responses are read whole, within the deadline and the size caps, before anything is sent.
  "stream-forever": {
    type: "endpoint",
    path: "bounded/forever",
    access: "none",
    source: `export default () => new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("partial")); } }));`,
  },
  "stream-trickle": {
    type: "endpoint",
    path: "bounded/trickle",
    access: "none",
    source: `export default () => new Response(new ReadableStream({ start(c) { setInterval(() => c.enqueue(new TextEncoder().encode(".")), 5); } }));`,
  },
  "stream-slow": {
    type: "endpoint",
    path: "bounded/slow-body",
    access: "none",
    deadlineMs: 400,
    source: `export default (request: Request) => {
      const closeAfter = Number(new URL(request.url).searchParams.get("ms"));
      return new Response(new ReadableStream({ start(c) {
        c.enqueue(new TextEncoder().encode("first "));
        setTimeout(() => { c.enqueue(new TextEncoder().encode("second")); c.close(); }, closeAfter);
      } }));
    };`,
  },
  "stream-endless": {
    type: "endpoint",
    path: "bounded/endless",
    access: "none",
    deadlineMs: 3000,
    source: `export default () => new Response(new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(64 * 1024)); } }));`,
  },
  sized: {
    type: "endpoint",
    path: "bounded/sized",
    access: "none",
    deadlineMs: 3000,
    source: `export default (request: Request) => new Response("x".repeat(Number(new URL(request.url).searchParams.get("bytes"))));`,
  },
  headers: {
    type: "endpoint",
    path: "bounded/headers",
    access: "none",
    source: `export default (request: Request) => {
      const query = new URL(request.url).searchParams;
      const headers = new Headers();
      for (let i = 0; i < Number(query.get("count")); i++) headers.append("x-h" + i, "v");
      if (query.has("bytes")) headers.set("x-big", "b".repeat(Number(query.get("bytes"))));
      return new Response("ok", { headers });
    };`,
  },
  // A sign-in: session cookies for the customer's whole site, meant to be served through the customer's own proxy.
  "sign-in": {
    type: "endpoint",
    path: "sign-in",
    access: "none",
    source: `export default (request: Request) => {
      const headers = new Headers({ "content-type": "text/html", "cache-control": "max-age=60" });
      headers.append("set-cookie", "session=abc; Path=/; HttpOnly; Secure; SameSite=Lax");
      headers.append("set-cookie", "site=1; Domain=site.example; Path=/");
      headers.append("set-cookie", "mine=1; Path=/api/v1/envs/" + "ENV_ID" + "/endpoints/sign-in");
      headers.set("clear-site-data", '"cache"');
      headers.set("vary", "Accept-Language");
      return new Response("<p>signed in</p>", { headers });
    };`,
  },
  // Answers every preflight as permissively as it can: the platform must not let it allow the proxy's headers.
  "cors-open": {
    type: "endpoint",
    path: "cors-open",
    access: "none",
    source: `export default (request: Request) => new Response(null, { status: 204, headers: {
      "access-control-allow-origin": request.headers.get("origin") ?? "*",
      "access-control-allow-credentials": "true",
      "access-control-allow-headers": request.headers.get("access-control-request-headers") ?? "",
      "access-control-allow-methods": "GET, POST",
    } });`,
  },
  // Allows whatever header names `?allow=` lists, unasked, for two hours: a browser would cache every one of them.
  "cors-sticky": {
    type: "endpoint",
    path: "cors-sticky",
    access: "none",
    source: `export default (request: Request) => new Response(null, { status: 204, headers: {
      "access-control-allow-origin": request.headers.get("origin") ?? "*",
      "access-control-allow-credentials": "true",
      "access-control-allow-headers": new URL(request.url).searchParams.get("allow") ?? "",
      "access-control-max-age": "7200",
    } });`,
  },
};

let org: TestOrganization;
let other: TestOrganization;
let signingKey: CryptoKey;

beforeAll(async () => {
  org = await createOrganization("Endpoints");
  other = await createOrganization("Endpoints other");
  const keys = await generateKeyPair("RS256", { extractable: true });
  signingKey = keys.privateKey;
  const document = helloWorld();
  document.workflows = structuredClone(WORKFLOWS);
  document.plans.premium.stripeProductIds = ["prod_premium"];
  document.workflows.page.source = document.workflows.page.source.replaceAll("ENV_ID", org.live.id);
  document.workflows["sign-in"].source = document.workflows["sign-in"].source.replaceAll("ENV_ID", org.live.id);
  document.authMethods = { "test-jwt": { publicKey: await exportSPKI(keys.publicKey), identifierClaim: "email" } };
  await publish(org.adminKey, document, [org.live.id]);
  await call("PUT", `/api/v1/admin/environments/${org.live.id}/variables/GREETING`, { key: org.live.secretKey, body: { value: "hi there" } });
});

describe("routing", () => {
  it("runs the workflow bound to the path and returns its Response as is", async () => {
    const result = await endpoint(org.live.id, "hello", { method: "POST", body: "ping", headers: { "x-mos-key": org.live.publishableKey } });
    expect(result.status).toBe(201);
    expect(result.headers.get("x-workflow")).toBe("hello");
    expect(result.headers.get("content-type")).toBe("application/json");
    expect(result.body).toEqual({
      method: "POST",
      body: "ping",
      path: "hello",
      authType: "anonymous",
      identifier: expect.stringMatching(/^anon_/),
      sawKey: false,
      proxy: null,
      greeting: "hi there",
    });
  });

  it("answers 404 with the error shape for an unknown environment, path, or an environment without a version", async () => {
    for (const [environmentId, path] of [
      ["env_0000000000000000", "hello"],
      [org.live.id, "nope"],
      [org.live.id, "hello/deeper"],
      [org.preview.id, "hello"],
    ] as const) {
      const result = await endpoint(environmentId, path);
      expect(result.status, `${environmentId}/${path}`).toBe(404);
      expect(result.body).toMatchObject({ status: "error", statusCode: 404, code: "not_found" });
    }
  });

  it("matches nested paths", async () => {
    const result = await endpoint(org.live.id, "pub/catalog", { headers: { "x-mos-key": org.live.publishableKey } });
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ items: [1, 2, 3] });
  });
});

describe("access levels", () => {
  const cases: [string, string, () => string | undefined, number, string?][] = [
    ["none without a key", "hello", () => undefined, 201],
    ["publishable without a key", "pub/catalog", () => undefined, 401, "invalid_api_key"],
    ["publishable with a made-up key", "pub/catalog", () => "pk_env_0000000000000000_00000000000000000000000000000000", 401, "invalid_api_key"],
    ["publishable with the publishable key", "pub/catalog", () => org.live.publishableKey, 200],
    ["publishable with the secret key", "pub/catalog", () => org.live.secretKey, 200],
    ["publishable with another environment's key", "pub/catalog", () => org.preview.publishableKey, 403, "forbidden"],
    ["publishable with another organization's key", "pub/catalog", () => other.live.secretKey, 403, "forbidden"],
    ["secret with the publishable key", "admin", () => org.live.publishableKey, 403, "forbidden"],
    ["secret with another environment's secret key", "admin", () => org.preview.secretKey, 403, "forbidden"],
    ["secret without a key", "admin", () => undefined, 401, "invalid_api_key"],
    ["secret with the secret key", "admin", () => org.live.secretKey, 200],
    ["unset (secret) with the publishable key", "unspecified", () => org.live.publishableKey, 403, "forbidden"],
    ["unset (secret) with the secret key", "unspecified", () => org.live.secretKey, 200],
  ];
  for (const [name, path, key, status, code] of cases) {
    it(`${name} → ${status}`, async () => {
      const value = key();
      const result = await endpoint(org.live.id, path, { headers: value ? { "x-mos-key": value } : {} });
      expect(result.status).toBe(status);
      if (code) expect(result.body).toMatchObject({ status: "error", statusCode: status, code });
    });
  }

  it("the secret endpoint's own headers and body come through", async () => {
    const result = await endpoint(org.live.id, "admin", { headers: { "x-mos-key": org.live.secretKey } });
    expect(result.headers.get("x-admin")).toBe("1");
    expect(result.body).toBe("secret stuff");
  });
});

describe("identity and utils", () => {
  const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(signingKey);

  it("identifies the user from X-MOS-User-Jwt and scopes custom data to them", async () => {
    const jwt = await sign({ sub: "42", email: "ada@example.com", premium: true });
    const put = await endpoint(org.live.id, "notes", { method: "PUT", body: "remember me", headers: { "x-mos-user-jwt": jwt } });
    expect(put.status).toBe(204);
    const mine = await endpoint(org.live.id, "notes", { headers: { "x-mos-user-jwt": jwt } });
    expect(mine.body).toEqual({ who: "ada@example.com", claims: expect.objectContaining({ premium: true }), note: "remember me" });
    const someoneElse = await endpoint(org.live.id, "notes", { headers: { "x-mos-user-jwt": await sign({ sub: "43", email: "bob@example.com" }) } });
    expect(someoneElse.body).toMatchObject({ who: "bob@example.com", note: null });
    const anonymous = await endpoint(org.live.id, "notes");
    expect(anonymous.body).toMatchObject({ who: expect.stringMatching(/^anon_/), note: null });
  });

  it("refuses an invalid JWT with 401", async () => {
    const result = await endpoint(org.live.id, "notes", { headers: { "x-mos-user-jwt": "not.a.jwt" } });
    expect(result.status).toBe(401);
    expect(result.body).toMatchObject({ status: "error", code: "invalid_jwt" });
  });
});

describe("failures and limits", () => {
  for (const [path, slug, kind] of [
    ["broken", "broken", "threw"],
    ["shape", "not-a-response", "threw"],
    ["slow", "slow-default", "timeout"],
  ] as const) {
    it(`a workflow that fails (${path}) answers 531, without the customer's error text for a caller with no secret key`, async () => {
      const result = await endpoint(org.live.id, path);
      expect(result.status).toBe(531);
      expect(result.body).toMatchObject({ status: "error", statusCode: 531, code: "workflow_error", message: `Endpoint workflow ${slug} failed (${kind})` });
    });
  }

  it("a secret key (the customer's own server) reads the workflow's error text; a publishable key does not", async () => {
    const withSecret = await endpoint(org.live.id, "internal/broken", { headers: { "x-mos-key": org.live.secretKey } });
    expect(withSecret.status).toBe(531);
    expect(withSecret.body.message).toBe("Endpoint workflow broken-internal failed (threw): kaput inside");
    const withPublishable = await endpoint(org.live.id, "internal/broken", { headers: { "x-mos-key": org.live.publishableKey } });
    expect(withPublishable.status).toBe(531);
    expect(withPublishable.body.message).toBe("Endpoint workflow broken-internal failed (threw)");
  });

  it("records a failed endpoint workflow as an event", async () => {
    await endpoint(org.live.id, "broken");
    const events = await eventsFor(org.live.secretKey, `kind=endpoint&outcome=failed&environmentId=${org.live.id}`);
    expect(events[0].record).toMatchObject({
      method: "GET",
      path: `/api/v1/envs/${org.live.id}/endpoints/broken`,
      workflows: [{ slug: "broken", ok: false, kind: "threw", error: "kaput" }],
    });
  });

  it("honours the workflow's own deadline", async () => {
    const result = await endpoint(org.live.id, "slow-ok");
    expect(result.status).toBe(200);
    expect(result.body).toBe("worth the wait");
  });

  it("refuses bodies over 1 MiB with 413", async () => {
    const result = await endpoint(org.live.id, "hello", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
    expect(result.status).toBe(413);
    expect(result.body).toMatchObject({ status: "error", code: "payload_too_large" });
    const justUnder = await endpoint(org.live.id, "length", { method: "POST", body: "y".repeat(1024 * 1024) });
    expect(justUnder.status).toBe(200);
    expect(justUnder.body).toBe(1024 * 1024);
  });

  it("is listed in the OpenAPI document", async () => {
    const document = await call("GET", "/openapi.json");
    expect(Object.keys(document.body.paths["/api/v1/envs/{environmentId}/endpoints/{path}"]).sort()).toEqual(["delete", "get", "patch", "post", "put"]);
  });
});

describe("endpoints share the platform's origin", () => {
  it("their documents render sandboxed, and they may set cookies only for their own environment's endpoints", async () => {
    const result = await endpoint(org.live.id, "page");
    expect(result.status).toBe(200);
    expect(result.headers.get("content-security-policy")).toBe("sandbox allow-scripts allow-forms allow-popups allow-downloads");
    expect(result.headers.get("x-content-type-options")).toBe("nosniff");
    // "relative" has no usable Path, so it gets the default path (the request's directory: this environment's endpoints).
    expect(result.headers.getSetCookie()).toEqual([`mine=1; Path=/api/v1/envs/${org.live.id}/endpoints/page`, "default=1", "relative=1; Path=endpoints"]);
    for (const header of ["clear-site-data", "strict-transport-security", "nel"]) expect(result.headers.get(header), header).toBeNull();
    expect(result.headers.get("x-custom")).toBe("kept");
  });
});

describe("responses are bounded in time and size", () => {
  const failedEvents = async (slug: string) =>
    (await eventsFor(org.live.secretKey, `kind=endpoint&outcome=failed&environmentId=${org.live.id}`)).filter((event: any) => event.record.workflows[0].slug === slug);

  it("a body stream that never ends answers 531 at the deadline, with nothing of the stream, recorded as a timeout", async () => {
    const started = Date.now();
    const result = await endpoint(org.live.id, "bounded/trickle");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.status).toBe(531);
    expect(result.body).toMatchObject({ status: "error", code: "workflow_error", message: "Endpoint workflow stream-trickle failed (timeout)" });
    const [event] = await failedEvents("stream-trickle");
    expect(event.record.workflows).toEqual([
      expect.objectContaining({ slug: "stream-trickle", ok: false, kind: "timeout", error: "the response was not complete within 50 ms" }),
    ]);
  });

  it("a body stream nothing will ever write to fails at once (the runtime ends the hung isolate), with nothing of the stream", async () => {
    const started = Date.now();
    const result = await endpoint(org.live.id, "bounded/forever");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.status).toBe(531);
    expect(result.body).toMatchObject({ status: "error", code: "workflow_error", message: "Endpoint workflow stream-forever failed (threw)" });
    const [event] = await failedEvents("stream-forever");
    expect(event.record.workflows).toEqual([expect.objectContaining({ ok: false, kind: "threw", error: expect.stringMatching(/^reading the response body failed: /) })]);
  });

  it("reading the body counts against the workflow's deadline", async () => {
    const inTime = await endpoint(org.live.id, "bounded/slow-body?ms=50");
    expect(inTime.status).toBe(200);
    expect(inTime.body).toBe("first second");
    const late = await endpoint(org.live.id, "bounded/slow-body?ms=1000");
    expect(late.status).toBe(531);
    expect(late.body.message).toBe("Endpoint workflow stream-slow failed (timeout)");
  });

  it("a body over 1 MiB answers 531 (bad_result); exactly 1 MiB comes through whole", async () => {
    const fits = await endpoint(org.live.id, `bounded/sized?bytes=${1024 * 1024}`);
    expect(fits.status).toBe(200);
    expect(fits.body).toHaveLength(1024 * 1024);
    const over = await endpoint(org.live.id, `bounded/sized?bytes=${1024 * 1024 + 1}`);
    expect(over.status).toBe(531);
    expect(over.body.message).toBe("Endpoint workflow sized failed (bad_result)");
    const [event] = await failedEvents("sized");
    expect(event.record.workflows).toEqual([expect.objectContaining({ kind: "bad_result", error: "the response body is larger than 1048576 bytes" })]);
  });

  it("an endless body stream is cut at 1 MiB, long before its deadline", async () => {
    const started = Date.now();
    const result = await endpoint(org.live.id, "bounded/endless");
    expect(result.status).toBe(531);
    expect(result.body.message).toBe("Endpoint workflow stream-endless failed (bad_result)");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("at most 100 headers of at most 32 KiB together", async () => {
    expect((await endpoint(org.live.id, "bounded/headers?count=99")).status).toBe(200);
    const tooMany = await endpoint(org.live.id, "bounded/headers?count=101");
    expect(tooMany.status).toBe(531);
    expect(tooMany.body.message).toBe("Endpoint workflow headers failed (bad_result)");
    expect((await endpoint(org.live.id, "bounded/headers?count=0&bytes=30000")).status).toBe(200);
    const tooLarge = await endpoint(org.live.id, "bounded/headers?count=0&bytes=40000");
    expect(tooLarge.status).toBe(531);
    const kinds = (await failedEvents("headers")).map((event: any) => event.record.workflows[0].error);
    expect(kinds.sort()).toEqual(["the response has more than 100 headers", "the response's headers are larger than 32768 bytes"]);
  });
});

describe("endpoints through the customer's own proxy", () => {
  const signIn = (headers: Record<string, string> = {}) => endpoint(org.live.id, "sign-in", { headers });
  // What the commercial proxy adds to the browser's request: the marker and the client, no key of any kind.
  const PROXY = { "x-mos-proxy-version": "1", "x-mos-proxy-client": "edge-proxy/1.0" };

  it("direct calls stay confined and sandboxed, whatever key they show", async () => {
    for (const [label, headers] of [
      ["no header", {}],
      ["a secret key", { "x-mos-key": org.live.secretKey }],
      ["a blank marker", { "x-mos-proxy-version": " " }],
      ["the proxy's client header without the marker", { "x-mos-proxy-client": "edge-proxy/1.0" }],
    ] as const) {
      const result = await signIn(headers);
      expect(result.status, label).toBe(200);
      expect(result.headers.getSetCookie(), label).toEqual([`mine=1; Path=/api/v1/envs/${org.live.id}/endpoints/sign-in`]);
      expect(result.headers.get("content-security-policy"), label).toBe("sandbox allow-scripts allow-forms allow-popups allow-downloads");
      expect(result.headers.get("clear-site-data"), label).toBeNull();
      expect(result.headers.get("x-content-type-options"), label).toBe("nosniff");
      expect(result.headers.get("vary"), label).toBe("Accept-Language, X-MOS-Proxy-Version");
      expect(result.headers.get("cache-control"), label).toBe("max-age=60");
    }
  });

  it("the marker alone (no key) lets the site's cookies and headers pass unconfined and unsandboxed", async () => {
    const result = await signIn(PROXY);
    expect(result.status).toBe(200);
    expect(result.headers.getSetCookie()).toEqual([
      "session=abc; Path=/; HttpOnly; Secure; SameSite=Lax",
      "site=1; Domain=site.example; Path=/",
      `mine=1; Path=/api/v1/envs/${org.live.id}/endpoints/sign-in`,
    ]);
    expect(result.headers.get("clear-site-data")).toBe('"cache"');
    expect(result.headers.get("content-security-policy")).toBeNull();
    expect(result.headers.get("x-content-type-options")).toBe("nosniff");
    expect(result.headers.get("vary")).toBe("Accept-Language, X-MOS-Proxy-Version");
    expect(result.headers.get("cache-control")).toBe("max-age=60");
    expect(result.body).toBe("<p>signed in</p>");
  });

  it("the marker raises no access level: the visitor's own X-MOS-Key still decides, and the workflow sees the marker", async () => {
    expect((await endpoint(org.live.id, "admin", { headers: PROXY })).status).toBe(401);
    expect((await endpoint(org.live.id, "admin", { headers: { ...PROXY, "x-mos-key": org.live.publishableKey } })).status).toBe(403);
    expect((await endpoint(org.live.id, "pub/catalog", { headers: { ...PROXY, "x-mos-key": org.live.publishableKey } })).status).toBe(200);
    const hello = await endpoint(org.live.id, "hello", { headers: { ...PROXY, "x-mos-key": org.live.publishableKey } });
    expect(hello.body).toMatchObject({ sawKey: false, proxy: "1" });
  });

  it("no browser may send the proxy's headers: a CORS preflight asking for one is refused before any workflow answers it", async () => {
    const preflight = (requested: string) =>
      endpoint(org.live.id, "cors-open", {
        method: "OPTIONS",
        headers: { origin: "https://evil.example", "access-control-request-method": "POST", "access-control-request-headers": requested },
      });
    for (const requested of [
      "x-mos-proxy-version",
      "X-MOS-Proxy-Version",
      "X-MOS-PROXY-VERSION",
      "content-type ,  x-mos-proxy-version  , x-mos-key",
      "x-mos-key,X-Mos-Proxy-Version",
      "x-mos-proxy-client",
      "content-type,\tX-MOS-Proxy-Client",
    ]) {
      const result = await preflight(requested);
      expect(result.status, requested).toBe(403);
      expect(result.body, requested).toMatchObject({ status: "error", code: "forbidden" });
      expect(result.headers.get("access-control-allow-origin"), requested).toBeNull();
      expect(result.headers.get("access-control-allow-headers"), requested).toBeNull();
    }
    // Other preflights are the workflow's to answer, and so is a name that merely starts like the marker.
    for (const requested of ["x-mos-key", "content-type, x-mos-user-jwt", "x-mos-proxy-versions"]) {
      const result = await preflight(requested);
      expect(result.status, requested).toBe(204);
      expect(result.headers.get("access-control-allow-headers"), requested).toBe(requested);
    }
  });
});

describe("endpoints' CORS answers never allow the proxy's headers on the shared origin", () => {
  // A browser caches every name an answer allows (Access-Control-Max-Age), and sends a later request with any of them
  // unasked: allowing the marker in an answer to an innocent preflight would let a page call the endpoint in proxy mode.
  const sticky = (allow: string, init: { method?: string; headers?: Record<string, string> } = {}) =>
    endpoint(org.live.id, `cors-sticky?allow=${encodeURIComponent(allow)}`, init);
  const preflight = (allow: string, requested = "x-foo", headers: Record<string, string> = {}) =>
    sticky(allow, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST", "access-control-request-headers": requested, ...headers },
    });

  it("drops the proxy's names from Access-Control-Allow-Headers: alone, in a list, in any case and spacing", async () => {
    for (const [allow, expected] of [
      ["x-mos-proxy-version", null],
      ["X-MOS-Proxy-Version", null],
      ["x-foo, x-mos-proxy-version", "x-foo"],
      ["x-foo,X-MOS-PROXY-VERSION , \tx-Mos-Proxy-Client,x-bar", "x-foo, x-bar"],
      ["x-mos-proxy-client", null],
      [" , x-mos-proxy-version ,", null],
      // Names that merely start like the marker, and the workflow's own list, stand.
      ["x-mos-proxy-versions, content-type", "x-mos-proxy-versions, content-type"],
      ["x-foo", "x-foo"],
    ] as const) {
      const result = await preflight(allow);
      expect(result.status, allow).toBe(204);
      expect(result.headers.get("access-control-allow-headers"), allow).toBe(expected);
      expect(result.headers.get("access-control-max-age"), allow).toBe("7200");
      expect(result.headers.get("access-control-allow-origin"), allow).toBe("https://evil.example");
    }
  });

  it("replaces a wildcard with the names this preflight asked for, so no wildcard is cached for the marker", async () => {
    expect((await preflight("*", "x-foo")).headers.get("access-control-allow-headers")).toBe("x-foo");
    expect((await preflight("*", "X-Foo ,content-type")).headers.get("access-control-allow-headers")).toBe("X-Foo, content-type");
    expect((await preflight("x-bar, *, x-mos-proxy-version", "x-foo")).headers.get("access-control-allow-headers")).toBe("x-bar, x-foo");
    // Not a preflight: nothing was asked for, so a wildcard allows nothing.
    expect((await preflight("*", "")).headers.get("access-control-allow-headers")).toBeNull();
  });

  it("applies to every direct response, not only preflights", async () => {
    for (const method of ["GET", "POST"]) {
      const result = await sticky("x-foo, X-MOS-Proxy-Version, *", { method, headers: { origin: "https://evil.example" } });
      expect(result.status, method).toBe(204);
      expect(result.headers.get("access-control-allow-headers"), method).toBe("x-foo");
    }
  });

  it("leaves a response through the customer's proxy as the workflow made it", async () => {
    const proxied = await sticky("x-foo, X-MOS-Proxy-Version, *", { headers: { "x-mos-proxy-version": "1" } });
    expect(proxied.status).toBe(204);
    expect(proxied.headers.get("access-control-allow-headers")).toBe("x-foo, X-MOS-Proxy-Version, *");
  });
});

describe("counters in endpoint workflows", () => {
  it("consume against the caller's own plan limits, resolved as a counter update would", async () => {
    const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
    const counterId = `default:${featureId}.enabled`;
    const jwt = await new SignJWT({ email: "meter@example.com" }).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(signingKey);
    const consume = () => endpoint(org.live.id, `meter?counter=${encodeURIComponent(counterId)}`, { headers: { "x-mos-user-jwt": jwt } });
    const readings = [];
    for (let i = 0; i < 4; i++) readings.push((await consume()).body);
    // The Registered plan meters widgets at 3 (lifetime): the fourth is over the limit.
    expect(readings).toEqual([
      { used: 1, total: 3, hasAccess: true },
      { used: 2, total: 3, hasAccess: true },
      { used: 3, total: 3, hasAccess: true },
      { used: 3, total: 3, hasAccess: false },
    ]);
    // The same counter, seen by the public API for that user.
    const check = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userJwt: jwt } } });
    expect(check.status).toBe(200);
    expect(JSON.stringify(check.body)).toContain('"consumedUnits":3');

    const unknown = await endpoint(org.live.id, `meter?counter=${encodeURIComponent("default:feat_0000000000000000.enabled")}`);
    expect(unknown.status).toBe(409);
    expect(unknown.body.error).toMatch(/unknown counter/);
  });

  it("count an unlimited counter (Premium's on over Registered's 3 widgets) without refusing", async () => {
    const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
    const counterId = `default:${featureId}.enabled`;
    const user = `premium-meter-${crypto.randomUUID()}@example.com`;
    await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/${user}`, { key: org.live.secretKey, body: { stripeProductIds: ["prod_premium"] } });
    const jwt = await new SignJWT({ email: user }).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(signingKey);
    const readings = [];
    for (let i = 0; i < 4; i++) readings.push((await endpoint(org.live.id, `meter?counter=${encodeURIComponent(counterId)}`, { headers: { "x-mos-user-jwt": jwt } })).body);
    expect(readings.map(({ used, hasAccess }) => ({ used, hasAccess }))).toEqual([1, 2, 3, 4].map((used) => ({ used, hasAccess: true })));
    const check = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userJwt: jwt } } });
    expect(check.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 4, totalUnits: 3, remainingUnits: 0 });
  });
});
