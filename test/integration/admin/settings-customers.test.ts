import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createOrganization } from "../../support/api";

describe("workflow variables and secrets", () => {
  it("stores variables, encrypts secrets at rest and never returns their values", async () => {
    const org = await createOrganization();
    const key = org.live.secretKey;
    const base = `/api/v1/admin/environments/${org.live.id}/variables`;
    expect((await call("PUT", `${base}/REGION`, { key, body: { value: "eu" } })).body).toMatchObject({ name: "REGION", secret: false, value: "eu" });
    const secret = await call("PUT", `${base}/CRM_TOKEN`, { key, body: { value: "tok_very_secret", secret: true } });
    expect(secret.status).toBe(200);
    expect(secret.body.value).toBeUndefined();
    const listed = await call("GET", base, { key });
    expect(listed.body.variables).toEqual([
      { name: "CRM_TOKEN", secret: true, updatedAt: expect.any(String) },
      { name: "REGION", secret: false, value: "eu", updatedAt: expect.any(String) },
    ]);
    expect(JSON.stringify(listed.body)).not.toContain("tok_very_secret");
    const stored = await env.DB.prepare("SELECT value FROM environment_variables WHERE environment_id = ? AND name = 'CRM_TOKEN'").bind(org.live.id).first<{ value: string }>();
    expect(stored!.value).toMatch(/^v1:/);
    expect(stored!.value).not.toContain("tok_very_secret");

    expect((await call("PUT", `${base}/bad-name`, { key, body: { value: "x" } })).status).toBe(400);
    expect((await call("DELETE", `${base}/REGION`, { key })).status).toBe(200);
    expect((await call("DELETE", `${base}/REGION`, { key })).status).toBe(404);
    const other = await createOrganization();
    expect((await call("GET", base, { key: other.live.secretKey })).status).toBe(404);
  });

  it("keeps an egress allow-list per environment", async () => {
    const org = await createOrganization();
    const key = org.live.secretKey;
    const path = `/api/v1/admin/environments/${org.live.id}/egress`;
    expect((await call("GET", path, { key })).body).toEqual({ hosts: [] });
    expect((await call("PUT", path, { key, body: { hosts: ["API.example.com", "*.crm.test", "api.example.com"] } })).body).toEqual({
      hosts: ["*.crm.test", "api.example.com"],
    });
    expect((await call("PUT", path, { key, body: { hosts: ["https://nope/"] } })).status).toBe(400);
  });
});

describe("customers", () => {
  it("creates, reads, lists and deletes customers of the environment's store", async () => {
    const org = await createOrganization();
    const key = org.live.secretKey;
    const base = `/api/v1/admin/environments/${org.live.id}/customers`;
    const put = await call("PUT", `${base}/ada@example.com`, { key, body: { stripeCustomerId: "cus_1", stripeProductIds: ["prod_a", "prod_a", "prod_b"] } });
    expect(put.body).toMatchObject({ identifier: "ada@example.com", stripeCustomerId: "cus_1", stripeProductIds: ["prod_a", "prod_b"] });
    expect((await call("GET", `${base}/ada@example.com`, { key })).body.stripeProductIds).toEqual(["prod_a", "prod_b"]);
    expect((await call("GET", base, { key })).body.customers.map((c: any) => c.identifier)).toEqual(["ada@example.com"]);
    // Preview is another store.
    expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/customers`, { key: org.adminKey })).body.customers).toEqual([]);
    expect((await call("DELETE", `${base}/ada@example.com`, { key })).status).toBe(200);
    expect((await call("GET", `${base}/ada@example.com`, { key })).status).toBe(404);
    expect((await call("PUT", `${base}/x`, { key, body: { stripeProductIds: "prod" } })).status).toBe(400);
  });
});
