/**
 * The proxy's pipeline through createEdgeProxy, with the real platform in process (fetchWorker) and an origin double:
 * one test per behaviour of stages 1–9.
 */
import { describe, expect, it } from "vitest";
import packageJson from "../package.json";
import worker, { ConfigError, configFromEnv, createEdgeProxy } from "../src/index";
import { PROXY_VERSION } from "../src/context";
import { expectConsoleError } from "../../../test/support/console";
import { echoed, ORIGIN, originDouble, page, PLATFORM, proxyOver, recordedPlatform, recordingLogger, scriptedTenant, setCookie, SITE, visit } from "./support";

describe("identity cookies", () => {
  it("mints the anonymous cookie on a first visit and decides for the same visitor when it comes back", async () => {
    const org = await scriptedTenant();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }));

    const first = await proxy.fetch(visit("/a"));
    const cookie = setCookie(first, "mos_anon");
    expect(cookie).toMatch(/^mos_anon=anon_[A-Za-z0-9_-]+; Path=\/; Max-Age=34560000; SameSite=Lax; Secure$/);
    expect(cookie).not.toMatch(/HttpOnly/i);
    const identifier = cookie!.slice("mos_anon=".length, cookie!.indexOf(";"));
    expect(echoed(await first.text())).toMatchObject({ identifier, authType: "anonymous" });

    const again = await proxy.fetch(visit("/a", { cookie: `other=1; mos_anon=${identifier}` }));
    expect(setCookie(again, "mos_anon")).toBeUndefined();
    expect(echoed(await again.text()).identifier).toBe(identifier);
  });

  it("sets no Secure attribute on a plain-http site", async () => {
    const org = await scriptedTenant();
    const proxy = proxyOver(org, originDouble({ "/a": page() }));
    const response = await proxy.fetch(new Request("http://localhost:8788/a"));
    expect(setCookie(response, "mos_anon")).toMatch(/; SameSite=Lax$/);
  });

  it("sends the JWT cookie with the fallback: an unverifiable token becomes a new anonymous visitor who gets the cookie", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), {}, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/a", { cookie: "mos_jwt=not.a.jwt" }));
    expect(await platform.requests[0]!.json()).toMatchObject({ identity: { userJwt: "not.a.jwt", createAnonymousIdentifierFallback: true } });
    const told = echoed(await response.text());
    expect(told.authType).toBe("anonymous");
    expect(setCookie(response, "mos_anon")).toBe(`mos_anon=${told.identifier}; Path=/; Max-Age=34560000; SameSite=Lax; Secure`);

    // With an anonymous cookie beside the JWT, the JWT goes alone: refused, the page is decided for the cookie's
    // visitor (not a fresh one), and no cookie is set.
    platform.requests.length = 0;
    const withBoth = await proxy.fetch(visit("/a", { cookie: "mos_jwt=not.a.jwt; mos_anon=reader-1" }));
    expect(setCookie(withBoth, "mos_anon")).toBeUndefined();
    expect(echoed(await withBoth.text())).toMatchObject({ identifier: "reader-1", authType: "anonymous" });
    expect(await platform.requests[0]!.json()).toMatchObject({ identity: { userJwt: "not.a.jwt" } });
  });

  it("takes the origin's Set-Cookie of the identity cookies over the request's (the origin just signed the visitor in)", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({
      "/signed-in": () => {
        const headers = new Headers({ "content-type": "text/html" });
        headers.append("set-cookie", "mos_anon=from-origin; Path=/");
        return new Response(page({ echo: true }), { headers });
      },
    });
    const response = await proxyOver(org, origin).fetch(visit("/signed-in", { cookie: "mos_anon=from-request" }));
    expect(echoed(await response.text()).identifier).toBe("from-origin");
    // The origin's cookie reaches the browser; the proxy adds none of its own.
    expect(response.headers.getSetCookie()).toEqual(["mos_anon=from-origin; Path=/"]);
  });

  it("honours custom cookie names", async () => {
    const org = await scriptedTenant();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), { anonymousCookie: "reader" });
    const response = await proxy.fetch(visit("/a", { cookie: "reader=custom-1" }));
    expect(echoed(await response.text()).identifier).toBe("custom-1");
  });
});

