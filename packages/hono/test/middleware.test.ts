/**
 * The Hono middleware against the real platform in-process: the client's fetch is the Worker's own fetch handler, each
 * test file owns its organization (examples/paywall.yaml: 3 articles a month for anonymous readers, then the paywall's
 * offers), and every app under test is a small Hono app built here.
 */
import { createClient, type ClientOptions } from "@edge-monetization/client";
import { monetization, requireFeature, type MonetizationOptions, type MonetizationVariables } from "@edge-monetization/hono";
import { Hono } from "hono";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createOrganization, fetchWorker, publish, type TestOrganization } from "../../../test/support/api";
import { expectConsoleError } from "../../../test/support/console";
import { aiTools, paywall } from "../../../test/support/examples";
import { newAgent } from "../../../test/support/agents";

let org: TestOrganization;
let signingKey: CryptoKey;

beforeAll(async () => {
  org = await createOrganization("Hono middleware");
  const keys = await generateKeyPair("RS256", { extractable: true });
  signingKey = keys.privateKey;
  const document = paywall();
  document.authMethods = { "test-jwt": { publicKey: await exportSPKI(keys.publicKey), algorithms: ["RS256"], identifierClaim: "email" } };
  await publish(org.adminKey, document, [org.live.id]);
});

const jwtFor = (email: string, key = signingKey) => new SignJWT({ email }).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(key);

interface PlatformCall {
  path: string;
  body: any;
}

/** The platform's fetch, recording the decision calls the middleware makes. */
function recordingPlatform() {
  const calls: PlatformCall[] = [];
  const fetch = async (request: Request) => {
    calls.push({ path: new URL(request.url).pathname, body: await request.clone().json() });
    return fetchWorker(request);
  };
  return { calls, fetch };
}

function clientFor(overrides: Partial<ClientOptions> = {}) {
  return createClient({ baseUrl: "http://platform.test", apiKey: org.live.secretKey, failureMode: "closed", fetch: fetchWorker, ...overrides });
}

type App = Hono<{ Variables: MonetizationVariables }>;

/** An article API: GET /articles/:id behind articles.enabled (the article page surface by default), echoing the decision. */
function articlesApp(options: Partial<MonetizationOptions> = {}, feature: `${string}.${string}` = "articles.enabled"): App {
  const app: App = new Hono();
  app.use(monetization({ client: clientFor(), surfaceSlug: "article-page", ...options }));
  app.get("/articles/:id", requireFeature(feature), async (c) => {
    const decision = await c.var.monetization.decide();
    if (!decision.ok) return c.json({ article: c.req.param("id"), decision: null });
    return c.json({ article: c.req.param("id"), identity: decision.data.identity, enabled: decision.data.features.articles?.properties.enabled });
  });
  return app;
}

/** A JSON body, as the tests read it. */
const json = (response: Response): Promise<any> => response.json();
const anonymousCookieOf = (response: Response) => response.headers.getSetCookie().find((cookie) => cookie.startsWith("mos_anon="));
const cookieValue = (setCookie: string) => setCookie.slice(setCookie.indexOf("=") + 1, setCookie.indexOf(";"));

