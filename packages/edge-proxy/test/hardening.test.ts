/**
 * What a visitor (or another site) could do to get a page without its decision, or to turn the proxy against the
 * site: each case through createEdgeProxy with the real platform in process and an origin double.
 */
import { describe, expect, it } from "vitest";
import { createEdgeProxy } from "../src/index";
import { rewritePage } from "../src/content/rewrite";
import { MAX_PAGE_BYTES } from "../src/stages/origin";
import { echoed, ORIGIN, originDouble, page, PLATFORM, proxyOver, recordedPlatform, recordingLogger, scriptedTenant, setCookie, SITE, visit } from "./support";

const unreachable = async (): Promise<Response> => {
  throw new TypeError("connection refused");
};

describe("the origin request stays on ORIGIN_URL", () => {
  it("keeps `//host/…` and `/\\host/…` paths on the origin (slashes merged, as matched)", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({});
    const proxy = proxyOver(org, origin);
    await proxy.fetch(visit("//evil.example/x?q=1"));
    await proxy.fetch(visit("/\\evil.example/x"));
    expect(origin.requests.map((request) => request.url)).toEqual([`${ORIGIN}/evil.example/x?q=1`, `${ORIGIN}/evil.example/x`]);
  });

  it("sends a redirect to ORIGIN_URL to the same path and query on the visitor's host; others pass as they are", async () => {
    const org = await scriptedTenant();
    const redirect = (location: string) => new Response(null, { status: 302, headers: { location } });
    const origin = originDouble({ "/to-origin": redirect(`${ORIGIN}/login?next=%2Fa#top`), "/relative": redirect("/login"), "/away": redirect("https://elsewhere.example/x") });
    const proxy = proxyOver(org, origin);
    expect((await proxy.fetch(visit("/to-origin"))).headers.get("location")).toBe(`${SITE}/login?next=%2Fa#top`);
    expect((await proxy.fetch(visit("/relative"))).headers.get("location")).toBe("/login");
    expect((await proxy.fetch(visit("/away"))).headers.get("location")).toBe("https://elsewhere.example/x");
  });
});