describe("the decision", () => {
  it("carries the path and the head's meta as the resource, and the request facts", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const html = page({ echo: true, head: `<meta property="og:type" content="article"><meta name="section" content="sport">` });
    const proxy = proxyOver(org, originDouble({ "/sport/42": html }), {}, { platform: platform.fetch });
    const response = await proxy.fetch(
      visit("/sport/42?utm=x", { headers: { "user-agent": "Reader/1.0", "cf-connecting-ip": "203.0.113.7", referer: `${SITE}/` }, cookie: "mos_anon=reader-2" }),
    );
    const told = echoed(await response.text());
    expect(told.resource).toEqual({ id: "/sport/42", meta: { "test-echo": "yes", "og:type": "article", section: "sport" } });
    expect(told).toMatchObject({ url: `${SITE}/sport/42?utm=x`, userAgent: "Reader/1.0", clientIp: "203.0.113.7", referer: `${SITE}/` });
    const sent = platform.requests[0]!;
    expect(sent.url).toBe(`${PLATFORM}/api/v1/surface-decisions`);
    expect(sent.headers.get("authorization")).toBe(`Bearer ${org.preview.secretKey}`);
    expect(sent.headers.get("idempotency-key")).toMatch(/^[0-9a-f-]{36}$/);
    expect(await sent.json()).toMatchObject({ surfaceSlug: "page", identity: { anonymousIdentifier: "reader-2" } });
  });

  it("picks the surface from SURFACES (first match) before SURFACE_SLUG", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/news/1": page(), "/other": page() }), {
      surfaceSlug: "fallback-surface",
      surfaces: [
        { pattern: "^/news/", surface: "page" },
        { pattern: "^/news/1", surface: "never" },
      ],
    }, { platform: platform.fetch, logger: recordingLogger().logger });
    await proxy.fetch(visit("/news/1"));
    await proxy.fetch(visit("/other"));
    const surfaces = await Promise.all(platform.requests.map(async (request) => (await request.json() as { surfaceSlug: string }).surfaceSlug));
    expect(surfaces).toEqual(["page", "fallback-surface"]);
  });

  it("applies the components' content instructions to the page", async () => {
    const org = await scriptedTenant();
    const html = page({ main: "<p>One</p><p>Two</p><p>Three</p>", content: { replaceRange: { fromMarker: "p:first-of-type", replaceWith: [{ type: "element", schema: "paywall", props: { title: "Subscribe & read" } }] } } });
    const response = await proxyOver(org, originDouble({ "/a": html })).fetch(visit("/a"));
    const body = await response.text();
    expect(body).toContain(`<div id="main"><p>One</p><mos-paywall version="" props="{&quot;title&quot;:&quot;Subscribe &amp; read&quot;}"></mos-paywall></div>`);
    expect(body).not.toContain("Two");
  });

  it("marks a decided page private and drops its validators", async () => {
    const org = await scriptedTenant();
    const response = await proxyOver(org, originDouble({ "/a": page() })).fetch(visit("/a"));
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(response.headers.get("etag")).toBeNull();
  });

  it("adds INJECT_SCRIPT_URL's script to the head", async () => {
    const org = await scriptedTenant();
    const response = await proxyOver(org, originDouble({ "/a": page() }), { injectScriptUrl: "/static/elements.js" }).fetch(visit("/a"));
    expect(await response.text()).toContain(`<script src="/static/elements.js" type="module" async></script></head>`);
  });
});

