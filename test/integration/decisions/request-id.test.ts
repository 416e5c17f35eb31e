/**
 * Every response carries the platform's own request id (`req_…`), in the header and in error bodies: raw Responses of
 * endpoint workflows too, over whatever id the workflow set, and never one a caller chose. Server-Timing describes a
 * decision's stages, so only a decision that was made carries it.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Request ids");
  const document = helloWorld();
  document.workflows = {
    echo: {
      type: "endpoint",
      path: "echo",
      access: "none",
      source: `export default () => new Response("hi", { headers: { "x-request-id": "chosen-by-the-workflow" } });`,
    },
  };
  await publish(org.adminKey, document, [org.live.id]);
});

const REQUEST_ID = /^req_[a-z0-9]{16}$/;

describe("request ids", () => {
  it("are the platform's on endpoint workflow responses, over the workflow's own", async () => {
    const result = await call("GET", `/api/v1/envs/${org.live.id}/endpoints/echo`);
    expect(result.status).toBe(200);
    expect(result.body).toBe("hi");
    expect(result.headers.get("x-request-id")).toMatch(REQUEST_ID);
  });

  it("are never taken from the caller", async () => {
    const decided = await call("POST", "/api/v1/access-checks", {
      key: org.live.publishableKey,
      headers: { "x-request-id": "req_forgedforgedforge" },
      body: { identity: { anonymousIdentifier: "someone" } },
    });
    expect(decided.headers.get("x-request-id")).toMatch(REQUEST_ID);
    expect(decided.headers.get("x-request-id")).not.toBe("req_forgedforgedforge");

    const refused = await call("POST", "/api/v1/access-checks", { key: "sk_nope", headers: { "x-request-id": "mine" }, body: {} });
    expect(refused.status).toBe(401);
    expect(refused.body.requestId).toMatch(REQUEST_ID);
    expect(refused.headers.get("x-request-id")).toBe(refused.body.requestId);
  });

  it("Server-Timing is on decisions made, not on refused ones", async () => {
    const decided = await call("POST", "/api/v1/access-checks", { key: org.live.publishableKey, body: { identity: { anonymousIdentifier: "timed" } } });
    expect(decided.headers.get("server-timing")).toMatch(/^auth;dur=[\d.]+,config;dur=/);
    const refused = await call("POST", "/api/v1/access-checks", { key: "sk_nope", body: {} });
    expect(refused.headers.get("server-timing")).toBeNull();
  });
});

describe("through the runtime's own request path", () => {
  // Other tests call the Worker's fetch in-process; this one goes through workerd's request handling, where each
  // request has its own I/O context, so per-isolate caches shared between concurrent requests are exercised for real.
  it("answers concurrent decisions of one new version, sharing its first load", async () => {
    const fresh = await createOrganization("Request context");
    await publish(fresh.adminKey, helloWorld(), [fresh.live.id]);
    const decide = (identifier: string) =>
      exports.default.fetch(
        new Request("http://platform.test/api/v1/access-checks", {
          method: "POST",
          headers: { authorization: `Bearer ${fresh.live.publishableKey}`, "content-type": "application/json" },
          body: JSON.stringify({ identity: { anonymousIdentifier: identifier } }),
        }),
      );
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => decide(`visitor-${i}`)));
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(response.headers.get("x-request-id")).toMatch(REQUEST_ID);
      expect(((await response.json()) as any).features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 0 });
    }
  });
});