describe("what the visitor sends cannot get the page undecided", () => {
  it("treats an anonymous cookie that cannot be an identifier as none: a new visitor, a new cookie (closed mode too)", async () => {
    const org = await scriptedTenant();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), { failureMode: "closed" });
    for (const bad of ["x".repeat(513), "a\\b"]) {
      const response = await proxy.fetch(visit("/a", { cookie: `mos_anon=${bad}` }));
      expect(response.status).toBe(200);
      const told = echoed(await response.text());
      expect(told.identifier).toMatch(/^anon_/);
      expect(setCookie(response, "mos_anon")).toBe(`mos_anon=${told.identifier}; Path=/; Max-Age=34560000; SameSite=Lax; Secure`);
    }
  });

  it("decides a refused JWT again as the visitor's anonymous cookie, without the fallback", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), { failureMode: "closed" }, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/a", { cookie: "mos_jwt=not.a.jwt; mos_anon=reader-7" }));
    expect(echoed(await response.text())).toMatchObject({ identifier: "reader-7", authType: "anonymous" });
    expect(setCookie(response, "mos_anon")).toBeUndefined();
    const identities = await Promise.all(platform.requests.map(async (request) => ((await request.json()) as { identity: unknown }).identity));
    expect(identities).toEqual([{ userJwt: "not.a.jwt" }, { anonymousIdentifier: "reader-7" }]);
  });

  it("with JWT_FALLBACK=false, a refused JWT without an anonymous cookie is a new visitor (closed mode: not the page as is)", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const html = page({ echo: true });
    const proxy = proxyOver(org, originDouble({ "/a": html }), { failureMode: "closed", jwtFallback: false }, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/a", { cookie: "mos_jwt=not.a.jwt" }));
    expect(response.status).toBe(200);
    const told = echoed(await response.text());
    expect(told.identifier).toMatch(/^anon_/);
    expect(setCookie(response, "mos_anon")).toContain(`mos_anon=${told.identifier};`);
    const identities = await Promise.all(platform.requests.map(async (request) => ((await request.json()) as { identity: unknown }).identity));
    expect(identities).toEqual([{ userJwt: "not.a.jwt" }, { createAnonymousIdentifier: true }]);
  });

  it("answers a middleware's refusal with its status in a small page, never the page", async () => {
    const org = await scriptedTenant();
    for (const failureMode of ["open", "closed"] as const) {
      const response = await proxyOver(org, originDouble({ "/a": page({ main: "<p>Secret article</p>" }) }), { failureMode }).fetch(visit("/a", { cookie: "mos_anon=blocked-visitor" }));
      expect(response.status).toBe(451);
      expect(response.headers.get("cache-control")).toBe("no-store");
      const body = await response.text();
      expect(body).toContain("Not for you");
      expect(body).not.toContain("Secret article");
    }
  });

  it("cuts a long User-Agent and Referer to the platform's bounds instead of losing the decision", async () => {
    const org = await scriptedTenant();
    const { logger, errors } = recordingLogger();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), { failureMode: "closed" }, { logger });
    const response = await proxy.fetch(visit("/a", { cookie: "mos_anon=reader-8", headers: { "user-agent": "U".repeat(5000), referer: `${SITE}/${"r".repeat(9000)}` } }));
    const told = echoed(await response.text());
    expect(told.userAgent).toHaveLength(2048);
    expect(told.referer).toHaveLength(8192);
    expect(errors).toEqual([]);
  });

  it("asks the origin for a decided page whole and fresh: no Range or validators; only a 200 is decided", async () => {
    const org = await scriptedTenant();
    const html = page();
    // An origin that honours what it is asked for.
    const origin = originDouble({
      "/a": (request) => {
        if (request.headers.get("range")) return new Response(html.slice(0, 20), { status: 206, headers: { "content-type": "text/html", "content-range": `bytes 0-19/${html.length}` } });
        if (request.headers.get("if-none-match") || request.headers.get("if-modified-since")) return new Response(null, { status: 304 });
        return new Response(html, { headers: { "content-type": "text/html", etag: '"v1"' } });
      },
      "/partial": new Response(html.slice(0, 20), { status: 206, headers: { "content-type": "text/html" } }),
      "/other-2xx": new Response(html, { status: 203, headers: { "content-type": "text/html" } }),
    });
    const proxy = proxyOver(org, origin);
    const asked = { "cookie": "mos_anon=reader-9", headers: { range: "bytes=0-19", "if-range": '"v1"', "if-none-match": '"v1"', "if-modified-since": new Date().toUTCString() } };
    const response = await proxy.fetch(visit("/a", asked));
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    for (const name of ["range", "if-range", "if-none-match", "if-modified-since"]) expect(origin.requests[0]!.headers.get(name)).toBeNull();
    // Not decided, whatever the origin answers: the statuses a decided request can no longer produce pass as they are.
    const partial = await proxy.fetch(visit("/partial", { cookie: "mos_anon=reader-9" }));
    expect(partial.status).toBe(206);
    expect(partial.headers.get("cache-control")).toBeNull();
    const other = await proxy.fetch(visit("/other-2xx", { cookie: "mos_anon=reader-9" }));
    expect(other.status).toBe(203);
    expect(other.headers.get("cache-control")).toBeNull();
    // A HEAD is not decided: its validators go to the origin as the visitor sent them.
    await proxy.fetch(visit("/a", { ...asked, method: "HEAD" }));
    expect(origin.requests.at(-1)!.headers.get("range")).toBe("bytes=0-19");
  });

  it("matches SURFACES and IGNORE_PATHS on the path with unreserved escapes decoded, the decoded path as the resource", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const origin = originDouble({ "/articles/x": page({ echo: true }), "/articles/assets/y": page() });
    const proxy = proxyOver(org, origin, { surfaceSlug: undefined, surfaces: [{ pattern: "^/articles/", surface: "page" }], ignorePaths: ["^/articles/assets/"] }, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/%61rticles/x", { cookie: "mos_anon=reader-10" }));
    expect(echoed(await response.text()).resource.id).toBe("/articles/x");
    // The origin is asked for the path that was matched: what is decided is what is served.
    expect(origin.requests[0]!.url).toBe(`${ORIGIN}/articles/x`);
    const ignored = await proxy.fetch(visit("/articles/%61ssets/y", { cookie: "mos_anon=reader-10" }));
    expect(ignored.headers.get("cache-control")).toBe("public, max-age=600");
    expect(platform.requests).toHaveLength(1);
  });

  it("answers 414 to a path too long to match, or a decided path too long to be a resource, without asking the origin", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({});
    const proxy = proxyOver(org, origin, { surfaceSlug: undefined, surfaces: [{ pattern: "^/articles/", surface: "page" }] });
    expect((await proxy.fetch(visit(`/${"x".repeat(5000)}`))).status).toBe(414);
    expect((await proxy.fetch(visit(`/articles/${"x".repeat(600)}`))).status).toBe(414);
    expect(origin.requests).toEqual([]);
    // A long path no surface covers is the origin's.
    expect((await proxy.fetch(visit(`/other/${"x".repeat(600)}`))).status).toBe(404);
  });

  it("refuses a prefetch of a decided page (503, no-store) without asking the platform or the origin", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const origin = originDouble({ "/a": page() });
    const proxy = proxyOver(org, origin, {}, { platform: platform.fetch });
    const prefetches: Record<string, string>[] = [{ "sec-purpose": "prefetch" }, { "sec-purpose": "prefetch;prerender" }, { purpose: "prefetch" }];
    for (const headers of prefetches) {
      const response = await proxy.fetch(visit("/a", { headers }));
      expect(response.status).toBe(503);
      expect(response.headers.get("cache-control")).toBe("no-store");
    }
    expect(platform.requests).toEqual([]);
    expect(origin.requests).toEqual([]);
  });
});

