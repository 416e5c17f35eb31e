/**
 * The example API against the real platform in-process: config.yaml applied to a new organization, the app's own
 * fetch called with the env a deployment would have, the platform reached through a service-binding-like PLATFORM.
 */
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { createOrganization, fetchWorker, publish, type TestOrganization } from "../../../test/support/api";
import configYaml from "../config.yaml?raw";
import app, { type Env } from "../src/index";

let org: TestOrganization;
let env: Env;

beforeAll(async () => {
  org = await createOrganization("Hono example app");
  await publish(org.adminKey, parse(configYaml), [org.live.id]);
  env = { PLATFORM_URL: "http://platform.test", SURFACE_SLUG: "article-api", SECRET_KEY: org.live.secretKey, FAILURE_MODE: "closed", PLATFORM: { fetch: fetchWorker } };
});

async function get(path: string, cookie?: string) {
  const response = await app.fetch(new Request(`http://127.0.0.1:8788${path}`, { headers: cookie ? { cookie } : {} }), env);
  return { status: response.status, body: (await response.json()) as any, setCookies: response.headers.getSetCookie() };
}

describe("examples/hono-app", () => {
  it("serves three articles to a new reader on one cookie, then answers 402 with the upgrade offers", async () => {
    const first = await get("/api/articles/edge-computing");
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: "edge-computing", title: "Computing at the edge", freeArticlesLeft: 2 });
    expect(first.setCookies).toHaveLength(1);
    const cookie = first.setCookies[0]!.split(";")[0]!;
    expect(cookie).toMatch(/^mos_anon=anon_/);

    for (const [id, left] of [["metered-paywalls", 1], ["durable-objects", 0]] as const) {
      const read = await get(`/api/articles/${id}`, cookie);
      expect(read.status, id).toBe(200);
      expect(read.body.freeArticlesLeft, id).toBe(left);
      expect(read.setCookies, "the cookie is reused, not minted again").toEqual([]);
    }

    const denied = await get("/api/articles/offers-that-convert", cookie);
    expect(denied.status).toBe(402);
    expect(denied.body).toMatchObject({ status: "error", code: "payment_required", feature: "articles.enabled", reason: "limit_reached" });
    expect(denied.body.offers.map((offer: any) => [offer.offer, offer.priceDisplay !== undefined, typeof offer.token])).toEqual([
      ["premium-monthly", true, "string"],
      ["premium-yearly", true, "string"],
    ]);

    // An article already read stays readable (unique resources), and /api/me sees the same anonymous reader.
    expect((await get("/api/articles/edge-computing", cookie)).status).toBe(200);
    const me = await get("/api/me", cookie);
    expect(me.body).toMatchObject({ identity: { authType: "anonymous", identifier: cookie.slice("mos_anon=".length) }, plans: ["anonymous"] });
  });

  it("meters a reader who also sends a JWT that does not verify on their anonymous cookie: no free reads from a junk token", async () => {
    const reader = `mos_anon=reader-${crypto.randomUUID()}`;
    for (const id of ["edge-computing", "metered-paywalls", "durable-objects"]) expect((await get(`/api/articles/${id}`, reader)).status, id).toBe(200);
    const response = await app.fetch(new Request("http://127.0.0.1:8788/api/articles/offers-that-convert", { headers: { cookie: `mos_jwt=anything-invalid; ${reader}` } }), env);
    expect(response.status).toBe(402);
    // The offers' tokens belong to this reader: no cache may hand them to another.
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it("answers 404 for an unknown article without using up a free one", async () => {
    const cookie = `mos_anon=reader-${crypto.randomUUID()}`;
    expect((await get("/api/articles/no-such-article", cookie)).status).toBe(404);
    expect((await get("/api/articles/edge-computing", cookie)).body.freeArticlesLeft).toBe(2);
  });

  it("lists the articles without asking the platform", async () => {
    const unreachable: Env = { ...env, PLATFORM: { fetch: () => Promise.reject(new TypeError("connection refused")) } };
    const response = await app.fetch(new Request("http://127.0.0.1:8788/api/articles"), unreachable);
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).articles).toHaveLength(5);
  });
});
