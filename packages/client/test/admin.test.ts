/**
 * The typed admin API (`client.admin`, openapi-fetch over the generated paths) against the real platform: reads are
 * retried like decisions, writes never are.
 */
import { createClient } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";
import { fetchWorker } from "../../../test/support/api";
import { BASE_URL, errorResponse, scripted, tenant } from "./site";

describe("client.admin", () => {
  it("reads and writes with the organization key, typed by the platform's OpenAPI document", async () => {
    const org = await tenant();
    const client = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", fetch: fetchWorker });
    const session = await client.admin.GET("/api/v1/admin/session");
    expect(session.response.status).toBe(200);
    expect(session.data).toMatchObject({ credential: "organizationKey", role: "admin", organizationId: org.id });

    const feature = await client.admin.GET("/api/v1/admin/features/{slug}", { params: { path: { slug: "articles" } } });
    expect(feature.data).toMatchObject({ slug: "articles" });

    const missing = await client.admin.GET("/api/v1/admin/features/{slug}", { params: { path: { slug: "nope" } } });
    expect(missing.response.status).toBe(404);
    expect(missing.error).toMatchObject({ status: "error", code: "not_found" });

    const variable = await client.admin.PUT("/api/v1/admin/environments/{environmentId}/variables/{name}", {
      params: { path: { environmentId: org.preview.id, name: "GREETING" } },
      body: { value: "hi" },
    });
    expect(variable.response.status).toBe(200);
    expect(variable.data).toMatchObject({ name: "GREETING" });
  });

  it("retries a GET after a transient failure, a write never", async () => {
    const org = await tenant();
    const reads = scripted(fetchWorker, [errorResponse(503, "service_unavailable", { "Retry-After": "0" }), new TypeError("reset")]);
    const reader = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", retryBaseDelayMs: 0, fetch: reads.fetch });
    const session = await reader.admin.GET("/api/v1/admin/session");
    expect(session.response.status).toBe(200);
    expect(reads.requests.map((request) => request.method)).toEqual(["GET", "GET", "GET"]);
    expect(reads.requests.every((request) => request.headers.get("authorization") === `Bearer ${org.adminKey}`)).toBe(true);

    const writes = scripted(fetchWorker, [errorResponse(503, "service_unavailable", { "Retry-After": "0" })]);
    const writer = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", retryBaseDelayMs: 0, fetch: writes.fetch });
    const version = await writer.admin.POST("/api/v1/admin/versions", { body: { description: "from the client" } });
    expect(version.response.status).toBe(503);
    expect(writes.requests).toHaveLength(1);
  });

  it("gives up after the retries and answers the last failure as openapi-fetch does", async () => {
    const org = await tenant();
    const failing = scripted(fetchWorker, [errorResponse(502, "upstream_error"), errorResponse(502, "upstream_error")]);
    const client = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", retries: 1, retryBaseDelayMs: 0, fetch: failing.fetch });
    const result = await client.admin.GET("/api/v1/admin/session");
    expect(result.response.status).toBe(502);
    expect(result.error).toMatchObject({ code: "upstream_error" });
    expect(failing.requests).toHaveLength(2);

    const down = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", retries: 1, retryBaseDelayMs: 0, fetch: () => Promise.reject(new TypeError("unreachable")) });
    await expect(down.admin.GET("/api/v1/admin/session")).rejects.toThrow("unreachable");
  });
});