describe("pages the proxy does not decide", () => {
  it("passes a page in another charset through byte for byte, and says so once", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const { logger, warnings } = recordingLogger();
    // "Café" in ISO-8859-1: é is the single byte 0xE9.
    const bytes = new Uint8Array([...new TextEncoder().encode("<html><head></head><body><div id=\"main\">Caf"), 0xe9, ...new TextEncoder().encode("</div></body></html>")]);
    const origin = originDouble({ "/latin": () => new Response(bytes, { headers: { "content-type": "text/html; charset=ISO-8859-1" } }) });
    const proxy = proxyOver(org, origin, {}, { platform: platform.fetch, logger });
    for (let visitNumber = 0; visitNumber < 2; visitNumber++) {
      const response = await proxy.fetch(visit("/latin"));
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
    }
    expect(platform.requests).toEqual([]);
    expect(warnings).toEqual([expect.stringContaining("is not UTF-8")]);
  });

  it("decides a page whose charset is utf-8 in any spelling", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({ "/a": () => new Response(page(), { headers: { "content-type": 'text/html; charset="UTF-8"' } }) });
    expect((await proxyOver(org, origin).fetch(visit("/a"))).headers.get("cache-control")).toBe("private, no-store");
  });

  it("does not decide a page over 5 MiB: open serves it as it came (declared or streamed), closed answers 503", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const big = page({ main: `<p>${"x".repeat(MAX_PAGE_BYTES)}</p>` });
    const chunk = new TextEncoder().encode("y".repeat(1024 * 1024));
    const streamed = () => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 6) controller.close();
          else {
            sent++;
            controller.enqueue(chunk);
          }
        },
      });
      return new Response(body, { headers: { "content-type": "text/html" } });
    };
    const origin = originDouble({ "/big": big, "/streamed": streamed });
    const open = proxyOver(org, origin, {}, { platform: platform.fetch });
    const served = await open.fetch(visit("/big"));
    expect(served.status).toBe(200);
    expect(await served.text()).toBe(big);
    const servedStream = await open.fetch(visit("/streamed"));
    expect((await servedStream.arrayBuffer()).byteLength).toBe(6 * chunk.byteLength);
    const closed = proxyOver(org, origin, { failureMode: "closed" }, { platform: platform.fetch });
    expect((await closed.fetch(visit("/big"))).status).toBe(503);
    expect((await closed.fetch(visit("/streamed"))).status).toBe(503);
    expect(platform.requests).toEqual([]);
  });
});