describe("identity from cookies", () => {
  it("mints an anonymous identifier for a new visitor, sets the cookie, and reuses it on the next request", async () => {
    const app = articlesApp();
    const first = await app.request("/articles/first");
    expect(first.status).toBe(200);
    const setCookie = anonymousCookieOf(first);
    expect(setCookie).toMatch(/^mos_anon=anon_[\w-]+; Max-Age=34560000; Path=\/; HttpOnly; SameSite=Lax$/);
    const identifier = cookieValue(setCookie!);
    expect((await json(first)).identity).toMatchObject({ authType: "anonymous", identifier, isAuthenticated: false });

    const second = await app.request("/articles/second", { headers: { cookie: `mos_anon=${identifier}` } });
    expect(second.status).toBe(200);
    expect(anonymousCookieOf(second)).toBeUndefined();
    const body = await json(second);
    expect(body.identity.identifier).toBe(identifier);
    // The same visitor: the second article is their second of three.
    expect(body.enabled).toMatchObject({ consumedUnits: 2, remainingUnits: 1 });
  });

  it("marks the cookie Secure on https, and applies cookieOptions and the cookie name given", async () => {
    const app = articlesApp({ anonymousCookie: "visitor", cookieOptions: { sameSite: "Strict", httpOnly: false } });
    const response = await app.request("https://news.example/articles/secure");
    const setCookie = response.headers.getSetCookie().find((cookie) => cookie.startsWith("visitor="));
    expect(setCookie).toMatch(/^visitor=anon_[\w-]+; Max-Age=34560000; Path=\/; Secure; SameSite=Strict$/);
  });

  it("refuses, when monetization() is called, cookie names and options hono/cookie would refuse to write", () => {
    const client = clientFor();
    const setup = (options: Partial<MonetizationOptions>) => () => monetization({ client, ...options });
    expect(setup({ anonymousCookie: "mos anon" })).toThrow(TypeError);
    expect(setup({ anonymousCookie: "" })).toThrow(TypeError);
    expect(setup({ jwtCookie: "session;jwt" })).toThrow(/jwtCookie/);
    expect(setup({ cookieOptions: { maxAge: 400 * 24 * 60 * 60 + 1 } })).toThrow(/400 days/);
    expect(setup({ cookieOptions: { maxAge: -1 } })).toThrow(TypeError);
    expect(setup({ cookieOptions: { expires: new Date(Date.now() + 401 * 24 * 60 * 60 * 1000) } })).toThrow(/400 days/);
    expect(setup({ anonymousCookie: "__Secure-visitor" })).toThrow(/secure: true/);
    expect(setup({ anonymousCookie: "__Host-visitor", cookieOptions: { secure: true, path: "/news" } })).toThrow(/Path/);
    expect(setup({ anonymousCookie: "__host-visitor", cookieOptions: { secure: true, domain: "example.com" } })).toThrow(/Domain/);
    expect(setup({ cookieOptions: { partitioned: true, secure: false } as never })).toThrow(/Partitioned/);
    expect(setup({ cookieOptions: { path: "/; HttpOnly" } })).toThrow(/path/);
    expect(setup({ cookieOptions: { sameSite: "Loose" as never } })).toThrow(/sameSite/);
    expect(setup({ anonymousCookie: "__Host-visitor", cookieOptions: { secure: true } })).not.toThrow();
  });

  it("reads the anonymous cookie back under the name a prefix gives it", async () => {
    const app = articlesApp({ cookieOptions: { prefix: "host" } });
    // http: the prefix makes the cookie Secure anyway, as __Host- requires.
    const first = await app.request("/articles/prefixed");
    const setCookie = first.headers.getSetCookie().find((cookie) => cookie.startsWith("__Host-mos_anon="));
    expect(setCookie).toMatch(/^__Host-mos_anon=anon_[\w-]+; Max-Age=34560000; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const identifier = cookieValue(setCookie!);
    const second = await app.request("/articles/prefixed-2", { headers: { cookie: `__Host-mos_anon=${identifier}` } });
    expect(second.headers.getSetCookie()).toEqual([]);
    expect((await json(second)).identity.identifier).toBe(identifier);
  });

  it("decides for a signed-in user from the JWT cookie, and sets no anonymous cookie", async () => {
    const app = articlesApp();
    const token = await jwtFor("ada@example.com");
    const response = await app.request("/articles/jwt", { headers: { cookie: `mos_jwt=${token}` } });
    expect(response.status).toBe(200);
    expect((await json(response)).identity).toMatchObject({ authType: "jwt", identifier: "ada@example.com", isAuthenticated: true });
    expect(anonymousCookieOf(response)).toBeUndefined();
  });

  it("reads Authorization: Bearer <jwt> only when readJwtFromAuthorization is set", async () => {
    const token = await jwtFor("grace@example.com");
    const headers = { authorization: `Bearer ${token}` };
    const withOption = await articlesApp({ readJwtFromAuthorization: true }).request("/articles/bearer", { headers });
    expect((await json(withOption)).identity).toMatchObject({ authType: "jwt", identifier: "grace@example.com" });
    const without = await articlesApp().request("/articles/bearer", { headers });
    expect((await json(without)).identity.authType).toBe("anonymous");
    expect(anonymousCookieOf(without)).toBeDefined();
  });

  it("decides for the anonymous cookie when the JWT does not verify: a junk token does not reset an exhausted meter", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const anonymous = `reader-${crypto.randomUUID()}`;
    for (const article of ["one", "two", "three"]) expect((await app.request(`/articles/${article}`, { headers: { cookie: `mos_anon=${anonymous}` } })).status).toBe(200);
    platform.calls.length = 0;

    const denied = await app.request("/articles/four", { headers: { cookie: `mos_jwt=anything-invalid; mos_anon=${anonymous}` } });
    expect(denied.status).toBe(402);
    expect(await json(denied)).toMatchObject({ code: "payment_required", reason: "limit_reached" });
    expect(anonymousCookieOf(denied)).toBeUndefined();
    // The token alone first (no fallback the platform would mint with); refused, the visitor's own identifier.
    expect(platform.calls.map((call) => call.body.identity)).toEqual([{ userJwt: "anything-invalid" }, { anonymousIdentifier: anonymous }]);

    // An expired token of an honest user: the same — the request goes on as the anonymous visitor they are.
    const expired = await new SignJWT({ email: "ada@example.com" }).setProtectedHeader({ alg: "RS256" }).setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(signingKey);
    const reread = await app.request("/articles/one", { headers: { cookie: `mos_jwt=${expired}; mos_anon=${anonymous}` } });
    expect(reread.status).toBe(200);
    expect((await json(reread)).identity).toMatchObject({ authType: "anonymous", identifier: anonymous });
  });

  it("takes a JWT longer than the platform accepts for no token: the anonymous cookie decides, in one call", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const anonymous = `reader-${crypto.randomUUID()}`;
    for (const article of ["one", "two", "three"]) expect((await app.request(`/articles/${article}`, { headers: { cookie: `mos_anon=${anonymous}` } })).status).toBe(200);
    platform.calls.length = 0;
    // 70,000 characters would also push the decision's body past the platform's 64 KiB (a 413 the app cannot fix).
    const denied = await app.request("/articles/four", { headers: { cookie: `mos_jwt=${"x".repeat(70_000)}; mos_anon=${anonymous}` } });
    expect(denied.status).toBe(402);
    expect(platform.calls.map((call) => call.body.identity)).toEqual([{ anonymousIdentifier: anonymous }]);
  });

  it("mints the anonymous cookie once for a new visitor with a junk JWT, then meters them on it", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const first = await app.request("/articles/junk-one", { headers: { cookie: "mos_jwt=anything-invalid" } });
    expect(first.status).toBe(200);
    const firstBody = await json(first);
    expect(firstBody.identity).toMatchObject({ authType: "anonymous", identifier: expect.stringMatching(/^anon_/) });
    const identifier = cookieValue(anonymousCookieOf(first)!);
    expect(identifier).toBe(firstBody.identity.identifier);
    expect(firstBody.enabled).toMatchObject({ consumedUnits: 1 });

    const second = await app.request("/articles/junk-two", { headers: { cookie: `mos_jwt=anything-invalid; mos_anon=${identifier}` } });
    expect(second.status).toBe(200);
    expect(anonymousCookieOf(second)).toBeUndefined();
    const secondBody = await json(second);
    expect(secondBody.identity.identifier).toBe(identifier);
    expect(secondBody.enabled).toMatchObject({ consumedUnits: 2, remainingUnits: 1 });
    expect(platform.calls.map((call) => call.body.identity)).toEqual([
      { userJwt: "anything-invalid", createAnonymousIdentifierFallback: true },
      { userJwt: "anything-invalid" },
      { anonymousIdentifier: identifier },
    ]);
  });

  it("decides for a valid JWT over a stale anonymous cookie, in one call, and leaves the cookie alone", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const token = await jwtFor("hedy@example.com");
    const response = await app.request("/articles/signed-in", { headers: { cookie: `mos_jwt=${token}; mos_anon=stale-visitor` } });
    expect(response.status).toBe(200);
    expect((await json(response)).identity).toMatchObject({ authType: "jwt", identifier: "hedy@example.com", isAuthenticated: true });
    expect(anonymousCookieOf(response)).toBeUndefined();
    expect(platform.calls.map((call) => call.body.identity)).toEqual([{ userJwt: token }]);
  });

  it("uses the identity option instead of the cookies (a user the backend vouches for, secret key)", async () => {
    const app = articlesApp({ identity: (c) => (c.req.header("x-session-user") ? { userIdentifier: c.req.header("x-session-user")! } : undefined) });
    const vouched = await app.request("/articles/session", { headers: { "x-session-user": "linus@example.com", cookie: "mos_anon=ignored" } });
    expect((await json(vouched)).identity).toMatchObject({ authType: "provided", identifier: "linus@example.com" });
    const noSession = await app.request("/articles/session", { headers: { cookie: "mos_anon=cookie-visitor" } });
    expect((await json(noSession)).identity).toMatchObject({ authType: "anonymous", identifier: "cookie-visitor" });
  });
});

