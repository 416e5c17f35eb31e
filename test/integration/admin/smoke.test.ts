import { describe, expect, it } from "vitest";
import { call, createOrganization } from "../../support/api";

describe("smoke", () => {
  it("creates an org and applies a document", async () => {
    const org = await createOrganization();
    const r = await call("PUT", "/api/v1/admin/config", {
      key: org.preview.secretKey,
      body: { features: { widget: { properties: { premium: { type: "boolean" } } } }, plans: { anonymous: { autoAssign: ["anonymous"], features: { widget: { enabled: { metered: { limit: 3 } } } } } } },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const v = await call("POST", "/api/v1/admin/versions", { key: org.preview.secretKey });
    expect(v.status, JSON.stringify(v.body)).toBe(201);
    const doc = await call("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths).length).toBeGreaterThan(10);
  });
});
