/**
 * An environment's Stripe connection through the admin API (workers/routes/admin/payments.ts): the keys go in
 * encrypted, only metadata comes back, and an environment takes only the mode of keys its type allows.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIFECYCLE_POLICY } from "../../../workers/payments/lifecycle";
import { PaymentConnectionUnreadableError, stripeCredentials } from "../../../workers/services/paymentConnections";
import { call, createOrganization, type TestOrganization } from "../../support/api";

const TEST_KEY = "sk_test_51FakeTestKeyForThePlatform0001abcd";
const LIVE_KEY = "sk_live_51FakeLiveKeyForThePlatform0002wxyz";
const RESTRICTED_LIVE_KEY = "rk_live_51FakeRestrictedLiveKey00003rk42";
const WEBHOOK_SECRET = "whsec_FakeSigningSecretForTheTests0123";

const stripePath = (environmentId: string) => `/api/v1/admin/environments/${environmentId}/payments/stripe`;
const connect = (org: TestOrganization, environmentId: string, body: unknown, key = org.adminKey) => call("PUT", stripePath(environmentId), { key, body });

async function storedRow(environmentId: string) {
  return env.DB.prepare("SELECT * FROM payment_connections WHERE environment_id = ?").bind(environmentId).first<Record<string, unknown>>();
}

describe("an environment's Stripe connection", () => {
  it("is stored encrypted, answered as metadata only, and disconnected", async () => {
    const org = await createOrganization("Stripe connection");
    const path = stripePath(org.preview.id);
    expect((await call("GET", path, { key: org.adminKey })).status).toBe(404);

    const put = await connect(org, org.preview.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET });
    expect(put.status).toBe(200);
    const metadata = {
      provider: "stripe",
      mode: "test",
      keyHint: "sk_test_…abcd",
      webhookSecretSet: true,
      webhookUrl: `/api/v1/envs/${org.preview.id}/payments/stripe/webhooks`,
      policy: { pastDueGraceHours: 72, revokeOnRefund: true, revokeOnDispute: true },
      checkout: { allowedOrigins: [], automaticTax: true },
      connectedAt: expect.any(String),
      updatedAt: expect.any(String),
    };
    expect(put.body).toEqual(metadata);
    const read = await call("GET", path, { key: org.adminKey });
    expect(read.status).toBe(200);
    expect(read.body).toEqual(put.body);
    // The environment's own secret key reads its connection too.
    expect((await call("GET", path, { key: org.preview.secretKey })).body).toEqual(put.body);
    for (const answer of [put, read]) {
      const text = JSON.stringify(answer.body);
      expect(text).not.toContain(TEST_KEY);
      expect(text).not.toContain(WEBHOOK_SECRET);
      expect(text).not.toContain("FakeTestKey");
      expect(text).not.toContain("FakeSigningSecret");
    }

    // D1 holds ciphertext only, and the server side gets the plain secrets back.
    const row = (await storedRow(org.preview.id))!;
    expect(row).toMatchObject({ organization_id: org.id, provider: "stripe", mode: "test", key_hint: "sk_test_…abcd" });
    expect(row.secret_key_encrypted).toMatch(/^v1:/);
    expect(row.webhook_secret_encrypted).toMatch(/^v1:/);
    const rowText = JSON.stringify(row);
    expect(rowText).not.toContain("FakeTestKey");
    expect(rowText).not.toContain("FakeSigningSecret");
    expect(await stripeCredentials(env.DB, env.SECRETS_KEY, org.preview.id)).toEqual({
      mode: "test",
      policy: DEFAULT_LIFECYCLE_POLICY,
      checkout: { allowedOrigins: [], automaticTax: true },
      secretKey: TEST_KEY,
      webhookSecret: WEBHOOK_SECRET,
    });

    // Replacing the keys keeps the time of the first connection.
    const replaced = await connect(org, org.preview.id, { secretKey: "rk_test_51AnotherRestrictedKey000009876", webhookSecret: WEBHOOK_SECRET });
    expect(replaced.body).toMatchObject({ keyHint: "rk_test_…9876", connectedAt: put.body.connectedAt });

    const removed = await call("DELETE", path, { key: org.adminKey });
    expect(removed.status).toBe(204);
    expect(removed.body).toBe("");
    expect(await storedRow(org.preview.id)).toBeNull();
    expect(await stripeCredentials(env.DB, env.SECRETS_KEY, org.preview.id)).toBeNull();
    expect((await call("GET", path, { key: org.adminKey })).body).toMatchObject({ status: "error", code: "not_found", message: expect.stringMatching(/not connected to Stripe/) });
    expect((await call("DELETE", path, { key: org.adminKey })).status).toBe(404);
  });

  it("takes live-mode keys on a production environment, restricted ones too", async () => {
    const org = await createOrganization("Stripe live");
    for (const secretKey of [LIVE_KEY, RESTRICTED_LIVE_KEY]) {
      const put = await connect(org, org.live.id, { secretKey, webhookSecret: WEBHOOK_SECRET });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ mode: "live", keyHint: `${secretKey.slice(0, 8)}…${secretKey.slice(-4)}` });
    }
  });

  it("refuses keys whose mode does not match the environment's type", async () => {
    const org = await createOrganization("Stripe mode mismatch");
    const liveOnPreview = await connect(org, org.preview.id, { secretKey: LIVE_KEY, webhookSecret: WEBHOOK_SECRET });
    expect(liveOnPreview.status).toBe(400);
    expect(liveOnPreview.body).toMatchObject({ status: "error", code: "bad_request", message: expect.stringMatching(/preview environment takes Stripe test-mode keys.*live keys belong to a production environment/) });
    const testOnLive = await connect(org, org.live.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET });
    expect(testOnLive.status).toBe(400);
    expect(testOnLive.body).toMatchObject({ status: "error", code: "bad_request", message: expect.stringMatching(/production environment takes Stripe live-mode keys.*test keys belong to a preview environment/) });
    expect(await storedRow(org.preview.id)).toBeNull();
    expect(await storedRow(org.live.id)).toBeNull();
  });

  it("refuses malformed keys and secrets", async () => {
    const org = await createOrganization("Stripe formats");
    for (const body of [
      { secretKey: "pk_test_51PublishableKeyCannotCharge00001", webhookSecret: WEBHOOK_SECRET },
      { secretKey: "sk_prod_51NotAMode0000000000000000001", webhookSecret: WEBHOOK_SECRET },
      { secretKey: "sk_test_", webhookSecret: WEBHOOK_SECRET },
      { secretKey: `${TEST_KEY} `, webhookSecret: WEBHOOK_SECRET },
      { secretKey: TEST_KEY, webhookSecret: "not_a_webhook_secret" },
      { secretKey: TEST_KEY, webhookSecret: "whsec_" },
      { secretKey: TEST_KEY },
      { webhookSecret: WEBHOOK_SECRET },
      { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { pastDueGraceHours: -1 } },
      { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { pastDueGraceHours: 2161 } },
      { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { pastDueGraceHours: 1.5 } },
      { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { revokeOnRefund: "yes" } },
    ]) {
      const refused = await connect(org, org.preview.id, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body).toMatchObject({ status: "error", code: "validation_failed" });
    }
    expect(await storedRow(org.preview.id)).toBeNull();
  });

  it("keeps a lifecycle policy: the defaults first, then what a connection sets, fields left out unchanged", async () => {
    const org = await createOrganization("Stripe policy");
    const first = await connect(org, org.preview.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { pastDueGraceHours: 0 } });
    expect(first.body.policy).toEqual({ pastDueGraceHours: 0, revokeOnRefund: true, revokeOnDispute: true });
    const second = await connect(org, org.preview.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET, policy: { revokeOnDispute: false } });
    expect(second.body.policy).toEqual({ pastDueGraceHours: 0, revokeOnRefund: true, revokeOnDispute: false });
    const rotated = await connect(org, org.preview.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET });
    expect(rotated.body.policy).toEqual(second.body.policy);
    expect((await stripeCredentials(env.DB, env.SECRETS_KEY, org.preview.id))?.policy).toEqual(second.body.policy);
  });

  it("keeps checkout settings: origins validated and normalized, fields left out unchanged", async () => {
    const org = await createOrganization("Stripe checkout settings");
    const keys = { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET };
    const set = await connect(org, org.preview.id, {
      ...keys,
      checkout: { allowedOrigins: ["https://Shop.Example:443", "http://localhost:5173", "http://127.0.0.1:8787", "https://shop.example", "https://shop.example:8443"] },
    });
    expect(set.status).toBe(200);
    // As browsers write origins (lowercase host, no default port), once each.
    const origins = ["https://shop.example", "http://localhost:5173", "http://127.0.0.1:8787", "https://shop.example:8443"];
    expect(set.body.checkout).toEqual({ allowedOrigins: origins, automaticTax: true });
    const taxOff = await connect(org, org.preview.id, { ...keys, checkout: { automaticTax: false } });
    expect(taxOff.body.checkout).toEqual({ allowedOrigins: origins, automaticTax: false });
    const rotated = await connect(org, org.preview.id, { ...keys, policy: { pastDueGraceHours: 1 } });
    expect(rotated.body.checkout).toEqual(taxOff.body.checkout);
    expect((await stripeCredentials(env.DB, env.SECRETS_KEY, org.preview.id))?.checkout).toEqual(taxOff.body.checkout);
    const cleared = await connect(org, org.preview.id, { ...keys, checkout: { allowedOrigins: [] } });
    expect(cleared.body.checkout).toEqual({ allowedOrigins: [], automaticTax: false });

    for (const origin of [
      "http://shop.example",
      "https://shop.example/",
      "https://shop.example/path",
      "https://shop.example?x=1",
      "https://shop.example#x",
      "https://user@shop.example",
      "shop.example",
      "ftp://shop.example",
      "javascript:alert(1)",
      "https://shop.example:99999",
      "",
    ]) {
      const refused = await connect(org, org.preview.id, { ...keys, checkout: { allowedOrigins: [origin] } });
      expect(refused.status, origin).toBe(400);
      expect(refused.body).toMatchObject({ code: "validation_failed", details: [expect.objectContaining({ path: "checkout.allowedOrigins[0]" })] });
    }
    const tooMany = await connect(org, org.preview.id, { ...keys, checkout: { allowedOrigins: Array.from({ length: 21 }, (_, index) => `https://shop${index}.example`) } });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.code).toBe("validation_failed");
    expect((await connect(org, org.preview.id, { ...keys, checkout: { automaticTax: "no" } })).status).toBe(400);
    expect((await call("GET", stripePath(org.preview.id), { key: org.adminKey })).body.checkout).toEqual(cleared.body.checkout);
  });

  it("is another organization's environment to no one: a 404, and a preview key may not touch live's", async () => {
    const org = await createOrganization("Stripe owner");
    const stranger = await createOrganization("Stripe stranger");
    expect((await connect(org, org.live.id, { secretKey: LIVE_KEY, webhookSecret: WEBHOOK_SECRET })).status).toBe(200);
    for (const method of ["GET", "PUT", "DELETE"]) {
      const body = method === "PUT" ? { secretKey: LIVE_KEY, webhookSecret: WEBHOOK_SECRET } : undefined;
      expect((await call(method, stripePath(org.live.id), { key: stranger.adminKey, body })).status, method).toBe(404);
      const previewKey = await call(method, stripePath(org.live.id), { key: org.preview.secretKey, body });
      expect(previewKey.status, method).toBe(403);
      expect(previewKey.body).toMatchObject({ status: "error", code: "forbidden" });
    }
    expect((await call("GET", stripePath(org.live.id), { key: org.adminKey })).status).toBe(200);
  });

  it("goes with its environment when the environment is deleted", async () => {
    const org = await createOrganization("Stripe environment deleted");
    const created = await call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: "staging", type: "preview" } });
    const environmentId = created.body.environment.id as string;
    expect((await connect(org, environmentId, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET })).status).toBe(200);
    expect((await call("DELETE", `/api/v1/admin/environments/${environmentId}`, { key: org.adminKey })).status).toBe(200);
    expect(await storedRow(environmentId)).toBeNull();
  });

  it("that cannot be decrypted is a PaymentConnectionUnreadableError, not a crash", async () => {
    const org = await createOrganization("Stripe unreadable");
    expect((await connect(org, org.preview.id, { secretKey: TEST_KEY, webhookSecret: WEBHOOK_SECRET })).status).toBe(200);
    const anotherSecretsKey = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
    const failure = await stripeCredentials(env.DB, anotherSecretsKey, org.preview.id).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(PaymentConnectionUnreadableError);
    expect(failure).toMatchObject({ environmentId: org.preview.id, message: expect.stringMatching(/cannot be decrypted.*connect Stripe again/) });
    // The metadata stays readable, so the admin can see what to replace.
    expect((await call("GET", stripePath(org.preview.id), { key: org.adminKey })).status).toBe(200);
  });
});