describe("custom endpoints", () => {
  it("answers 503 service_unavailable with Retry-After when the platform cannot be reached", async () => {
    const org = await scriptedTenant();
    const response = await proxyOver(org, originDouble({}), {}, { platform: unreachable }).fetch(visit("/mos-endpoints/echo", { method: "POST", body: "x" }));
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await response.json()).toMatchObject({ status: "error", statusCode: 503, code: "service_unavailable", message: expect.any(String) });
  });

  it("lends the JWT cookie to an unsafe method only when the request is the site's own (no cross-site forgery)", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({}), {}, { platform: platform.fetch });
    const post = (headers: Record<string, string>) => proxy.fetch(visit("/mos-endpoints/echo", { method: "POST", body: "x", cookie: "mos_jwt=user.jwt.token", headers }));
    await post({});
    await post({ "sec-fetch-site": "cross-site", origin: "https://evil.example" });
    await post({ origin: "https://evil.example" });
    await post({ "sec-fetch-site": "same-origin" });
    await post({ "sec-fetch-site": "same-site" });
    await post({ origin: SITE });
    await proxy.fetch(visit("/mos-endpoints/echo", { cookie: "mos_jwt=user.jwt.token", headers: { "sec-fetch-site": "cross-site" } }));
    expect(platform.requests.map((request) => request.headers.get("x-mos-user-jwt"))).toEqual([null, null, null, "user.jwt.token", "user.jwt.token", "user.jwt.token", "user.jwt.token"]);
  });
});

describe("small things", () => {
  it("sets no cookie for a minted identifier that cannot be a cookie value (logged)", async () => {
    const decision = { features: {}, identity: { authType: "anonymous", identifier: "anon_a;b", isAuthenticated: false, jwtClaims: {} }, surfaceBehavior: {}, componentsSkipped: false, componentBehaviors: {}, offers: {} };
    const { logger, warnings } = recordingLogger();
    const proxy = createEdgeProxy({ platformUrl: PLATFORM, secretKey: "sk_env_test_secret", originUrl: ORIGIN, surfaceSlug: "page" }, { platform: async () => Response.json(decision), origin: originDouble({ "/a": page() }).fetch, logger });
    const response = await proxy.fetch(visit("/a"));
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(setCookie(response, "mos_anon")).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining("cannot be a cookie value")]);
  });

  it("injects the script at the start of <body> when the page has no <head>", async () => {
    const { logger } = recordingLogger();
    const html = await rewritePage(`<!doctype html><title>x</title><body><p>Hi</p></body>`, [], { injectScriptUrl: "/e.js", logger });
    expect(html).toBe(`<!doctype html><title>x</title><body><script src="/e.js" type="module" async></script><p>Hi</p></body>`);
    const withHead = await rewritePage(`<head></head><body></body>`, [], { injectScriptUrl: "/e.js", logger });
    expect(withHead).toBe(`<head><script src="/e.js" type="module" async></script></head><body></body>`);
  });

  it("logs a component's invalid selector once, not on every page", async () => {
    const { logger, warnings } = recordingLogger();
    const edit = { slug: "broken", selector: "p[", before: "", prepend: "", append: "<b>x</b>", after: "", remove: false, range: null };
    for (let view = 0; view < 3; view++) await rewritePage("<p>Hi</p>", [edit], { logger });
    expect(warnings).toHaveLength(1);
  });
});

