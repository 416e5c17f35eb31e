import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("the OpenAPI document the typed client is generated from", () => {
  // packages/client/openapi.json is this document as the Worker serves it (without `servers`, which names the host):
  // a route change that alters the contract fails here until the file is rewritten (`vitest run <this file> -u`) and
  // the client's types regenerated (`npm run generate -w @edge-monetization/client`, checked by npm test).
  it("is the one packages/client was generated from", async () => {
    const response = await exports.default.fetch("http://platform.test/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as Record<string, unknown>;
    expect(document.servers).toEqual([{ url: "http://platform.test" }]);
    delete document.servers;
    await expect(`${JSON.stringify(document, null, 2)}\n`).toMatchFileSnapshot("../../../packages/client/openapi.json");
  });
});