describe("requireFeature", () => {
  it("lets a metered reader through three times, then answers 402 with the paywall's offers", async () => {
    const app = articlesApp();
    const cookie = `mos_anon=reader-${crypto.randomUUID()}`;
    for (const article of ["one", "two", "three"]) {
      const response = await app.request(`/articles/${article}`, { headers: { cookie } });
      expect(response.status, article).toBe(200);
      expect((await json(response)).article).toBe(article);
    }
    // Unique resources: an article already read is read again for free.
    expect((await app.request("/articles/one", { headers: { cookie } })).status).toBe(200);

    const denied = await app.request("/articles/four", { headers: { cookie } });
    expect(denied.status).toBe(402);
    expect(denied.headers.get("cache-control"), "offer tokens bound to this visitor").toBe("private, no-store");
    const body = await json(denied);
    expect(body).toMatchObject({ status: "error", statusCode: 402, code: "payment_required", feature: "articles.enabled", reason: "limit_reached" });
    expect(body.message).toEqual(expect.any(String));
    expect(body.offers.map((offer: any) => offer.offer)).toEqual(["premium-monthly", "premium-yearly"]);
    for (const offer of body.offers) expect(offer).toMatchObject({ title: expect.any(String), token: expect.any(String), redemption: { method: "checkout" } });
  });

  it("answers 403 without offers when the decision shows none (a boolean the plan does not grant)", async () => {
    const app = articlesApp({}, "articles.premium");
    const response = await app.request("/articles/premium", { headers: { cookie: `mos_anon=reader-${crypto.randomUUID()}` } });
    expect(response.status).toBe(403);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(await json(response)).toEqual({
      status: "error",
      statusCode: 403,
      code: "feature_denied",
      message: "articles.premium is not included in your plan.",
      feature: "articles.premium",
      reason: "off",
      offers: [],
    });
  });

  it("answers 403 unknown_property for a property the deployed configuration does not have, and logs the typo once", async () => {
    const logged = expectConsoleError('requireFeature("podcasts.enabled")');
    const app = articlesApp({}, "podcasts.enabled");
    for (const visitor of ["someone", "someone-else"]) {
      const response = await app.request("/articles/x", { headers: { cookie: `mos_anon=${visitor}` } });
      expect(response.status).toBe(403);
      expect(await json(response)).toMatchObject({ code: "feature_denied", reason: "unknown_property", offers: [] });
    }
    expect(logged.lines).toHaveLength(1);
    expect(logged.lines[0]).toContain("no such property");
  });

  it("never answers 402 for an unknown property, even when the surface shows offers", async () => {
    expectConsoleError('requireFeature("articles.enabeld")');
    const cookie = `mos_anon=reader-${crypto.randomUUID()}`;
    const metered = articlesApp();
    for (const article of ["one", "two", "three"]) expect((await metered.request(`/articles/${article}`, { headers: { cookie } })).status).toBe(200);
    expect((await metered.request("/articles/four", { headers: { cookie } })).status, "the surface shows its offers").toBe(402);

    const response = await articlesApp({}, "articles.enabeld").request("/articles/four", { headers: { cookie } });
    expect(response.status).toBe(403);
    expect(await json(response)).toMatchObject({ statusCode: 403, code: "feature_denied", reason: "unknown_property", offers: [] });
  });

  it("prices the request with its action: 403 insufficient_credits when the balance does not cover it, nothing spent", async () => {
    const aiOrg = await createOrganization("Hono middleware, credits");
    await publish(aiOrg.adminKey, aiTools(), [aiOrg.live.id]);
    const app: App = new Hono();
    app.use(monetization({ client: clientFor({ apiKey: aiOrg.live.secretKey }), surfaceSlug: "ai-playground" }));
    const model = () => ({ id: "gpt-large", meta: { type: "model", tags: ["premium"] } });
    // 5 (generate) × 5 (a model) × 2 (premium) = 50 tokens; summarize = 2 × 5 × 2 = 20: the free plan's whole balance.
    app.post("/generate", requireFeature("ai-tools.tokens", { action: "generate", resource: model }), (c) => c.text("generated"));
    app.post("/summarize", requireFeature("ai-tools.tokens", { action: (c) => c.req.query("action"), resource: model }), (c) => c.text("summarized"));
    const headers = { cookie: "mos_anon=token-spender" };

    const refused = await app.request("/generate", { method: "POST", headers });
    expect(refused.status).toBe(403);
    expect(await json(refused)).toMatchObject({ code: "feature_denied", feature: "ai-tools.tokens", reason: "insufficient_credits", offers: [] });
    const summarized = await app.request("/summarize?action=summarize", { method: "POST", headers });
    expect(summarized.status).toBe(200);
    expect(await summarized.text()).toBe("summarized");
    expect((await app.request("/summarize?action=summarize", { method: "POST", headers })).status).toBe(403);
  });

  it("makes an access check (which consumes nothing) when no surface is configured or given", async () => {
    const platform = recordingPlatform();
    const app: App = new Hono();
    app.use(monetization({ client: clientFor({ fetch: platform.fetch }) }));
    app.get("/articles/:id", requireFeature("articles.enabled"), (c) => c.text("article"));
    const cookie = `mos_anon=checker-${crypto.randomUUID()}`;
    for (let i = 0; i < 5; i++) expect((await app.request(`/articles/${i}`, { headers: { cookie } })).status).toBe(200);
    expect(platform.calls.map((call) => call.path)).toEqual(Array(5).fill("/api/v1/access-checks"));
  });

  it("uses its own surface and resource when given", async () => {
    const platform = recordingPlatform();
    const app: App = new Hono();
    app.use(monetization({ client: clientFor({ fetch: platform.fetch }) }));
    app.get("/story/:slug", requireFeature("articles.enabled", { surfaceSlug: "article-page", resource: (c) => ({ id: `story:${c.req.param("slug")}` }) }), (c) => c.text("story"));
    expect((await app.request("/story/moon", { headers: { cookie: "mos_anon=story-reader" } })).status).toBe(200);
    expect(platform.calls).toHaveLength(1);
    expect(platform.calls[0]).toMatchObject({ path: "/api/v1/surface-decisions", body: { surfaceSlug: "article-page", resource: { id: "story:moon" } } });
  });

  it("fails open (the route runs) or closed (503 with Retry-After) when the platform cannot be reached", async () => {
    const unreachable = async (): Promise<Response> => {
      throw new TypeError("connection refused");
    };
    const build = (failureMode: "open" | "closed") => articlesApp({ client: clientFor({ fetch: unreachable, failureMode, retries: 0 }) });

    const open = await build("open").request("/articles/down");
    expect(open.status).toBe(200);
    expect(await json(open)).toEqual({ article: "down", decision: null });
    expect(anonymousCookieOf(open)).toBeUndefined();

    const closed = await build("closed").request("/articles/down");
    expect(closed.status).toBe(503);
    expect(closed.headers.get("retry-after")).toBe("5");
    expect(closed.headers.get("cache-control")).toBe("private, no-store");
    expect(await json(closed)).toMatchObject({ status: "error", statusCode: 503, code: "service_unavailable", feature: "articles.enabled" });
  });

  it("answers 503 and logs the platform's refusal (a misconfiguration) even when failing open", async () => {
    const logged = expectConsoleError("surface_not_found");
    const app = articlesApp({ client: clientFor({ failureMode: "open" }), surfaceSlug: "no-such-surface" });
    for (const visitor of ["someone", "someone-else", "a-third"]) {
      const response = await app.request("/articles/misconfigured", { headers: { cookie: `mos_anon=${visitor}` } });
      expect(response.status).toBe(503);
      expect(await json(response)).toMatchObject({ code: "service_unavailable" });
    }
    // Said once per isolate: visitors who can provoke a refusal cannot flood the operator's log with it.
    expect(logged.lines).toHaveLength(1);
    expect(logged.lines[0]).toContain('requireFeature("articles.enabled")');
  });

  it("throws a clear error when monetization() is not installed", async () => {
    const app = new Hono();
    app.get("/x", requireFeature("articles.enabled"), (c) => c.text("x"));
    app.onError((error, c) => c.text(error.message, 500));
    const response = await app.request("/x");
    expect(await response.text()).toBe('requireFeature("articles.enabled") needs app.use(monetization({…})) before it');
  });
});