describe("the decision's body stays under the platform's bound", () => {
  const identitiesSent = (requests: Request[]) => Promise.all(requests.map(async (request) => ((await request.json()) as { identity: unknown }).identity));

  it("sends no JWT the platform would refuse unread (over 16,384 characters, not a JWT): the anonymous visitor, closed mode too", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), { failureMode: "closed" }, { platform: platform.fetch });
    for (const jwt of ["x".repeat(70_000), `${"a".repeat(16_381)}.b.c`, 'a"b.c\\d.e']) {
      const response = await proxy.fetch(visit("/a", { cookie: `mos_jwt=${jwt}; mos_anon=reader-11` }));
      expect(response.status).toBe(200);
      expect(echoed(await response.text())).toMatchObject({ identifier: "reader-11", authType: "anonymous" });
    }
    expect(await identitiesSent(platform.requests)).toEqual([{ anonymousIdentifier: "reader-11" }, { anonymousIdentifier: "reader-11" }, { anonymousIdentifier: "reader-11" }]);
  });

  it("fits the worst a visitor can send (escaped facts, a JWT at the limit) and a page's endless meta into 64 KiB", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const { logger, errors, warnings } = recordingLogger();
    // JSON doubles every `"` and `\`: each fact at its bound, all escaped.
    const quotes = (length: number) => '"'.repeat(length);
    const jwtAtLimit = `${"a".repeat(16_384 - 4)}.b.c`;
    const endlessMeta = Array.from({ length: 200 }, (_, index) => `<meta name="m${index}" content="${"&quot;".repeat(500)}">`).join("");
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true, head: endlessMeta }) }), { failureMode: "closed" }, { platform: platform.fetch, logger });
    const response = await proxy.fetch(
      visit(`/a?${"\\".repeat(9000)}`, {
        cookie: `mos_jwt=${jwtAtLimit}; mos_anon=reader-12`,
        headers: { "user-agent": quotes(5000), referer: `${SITE}/?${quotes(9000)}`, "x-forwarded-for": quotes(200) },
      }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    const told = echoed(await response.text());
    expect(told).toMatchObject({ identifier: "reader-12", userAgent: quotes(2048) });
    expect(told.resource.meta["test-echo"]).toBe("yes");
    // The JWT went (refused: the tenant has no JWT method), then the anonymous cookie.
    expect(await identitiesSent(platform.requests.map((request) => request.clone()))).toEqual([{ userJwt: jwtAtLimit }, { anonymousIdentifier: "reader-12" }]);
    for (const request of platform.requests) expect((await request.arrayBuffer()).byteLength).toBeLessThanOrEqual(64 * 1024);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([expect.stringContaining("more <meta> than a decision can carry")]);
  });

  it("follows FAILURE_MODE when the platform still refuses the body as too large (not the operator's to fix)", async () => {
    const tooLarge = async () => Response.json({ status: "error", statusCode: 413, code: "payload_too_large", message: "Request body larger than 65536 bytes", requestId: "req_1" }, { status: 413 });
    const { logger, errors } = recordingLogger();
    const build = (failureMode: "open" | "closed") =>
      createEdgeProxy({ platformUrl: PLATFORM, secretKey: "sk_env_test_secret", originUrl: ORIGIN, surfaceSlug: "page", failureMode }, { platform: tooLarge, origin: originDouble({ "/a": page({ main: "<p>Secret article</p>" }) }).fetch, logger });
    const closed = await build("closed").fetch(visit("/a"));
    expect(closed.status).toBe(503);
    expect(await closed.text()).not.toContain("Secret article");
    const open = await build("open").fetch(visit("/a"));
    expect(open.status).toBe(200);
    expect(await open.text()).toContain("Secret article");
    expect(errors).toEqual([]);
  });

  it("redeems with the anonymous cookie, never a JWT the platform would refuse unread", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({}), {}, { platform: platform.fetch });
    const response = await proxy.fetch(
      visit("/mos-api/offer-redemptions", { method: "POST", cookie: `mos_jwt=${"x".repeat(70_000)}; mos_anon=reader-13`, headers: { "content-type": "application/json" }, body: JSON.stringify({ offerToken: "not-a-token" }) }),
    );
    expect(response.status).not.toBe(413);
    expect(await identitiesSent(platform.requests)).toEqual([{ anonymousIdentifier: "reader-13" }]);
  });
});