describe("the surface's http behaviour", () => {
  it("answers a replacement instead of the page, with its headers and cookies (and the identity cookie)", async () => {
    const org = await scriptedTenant();
    const http = { status: 451, statusText: "Unavailable", headers: { "x-why": "region" }, cookies: ["seen=1; Path=/"], body: "<p>Not here</p>" };
    const response = await proxyOver(org, originDouble({ "/a": page({ http }) })).fetch(visit("/a"));
    expect(response.status).toBe(451);
    expect(response.statusText).toBe("Unavailable");
    expect(response.headers.get("x-why")).toBe("region");
    expect(await response.text()).toBe("<p>Not here</p>");
    expect(response.headers.getSetCookie()).toEqual(["seen=1; Path=/", expect.stringMatching(/^mos_anon=anon_/)]);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
  });

  it("modifies the page's headers, cookies and status; a status without a body drops it", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({
      "/a": page({ http: { addHeaders: [{ name: "x-added", value: "1" }], removeHeaders: ["x-origin"], addCookies: ["flag=on; Path=/"], status: 203 } }),
      "/b": page({ http: { status: 204 } }),
    });
    origin.requests.length = 0;
    const proxy = proxyOver(org, {
      fetch: async (request) => {
        const response = await origin.fetch(request);
        const headers = new Headers(response.headers);
        headers.set("x-origin", "secret");
        return new Response(response.body, { status: response.status, headers });
      },
    });
    const modified = await proxy.fetch(visit("/a", { cookie: "mos_anon=reader-3" }));
    expect(modified.status).toBe(203);
    expect(modified.headers.get("x-added")).toBe("1");
    expect(modified.headers.get("x-origin")).toBeNull();
    expect(modified.headers.getSetCookie()).toEqual(["flag=on; Path=/"]);
    expect(await modified.text()).toContain(`<div id="main"><p>Hello</p></div>`);

    const empty = await proxy.fetch(visit("/b", { cookie: "mos_anon=reader-3" }));
    expect(empty.status).toBe(204);
    expect(await empty.text()).toBe("");
  });
});

describe("the origin", () => {
  it("is asked for the same path and query with the visitor's headers, the site's host in X-Forwarded-Host", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({ "/a": page() });
    await proxyOver(org, origin).fetch(visit("/a?x=1&y=2", { headers: { "accept-language": "fr" }, cookie: "session=s1" }));
    const asked = origin.requests[0]!;
    expect(asked.url).toBe(`${ORIGIN}/a?x=1&y=2`);
    expect(asked.headers.get("x-forwarded-host")).toBe("site.example");
    expect(asked.headers.get("accept-language")).toBe("fr");
    expect(asked.headers.get("cookie")).toBe("session=s1");
  });

  it("passes untouched, without a decision: other methods (body forwarded), non-HTML, redirects, errors, ignored paths, paths without a surface", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const origin = originDouble({
      "/form": async (request) => new Response(`got ${request.method} ${await request.text()}`, { headers: { "content-type": "text/html" } }),
      "/data.json": new Response('{"a":1}', { headers: { "content-type": "application/json" } }),
      "/moved": new Response(null, { status: 302, headers: { location: "/elsewhere" } }),
      "/assets/site.html": page(),
      "/page": page(),
    });
    const proxy = proxyOver(org, origin, { ignorePaths: ["^/assets/"] }, { platform: platform.fetch });
    const posted = await proxy.fetch(visit("/form", { method: "POST", body: "a=1", headers: { "content-type": "application/x-www-form-urlencoded" } }));
    expect(await posted.text()).toBe("got POST a=1");
    expect(await (await proxy.fetch(visit("/data.json"))).text()).toBe('{"a":1}');
    const moved = await proxy.fetch(visit("/moved"));
    expect(moved.status).toBe(302);
    expect(moved.headers.get("location")).toBe("/elsewhere");
    expect((await proxy.fetch(visit("/missing"))).status).toBe(404);
    const ignored = await proxy.fetch(visit("/assets/site.html"));
    expect(ignored.headers.get("cache-control")).toBe("public, max-age=600");
    const head = await proxy.fetch(visit("/page", { method: "HEAD" }));
    expect(head.status).toBe(200);
    const noSurface = proxyOver(org, origin, { surfaceSlug: undefined, surfaces: [{ pattern: "^/news/", surface: "page" }] }, { platform: platform.fetch });
    expect(await (await noSurface.fetch(visit("/page"))).text()).toBe(page());
    expect(platform.requests).toEqual([]);
  });
});