describe("the decision on the context", () => {
  it("is memoised: requireFeature and the handler share one surface decision, which consumes once", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const response = await app.request("/articles/memo", { headers: { cookie: `mos_anon=memo-${crypto.randomUUID()}` } });
    expect(response.status).toBe(200);
    expect((await json(response)).enabled).toMatchObject({ consumedUnits: 1, remainingUnits: 2 });
    expect(platform.calls.map((call) => call.path)).toEqual(["/api/v1/surface-decisions"]);
  });

  it("sends one identity for a new visitor's concurrent decisions: the second asks for the identifier the first minted", async () => {
    const platform = recordingPlatform();
    const app: App = new Hono();
    app.use(monetization({ client: clientFor({ fetch: platform.fetch }), surfaceSlug: "article-page" }));
    app.get("/both", async (c) => {
      const [surface, access] = await Promise.all([c.var.monetization.decide(), c.var.monetization.decide({ surfaceSlug: null })]);
      return c.json({
        surface: surface.ok && surface.data.identity.identifier,
        access: access.ok && access.data.identity.identifier,
        identity: c.var.monetization.identity,
        hasAccess: await c.var.monetization.hasAccess("articles.enabled"),
      });
    });
    const response = await app.request("/both");
    const body = await json(response);
    expect(body.surface).toMatch(/^anon_/);
    expect(body.access).toBe(body.surface);
    expect(body.identity).toEqual({ anonymousIdentifier: body.surface });
    expect(body.hasAccess).toBe(true);
    expect(platform.calls.map((call) => call.body.identity)).toEqual([{ createAnonymousIdentifier: true }, { anonymousIdentifier: body.surface }]);
    expect(response.headers.getSetCookie()).toEqual([expect.stringMatching(new RegExp(`^mos_anon=${body.surface};`))]);
  });

  it("sends the request's facts: url, user agent, client IP, referer, and the cf object when the request has one", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const headers = { cookie: "mos_anon=facts", "user-agent": "FactsBot/1.0 (test)", "cf-connecting-ip": "203.0.113.7", "x-forwarded-for": "198.51.100.1", referer: "https://news.example/" };
    await app.request(new Request("https://news.example/articles/facts?page=2", { headers, cf: { country: "FR", asn: 64500 } }));
    expect(platform.calls[0]!.body).toMatchObject({
      identity: { anonymousIdentifier: "facts" },
      resource: { id: "/articles/facts" },
      http: { url: "https://news.example/articles/facts?page=2", userAgent: "FactsBot/1.0 (test)", clientIP: "203.0.113.7", referer: "https://news.example/" },
      cloudflare: { cf: { country: "FR", asn: 64500 } },
    });

    // No cf object (Node, or a request that did not come through Cloudflare): those headers are anyone's to write.
    await app.request("/articles/facts", { headers: { cookie: "mos_anon=facts", "cf-connecting-ip": "192.0.2.66", "x-forwarded-for": "198.51.100.1, 10.0.0.1" } });
    expect(platform.calls[1]!.body.http).toEqual({ url: "http://localhost/articles/facts", method: "GET" });
    expect(platform.calls[1]!.body.cloudflare).toBeUndefined();
  });

  it("cuts facts the visitor writes to the platform's bounds, so an over-long URL or user agent is still decided", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const url = `https://news.example/articles/long?q=${"q".repeat(9_000)}`;
    const response = await app.request(new Request(url, { headers: { cookie: "mos_anon=long-facts", "user-agent": "U".repeat(3_000), referer: `https://news.example/?${"r".repeat(9_000)}` } }));
    expect(response.status).toBe(200);
    const { http } = platform.calls[0]!.body;
    expect([http.url.length, http.userAgent.length, http.referer.length]).toEqual([8192, 2048, 8192]);
    expect(http.url).toBe(url.slice(0, 8192));
  });

  it("takes the client IP from the clientIP option when given (a proxy the operator runs), on Workers too", async () => {
    const platform = recordingPlatform();
    // nginx appends the address it saw: the last one is the only one this app can trust.
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }), clientIP: (c) => c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim() });
    await app.request("/articles/proxied", { headers: { cookie: "mos_anon=proxied", "x-forwarded-for": "192.0.2.66, 198.51.100.1" } });
    await app.request(new Request("https://news.example/articles/proxied", { headers: { cookie: "mos_anon=proxied", "cf-connecting-ip": "203.0.113.7" }, cf: { country: "FR" } }));
    expect(platform.calls.map((call) => call.body.http.clientIP)).toEqual(["198.51.100.1", undefined]);
  });

  it("builds the client from the context when given a function (options from c.env)", async () => {
    const app = new Hono<{ Bindings: { SECRET_KEY: string }; Variables: MonetizationVariables }>();
    app.use(monetization<{ Bindings: { SECRET_KEY: string } }>({ client: (c) => clientFor({ apiKey: c.env.SECRET_KEY }) }));
    app.get("/me", async (c) => {
      const decision = await c.var.monetization.decide({ trace: true });
      return c.json(decision.ok ? { identifier: decision.data.identity.identifier, plans: decision.data.trace?.plans.map((plan) => plan.slug) } : null);
    });
    const response = await app.request("/me", { headers: { cookie: "mos_anon=env-visitor" } }, { SECRET_KEY: org.live.secretKey });
    expect(await json(response)).toEqual({ identifier: "env-visitor", plans: ["anonymous"] });
  });
});

