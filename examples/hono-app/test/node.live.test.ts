/**
 * The example app on Node (not workerd): the same Hono app and middleware, run by Node against `wrangler dev` (started
 * by test/browser/global-setup.ts) through Node's own fetch — what `@hono/node-server` would hand it, minus the socket.
 */
import { parse } from "yaml";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { baseUrl, createOrganization, must } from "../../../test/browser/support";
import app, { type Env } from "../src/index";

const config = parse(readFileSync(path.join(import.meta.dirname, "../config.yaml"), "utf8"));

describe("examples/hono-app on Node", () => {
  it("meters a reader on the cookie it mints, then answers 402 with the offers", async () => {
    expect(typeof process.versions.node).toBe("string");
    const org = await createOrganization("Hono example on Node");
    await must("PUT", "/api/v1/admin/config", 200, { key: org.adminKey, body: config });
    const version = await must("POST", "/api/v1/admin/versions", 201, { key: org.adminKey, body: { description: "hono on node" } });
    await must("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, 201, { key: org.adminKey, body: { versionId: version.id } });
    const env: Env = { PLATFORM_URL: baseUrl, SURFACE_SLUG: "article-api", SECRET_KEY: org.live.secretKey, FAILURE_MODE: "closed" };
    const get = (id: string, cookie?: string) => app.fetch(new Request(`http://127.0.0.1:3000/api/articles/${id}`, { headers: cookie ? { cookie } : {} }), env);

    const first = await get("edge-computing");
    expect(first.status).toBe(200);
    const cookie = first.headers.getSetCookie()[0]!.split(";")[0]!;
    expect(cookie).toMatch(/^mos_anon=anon_/);
    for (const id of ["metered-paywalls", "durable-objects"]) expect((await get(id, cookie)).status, id).toBe(200);
    const denied = await get("offers-that-convert", cookie);
    expect(denied.status).toBe(402);
    const body = (await denied.json()) as { code: string; offers: { offer: string; token: string }[] };
    expect(body.code).toBe("payment_required");
    expect(body.offers.map((offer) => offer.offer)).toEqual(["premium-monthly", "premium-yearly"]);
  });
});