describe("custom endpoints", () => {
  it("forwards ENDPOINTS_PREFIX paths to the environment's endpoints with the proxy's marker; Path=/ cookies pass", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({}), {}, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/mos-endpoints/echo?q=1", { method: "POST", body: "hello", headers: { "content-type": "text/plain" } }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ path: "echo", method: "POST", query: "?q=1", body: "hello", proxyVersion: PROXY_VERSION, proxyClient: "edge-monetization-edge-proxy" });
    expect(response.headers.getSetCookie()).toEqual(["endpoint_session=yes; Path=/; HttpOnly"]);
    expect(platform.requests[0]!.url).toBe(`${PLATFORM}/api/v1/envs/${org.preview.id}/endpoints/echo?q=1`);
    // The proxy lends no key of its own.
    expect(platform.requests[0]!.headers.get("x-mos-key")).toBeNull();
    expect(platform.requests[0]!.headers.get("authorization")).toBeNull();
  });

  it("sends the JWT cookie as X-MOS-User-Jwt unless the request has one, and passes the platform's answer as is", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({}), {}, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/mos-endpoints/echo", { cookie: "mos_jwt=bad.jwt.token" }));
    // The platform refuses the token: its 401 comes back unchanged.
    expect(response.status).toBe(401);
    expect(((await response.json()) as { code: string }).code).toBe("invalid_jwt");
    expect(platform.requests[0]!.headers.get("x-mos-user-jwt")).toBe("bad.jwt.token");
    await proxy.fetch(visit("/mos-endpoints/echo", { cookie: "mos_jwt=bad.jwt.token", headers: { "x-mos-user-jwt": "own.header.token" } }));
    expect(platform.requests[1]!.headers.get("x-mos-user-jwt")).toBe("own.header.token");
  });

  it("sends the package's version as X-MOS-Proxy-Version", () => {
    expect(PROXY_VERSION).toBe(packageJson.version);
  });
});

describe("failures", () => {
  const unreachable = async (): Promise<Response> => {
    throw new TypeError("connection refused");
  };

  it("fails open: the platform unreachable, the origin's page is served as is, and logged", async () => {
    const org = await scriptedTenant();
    const { logger, warnings } = recordingLogger();
    const html = page({ content: { remove: true } });
    const response = await proxyOver(org, originDouble({ "/a": html }), {}, { platform: unreachable, logger }).fetch(visit("/a"));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(html);
    expect(response.headers.get("cache-control")).toBe("public, max-age=600");
    expect(setCookie(response, "mos_anon")).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining("serving the origin's page as is")]);
  });

  it("fails open on a platform that answers garbage or times out", async () => {
    const org = await scriptedTenant();
    const html = page();
    const garbage = proxyOver(org, originDouble({ "/a": html }), {}, { platform: async () => new Response("<html>oops</html>", { status: 200 }) });
    expect(await (await garbage.fetch(visit("/a"))).text()).toBe(html);
    const never = proxyOver(org, originDouble({ "/a": html }), { decisionTimeoutMs: 20 }, { platform: (request) => new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(request.signal.reason))) });
    expect(await (await never.fetch(visit("/a"))).text()).toBe(html);
  });

  it("fails closed when asked: a 503 page with Retry-After", async () => {
    const org = await scriptedTenant();
    const response = await proxyOver(org, originDouble({ "/a": page() }), { failureMode: "closed" }, { platform: unreachable }).fetch(visit("/a"));
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("30");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.text()).not.toContain("Hello");
  });

  it("serves the page on a 4xx (a misconfiguration) and says so once per isolate", async () => {
    const org = await scriptedTenant();
    const { logger, errors } = recordingLogger();
    const html = page();
    const proxy = proxyOver(org, originDouble({ "/a": html }), { surfaceSlug: `no-such-surface-${crypto.randomUUID()}`, failureMode: "closed" }, { logger });
    for (let visitNumber = 0; visitNumber < 2; visitNumber++) {
      const response = await proxy.fetch(visit("/a", { cookie: "mos_anon=reader-4" }));
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(html);
    }
    expect(errors).toEqual([expect.stringMatching(/refused the surface decision for "no-such-surface-.*" \(404 surface_not_found\)/)]);
  });
});