describe("agents", () => {
  const SIGNED = {
    signature: "sig1=:dGhlIHNpZ25hdHVyZQ==:",
    // Expired long ago: the platform leaves the request unsigned without asking anyone's key directory.
    "signature-input": 'sig1=("@authority" "signature-agent" "crawler-max-price");created=1735689600;expires=1735689660;keyid="k1";tag="web-bot-auth"',
    "signature-agent": '"https://crawler.example"',
    "crawler-max-price": "USD 0.05",
  };

  /** An app answering who the platform decided the request is (an access check: nothing consumed). */
  function whoApp(platformFetch: (request: Request) => Promise<Response> = fetchWorker): App {
    const app: App = new Hono();
    app.use(monetization({ client: clientFor({ fetch: platformFetch }) }));
    app.get("/who", async (c) => {
      const decision = await c.var.monetization.decide();
      return decision.ok ? c.json(decision.data.identity) : c.json({ error: decision.error }, 503);
    });
    return app;
  }

  it("forwards the method and the headers the platform reads (signature, what it covers, price, payment), nothing else", async () => {
    const platform = recordingPlatform();
    const app = articlesApp({ client: clientFor({ fetch: platform.fetch }) });
    const headers = { ...SIGNED, "payment-signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=", cookie: "mos_anon=crawler-1", authorization: "Bearer visitor-secret", "x-other": "stays home" };
    const response = await app.request("/articles/crawled", { headers });
    expect(response.status).toBe(200);
    expect(platform.calls[0]!.body.http).toEqual({ url: "http://localhost/articles/crawled", method: "GET", headers: { ...SIGNED, "payment-signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=" } });
  });

  it("decides a request whose signature verifies for the agent's operator", async () => {
    const agent = await newAgent();
    const headers = await agent.sign("http://localhost/who", { covered: { "crawler-max-price": "USD 0.05" } });
    const response = await whoApp().request("/who", { headers });
    expect(await json(response)).toMatchObject({ authType: "agent", identifier: agent.origin, isAuthenticated: true });
    expect(anonymousCookieOf(response)).toBeUndefined();
  });

  it("answers a priced surface's pay-per-crawl as the platform says: the 402 with the price, the paid route with crawler-charged", async () => {
    const priced = await createOrganization("Hono pay-per-crawl");
    const document = paywall();
    document.plans["ai-agents"] = { autoAssign: ["ai-agent"], features: { articles: { enabled: "off" } }, payPerCrawl: { "article-page": "USD 0.02" } };
    await publish(priced.adminKey, document, [priced.live.id]);
    const app = articlesApp({ client: createClient({ baseUrl: "http://platform.test", apiKey: priced.live.secretKey, failureMode: "closed", fetch: fetchWorker }) });
    const agent = await newAgent();
    const url = "http://localhost/articles/priced";

    const asked = await app.request("/articles/priced", { headers: await agent.sign(url) });
    expect(asked.status).toBe(402);
    expect(asked.headers.get("crawler-price")).toBe("USD 0.02");
    expect(asked.headers.get("crawler-error")).toBe("MissingCrawlerPrice");
    expect(asked.headers.get("cache-control")).toBe("private, no-store");
    expect(await asked.text()).toContain("USD 0.02");

    const bought = await app.request("/articles/priced", { headers: await agent.sign(url, { covered: { "crawler-max-price": "USD 0.05" } }) });
    expect(bought.status).toBe(200);
    expect(bought.headers.get("crawler-charged")).toBe("USD 0.02");
    expect(await json(bought)).toMatchObject({ article: "priced" });

    // People keep the usual answers: a visitor is metered (or offered), never asked a crawler price.
    const person = await app.request("/articles/priced");
    expect(person.headers.get("crawler-price")).toBeNull();
  });

  it("leaves the headers out when the body would pass the platform's bound: decided unsigned, never refused", async () => {
    const platform = recordingPlatform();
    // Every fact at its bound, escaped (JSON doubles each `"`), and agent headers as large as the platform takes each.
    const quotes = (length: number) => '"'.repeat(length);
    const headers = {
      ...SIGNED,
      "user-agent": quotes(3000),
      referer: `https://news.example/?${quotes(9000)}`,
      "crawler-max-price": quotes(8192),
      "payment-signature": quotes(8192),
      "x-also-signed": quotes(8192),
      "signature-input": 'sig1=("@authority" "signature-agent" "crawler-max-price" "x-also-signed");created=1735689600;expires=1735689660;keyid="k1";tag="web-bot-auth"',
      cookie: "mos_anon=crawler-2",
    };
    const response = await whoApp(platform.fetch).request(`/who?${"q".repeat(9000)}`, { headers });
    expect(await json(response)).toMatchObject({ authType: "anonymous", identifier: "crawler-2" });
    const { http } = platform.calls[0]!.body;
    // Keys, not values: a failure prints them.
    expect(Object.keys(http)).toEqual(["url", "userAgent", "referer", "method"]);
    expect(http.userAgent).toBe(quotes(2048));
  });
});