describe("what is decided is what is served", () => {
  it("merges repeated slashes before matching SURFACES, and asks the origin for the path as matched", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({ "/articles/x": page({ echo: true }) });
    const proxy = proxyOver(org, origin, { surfaceSlug: undefined, surfaces: [{ pattern: "^/articles/", surface: "page" }] });
    const response = await proxy.fetch(visit("//articles//x?q=1", { cookie: "mos_anon=reader-14" }));
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(echoed(await response.text()).resource.id).toBe("/articles/x");
    expect(origin.requests.map((request) => request.url)).toEqual([`${ORIGIN}/articles/x?q=1`]);
  });

  it("answers the 502 page when the origin's body breaks off while it is read", async () => {
    const org = await scriptedTenant();
    const broken = () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("<html><head></head><body><div id=\"main\">Secret"));
          controller.error(new TypeError("connection reset"));
        },
      });
      return new Response(body, { headers: { "content-type": "text/html" } });
    };
    const response = await proxyOver(org, originDouble({ "/a": broken })).fetch(visit("/a"));
    expect(response.status).toBe(502);
    expect(await response.text()).not.toContain("Secret");
  });

  it("asks the origin for HTML on a decided request (Accept set, Accept-Charset dropped); other requests keep the visitor's", async () => {
    const org = await scriptedTenant();
    // An origin that negotiates.
    const origin = originDouble({
      "/a": (request) => ((request.headers.get("accept") ?? "").includes("application/json") ? Response.json({ article: "Secret article" }) : new Response(page(), { headers: { "content-type": "text/html" } })),
    });
    const proxy = proxyOver(org, origin, { ignorePaths: ["^/feed"] });
    const headers = { accept: "application/json", "accept-charset": "iso-8859-1" };
    const response = await proxy.fetch(visit("/a", { cookie: "mos_anon=reader-15", headers }));
    expect(response.headers.get("content-type")).toBe("text/html");
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(origin.requests[0]!.headers.get("accept")).toBe("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8");
    expect(origin.requests[0]!.headers.get("accept-charset")).toBeNull();
    await proxy.fetch(visit("/feed", { headers }));
    expect(origin.requests[1]!.headers.get("accept")).toBe("application/json");
    expect(origin.requests[1]!.headers.get("accept-charset")).toBe("iso-8859-1");
  });

  it("decides a page answered to a POST with FAILURE_MODE=closed; passes it with open", async () => {
    const org = await scriptedTenant();
    const origin = originDouble({ "/a": (request) => new Response(request.method === "POST" ? page({ echo: true, main: "<p>Hello</p>" }) : "", { headers: { "content-type": "text/html" } }) });
    const post = () => visit("/a", { method: "POST", cookie: "mos_anon=reader-16", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "comment=hi" });
    const closed = await proxyOver(org, origin, { failureMode: "closed" }).fetch(post());
    expect(closed.headers.get("cache-control")).toBe("private, no-store");
    expect(echoed(await closed.text()).identifier).toBe("reader-16");
    expect(origin.requests[0]!.method).toBe("POST");
    expect(new TextDecoder().decode(await origin.requests[0]!.arrayBuffer())).toBe("comment=hi");
    const open = await proxyOver(org, origin, { failureMode: "open" }).fetch(post());
    expect(open.headers.get("cache-control")).toBeNull();
    // HEAD has no body to hand out: it passes in either mode.
    const head = await proxyOver(org, origin, { failureMode: "closed" }).fetch(visit("/a", { method: "HEAD" }));
    expect(head.headers.get("cache-control")).toBeNull();
  });

  it("takes the first usable anonymous cookie when the cookie repeats", async () => {
    const org = await scriptedTenant();
    const response = await proxyOver(org, originDouble({ "/a": page({ echo: true }) })).fetch(visit("/a", { cookie: `mos_anon=${"x".repeat(513)}; mos_anon=a\\b; mos_anon=reader-17` }));
    expect(echoed(await response.text()).identifier).toBe("reader-17");
    expect(setCookie(response, "mos_anon")).toBeUndefined();
  });
});
