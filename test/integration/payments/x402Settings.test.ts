/**
 * An environment's x402 settings through the admin API (workers/routes/admin/x402.ts): validated, read back as
 * written, one row per environment, reachable by its own organization only, and a plain-http facilitator only where
 * the operator allows loopback (X402_ALLOW_LOOPBACK_FACILITATOR; "true" in the tests' bindings).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../../workers/index";
import { getX402Settings } from "../../../workers/services/x402Settings";
import { call, callThrough, createOrganization, type TestOrganization } from "../../support/api";
import { trackedExecutionContext } from "../../support/background";

const x402Path = (environmentId: string) => `/api/v1/admin/environments/${environmentId}/payments/x402`;
const put = (org: TestOrganization, environmentId: string, body: unknown, key = org.adminKey) => call("PUT", x402Path(environmentId), { key, body });

const SETTINGS = {
  facilitatorUrl: "https://x402.example/facilitator",
  network: "eip155:84532",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
  extra: { name: "USDC", version: "2" },
};

const storedRow = (environmentId: string) => env.DB.prepare("SELECT * FROM x402_settings WHERE environment_id = ?").bind(environmentId).first<Record<string, unknown>>();

describe("an environment's x402 settings", () => {
  it("are set, read back as written (URL normalized, timeout defaulted), replaced whole, and removed", async () => {
    const org = await createOrganization("x402 settings");
    const path = x402Path(org.live.id);
    expect((await call("GET", path, { key: org.adminKey })).status).toBe(404);
    // Read before the settings exist: the decision path's cache remembers "none"…
    expect(await getX402Settings(env.DB, org.live.id)).toBeNull();

    const set = await put(org, org.live.id, SETTINGS);
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const expected = { ...SETTINGS, facilitatorUrl: "https://x402.example/facilitator/", maxTimeoutSeconds: 60, updatedAt: expect.any(String) };
    expect(set.body).toEqual(expected);
    expect((await call("GET", path, { key: org.adminKey })).body).toEqual(set.body);
    // The environment's own secret key reads them too.
    expect((await call("GET", path, { key: org.live.secretKey })).body).toEqual(set.body);
    // …and a write in this isolate is seen at once.
    expect(await getX402Settings(env.DB, org.live.id)).toEqual(set.body);
    expect(await storedRow(org.live.id)).toMatchObject({ organization_id: org.id, network: "eip155:84532", pay_to: SETTINGS.payTo, max_timeout_seconds: 60, extra: '{"name":"USDC","version":"2"}' });

    // A PUT replaces everything: what it leaves out is gone (extra) or back to its default.
    const { extra: _, ...withoutExtra } = SETTINGS;
    const replaced = await put(org, org.live.id, { ...withoutExtra, network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", maxTimeoutSeconds: 3600 });
    expect(replaced.body).toEqual({ ...withoutExtra, facilitatorUrl: "https://x402.example/facilitator/", network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", maxTimeoutSeconds: 3600, updatedAt: expect.any(String) });
    expect(await getX402Settings(env.DB, org.live.id)).toEqual(replaced.body);

    // One environment's settings are its own.
    expect((await call("GET", x402Path(org.preview.id), { key: org.adminKey })).status).toBe(404);

    const removed = await call("DELETE", path, { key: org.adminKey });
    expect(removed.status).toBe(204);
    expect(await storedRow(org.live.id)).toBeNull();
    expect(await getX402Settings(env.DB, org.live.id)).toBeNull();
    expect((await call("GET", path, { key: org.adminKey })).body).toMatchObject({ status: "error", code: "not_found", message: expect.stringMatching(/has no x402 settings/) });
    expect((await call("DELETE", path, { key: org.adminKey })).status).toBe(404);
  });

  it("refuse what is not a network, an address, a timeout or a facilitator the platform may call", async () => {
    const org = await createOrganization("x402 validation");
    const refusals: [Record<string, unknown>, string][] = [
      [{ network: "base-sepolia" }, "network"],
      [{ network: "eip155:" }, "network"],
      [{ network: "EIP155:8453" }, "network"],
      [{ asset: "" }, "asset"],
      [{ asset: "0x036C bD53" }, "asset"],
      [{ asset: "a".repeat(257) }, "asset"],
      [{ payTo: undefined }, "payTo"],
      [{ payTo: 42 }, "payTo"],
      [{ maxTimeoutSeconds: 0 }, "maxTimeoutSeconds"],
      [{ maxTimeoutSeconds: 3601 }, "maxTimeoutSeconds"],
      [{ maxTimeoutSeconds: 1.5 }, "maxTimeoutSeconds"],
      [{ extra: ["USDC"] }, "extra"],
      [{ extra: { padding: "x".repeat(1100) } }, "extra"],
      [{ facilitatorUrl: "not a url" }, "facilitatorUrl"],
      [{ facilitatorUrl: "http://x402.example/facilitator" }, "facilitatorUrl"],
      [{ facilitatorUrl: "ftp://x402.example/" }, "facilitatorUrl"],
      [{ facilitatorUrl: "https://user:secret@x402.example/" }, "facilitatorUrl"],
      [{ facilitatorUrl: "https://x402.example/?key=1" }, "facilitatorUrl"],
      [{ facilitatorUrl: `https://x402.example/${"a".repeat(2048)}` }, "facilitatorUrl"],
    ];
    for (const [change, field] of refusals) {
      const refused = await put(org, org.live.id, { ...SETTINGS, ...change });
      expect(refused.status, JSON.stringify(change)).toBe(400);
      expect(refused.body, JSON.stringify(change)).toMatchObject({ status: "error", code: "validation_failed", details: [expect.objectContaining({ path: field })] });
    }
    expect(await storedRow(org.live.id)).toBeNull();
  });

  it("take a plain-http loopback facilitator only where the operator allows it", async () => {
    const org = await createOrganization("x402 loopback");
    const loopback = { ...SETTINGS, facilitatorUrl: "http://127.0.0.1:8402" };
    const allowed = await put(org, org.live.id, loopback);
    expect(allowed.status).toBe(200);
    expect(allowed.body.facilitatorUrl).toBe("http://127.0.0.1:8402/");
    await call("DELETE", x402Path(org.live.id), { key: org.adminKey });

    // The same Worker, deployed as production is: X402_ALLOW_LOOPBACK_FACILITATOR "false" (wrangler.toml).
    const production = async (request: Request) => worker.fetch(request, { ...env, X402_ALLOW_LOOPBACK_FACILITATOR: "false" }, trackedExecutionContext());
    for (const facilitatorUrl of ["http://127.0.0.1:8402", "http://localhost:8402/x402", "http://[::1]:8402"]) {
      const refused = await callThrough(production, "PUT", x402Path(org.live.id), { key: org.adminKey, body: { ...SETTINGS, facilitatorUrl } });
      expect(refused.status, facilitatorUrl).toBe(400);
      expect(refused.body).toMatchObject({
        code: "validation_failed",
        details: [{ path: "facilitatorUrl", message: expect.stringMatching(/https.*loopback is not enabled/) }],
      });
    }
    const https = await callThrough(production, "PUT", x402Path(org.live.id), { key: org.adminKey, body: SETTINGS });
    expect(https.status).toBe(200);
    expect(await storedRow(org.live.id)).toMatchObject({ facilitator_url: "https://x402.example/facilitator/" });
  });

  it("are another organization's environment to no one (404), and another environment's key may not touch them (403)", async () => {
    const org = await createOrganization("x402 owner");
    const stranger = await createOrganization("x402 stranger");
    const readOnly = (await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "reader", role: "read-only" } })).body.key as string;
    expect((await put(org, org.live.id, SETTINGS)).status).toBe(200);
    for (const method of ["GET", "PUT", "DELETE"]) {
      const body = method === "PUT" ? SETTINGS : undefined;
      const strangers = await call(method, x402Path(org.live.id), { key: stranger.adminKey, body });
      expect(strangers.status, method).toBe(404);
      const previewKey = await call(method, x402Path(org.live.id), { key: org.preview.secretKey, body });
      expect(previewKey.status, method).toBe(403);
      expect(previewKey.body).toMatchObject({ status: "error", code: "forbidden" });
      expect((await call(method, x402Path(org.live.id), { key: org.live.publishableKey, body })).status, method).toBe(403);
    }
    // A read-only organization key reads them, and may not change them.
    expect((await call("GET", x402Path(org.live.id), { key: readOnly })).status).toBe(200);
    expect((await call("PUT", x402Path(org.live.id), { key: readOnly, body: SETTINGS })).status).toBe(403);
    expect((await call("DELETE", x402Path(org.live.id), { key: readOnly })).status).toBe(403);
    // The environment's own secret key may set them.
    expect((await put(org, org.live.id, { ...SETTINGS, maxTimeoutSeconds: 30 }, org.live.secretKey)).body.maxTimeoutSeconds).toBe(30);
    expect(await storedRow(org.live.id)).toMatchObject({ max_timeout_seconds: 30 });
  });

  it("go with their environment when the environment is deleted", async () => {
    const org = await createOrganization("x402 environment deleted");
    const created = await call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: "staging", type: "preview" } });
    const environmentId = created.body.environment.id as string;
    expect((await put(org, environmentId, SETTINGS)).status).toBe(200);
    expect((await call("DELETE", `/api/v1/admin/environments/${environmentId}`, { key: org.adminKey })).status).toBe(200);
    expect(await storedRow(environmentId)).toBeNull();
  });
});