describe("configuration", () => {
  const env = (overrides: Record<string, string>) => ({ PLATFORM_URL: PLATFORM, ORIGIN_URL: ORIGIN, SECRET_KEY: "sk_env_abc_secret", SURFACE_SLUG: "page", ...overrides });

  it("reads every var, with the defaults", () => {
    expect(configFromEnv(env({}))).toMatchObject({ platformUrl: PLATFORM, originUrl: ORIGIN, secretKey: "sk_env_abc_secret", surfaceSlug: "page", failureMode: undefined });
    const full = configFromEnv(
      env({
        SURFACES: '[{"pattern": "^/articles/", "surface": "article-page"}]',
        IGNORE_PATHS: "^/assets/, \\.css$",
        DECISION_TIMEOUT_MS: "800",
        FAILURE_MODE: "closed",
        JWT_FALLBACK: "false",
        ANONYMOUS_COOKIE: "anon",
        JWT_COOKIE: "jwt",
        ENDPOINTS_PREFIX: "/x/",
        API_PREFIX: "/y/",
        INJECT_SCRIPT_URL: "/e.js",
      }),
    );
    expect(full).toMatchObject({ surfaces: [{ pattern: "^/articles/", surface: "article-page" }], ignorePaths: ["^/assets/", "\\.css$"], decisionTimeoutMs: 800, failureMode: "closed", jwtFallback: false, anonymousCookie: "anon", jwtCookie: "jwt", endpointsPrefix: "/x/", apiPrefix: "/y/", injectScriptUrl: "/e.js" });
  });

  it("names the var that is wrong", () => {
    const settingOf = (overrides: Record<string, string>) => {
      try {
        createEdgeProxy(configFromEnv(env(overrides)));
        return null;
      } catch (error) {
        return error instanceof ConfigError ? error.setting : error;
      }
    };
    expect(settingOf({})).toBeNull();
    expect(settingOf({ PLATFORM_URL: "" })).toBe("PLATFORM_URL");
    expect(settingOf({ ORIGIN_URL: "not a url" })).toBe("ORIGIN_URL");
    expect(settingOf({ SECRET_KEY: "pk_env_abc_secret" })).toBe("SECRET_KEY");
    expect(settingOf({ SURFACES: "[{" })).toBe("SURFACES");
    expect(settingOf({ SURFACES: '[{"pattern": "(", "surface": "x"}]' })).toBe("SURFACES");
    expect(settingOf({ IGNORE_PATHS: "[" })).toBe("IGNORE_PATHS");
    expect(settingOf({ DECISION_TIMEOUT_MS: "soon" })).toBe("DECISION_TIMEOUT_MS");
    expect(settingOf({ FAILURE_MODE: "maybe" })).toBe("FAILURE_MODE");
    expect(settingOf({ JWT_FALLBACK: "yes" })).toBe("JWT_FALLBACK");
    expect(settingOf({ ANONYMOUS_COOKIE: "a b" })).toBe("ANONYMOUS_COOKIE");
    expect(settingOf({ ENDPOINTS_PREFIX: "mos" })).toBe("ENDPOINTS_PREFIX");
  });

  it("the Worker answers a 500 page naming the var (logged once), never a crash", async () => {
    const logged = expectConsoleError("edge-proxy: invalid configuration: SECRET_KEY");
    const brokenEnv = env({ SECRET_KEY: "" });
    const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } as unknown as ExecutionContext;
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await worker.fetch(visit("/a"), brokenEnv, ctx);
      expect(response.status).toBe(500);
      expect(await response.text()).toContain("SECRET_KEY: is required");
    }
    expect(logged.lines).toHaveLength(1);
  });
});
