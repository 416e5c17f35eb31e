/**
 * The playground (`POST /api/v1/admin/environments/{id}/playground`): a real decision in an environment, as its secret
 * key would make it, with the trace on. Who may run one (decisions.test), the decision's own errors inside a 200, and
 * the call's own errors (no deployed version, body) as errors.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";
import { MAX_DECISION_BODY_BYTES } from "../../../workers/decision/request";

const GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot";

let org: TestOrganization;
let stranger: TestOrganization;
let deployerKey: string;
let readOnlyKey: string;

const playground = (environmentId: string, key: string, body: unknown) => call("POST", `/api/v1/admin/environments/${environmentId}/playground`, { key, body });
const surfaceCheck = (identifier: string) => ({ kind: "surface_decision", request: { surfaceSlug: "hello-world", identity: { userIdentifier: identifier } } });

beforeAll(async () => {
  [org, stranger] = await Promise.all([createOrganization("Playground"), createOrganization("Playground stranger")]);
  await publish(org.adminKey, helloWorld(), [org.live.id]);
  await publish(stranger.adminKey, helloWorld(), [stranger.live.id]);
  const organizationKey = async (role: string) => (await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: role, role } })).body.key as string;
  deployerKey = await organizationKey("deployer");
  readOnlyKey = await organizationKey("read-only");
});

describe("the playground", () => {
  it("runs a real surface decision with its trace: it consumes the meter and is recorded", async () => {
    const identifier = `play-${crypto.randomUUID()}@example.com`;
    const result = await playground(org.live.id, deployerKey, surfaceCheck(identifier));
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.status).toBe(200);
    const decision = result.body.response;
    expect(decision.status).toBe("success");
    expect(decision.identity.identifier).toBe(identifier);
    expect(decision.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, consumedInRequest: true });
    expect(decision.trace.meter.readings).toEqual([expect.objectContaining({ featureSlug: "widget", property: "enabled", used: 1, consume: true })]);
    expect(decision.trace.offers).toEqual({ shown: [], filtered: [] });
    // Recorded like a decision made with the environment's secret key.
    const [event] = await eventsFor(org.live.secretKey, `identifier=${encodeURIComponent(identifier)}&kind=surface_decision`);
    expect(event.id).toBe(decision.eventId);
  });

  it("sends the body's userAgent as the simulated call's: a crawler is classified as one", async () => {
    const result = await playground(org.live.id, org.adminKey, { kind: "access_check", request: { identity: { anonymousIdentifier: `bot-${crypto.randomUUID()}` } }, userAgent: GPTBOT });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.response.trace.identity.bot).toMatchObject({ code: "gptbot" });
    const human = await playground(org.live.id, org.adminKey, { kind: "access_check", request: { identity: { anonymousIdentifier: `human-${crypto.randomUUID()}` } } });
    expect(human.body.response.trace.identity.bot).toBeNull();
  });

  it("answers the decision's own errors inside a 200: an unknown surface, a bad identity", async () => {
    const missing = await playground(org.live.id, org.adminKey, { kind: "surface_decision", request: { surfaceSlug: "nope", identity: { anonymousIdentifier: "a" } } });
    expect(missing.status).toBe(200);
    expect(missing.body).toMatchObject({ status: 404, response: { status: "error", statusCode: 404, code: "surface_not_found" } });
    const twoForms = await playground(org.live.id, org.adminKey, { kind: "access_check", request: { identity: { anonymousIdentifier: "a", userIdentifier: "b" } } });
    expect(twoForms.status).toBe(200);
    expect(twoForms.body.status).toBe(400);
    expect(twoForms.body.response).toMatchObject({ status: "error", statusCode: 400 });
    expect(twoForms.body.response.requestId).toMatch(/^req_/);
  });

  it("refuses a body that is not a decision request (its own 400) and an environment with no deployed version (409)", async () => {
    const bad = await playground(org.live.id, org.adminKey, { kind: "surface_decision", request: { identity: {} } });
    expect(bad.status).toBe(400);
    expect(bad.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "request.surfaceSlug" })]));
    const undeployed = await playground(org.preview.id, org.adminKey, surfaceCheck("someone"));
    expect(undeployed.status).toBe(409);
    expect(undeployed.body.code).toBe("conflict");
  });

  it("refuses a body over the decision API's limit (413) before reading it", async () => {
    const tooBig = await playground(org.live.id, org.adminKey, {
      kind: "surface_decision",
      request: { surfaceSlug: "hello-world", identity: { userIdentifier: "big" }, resource: { padding: "x".repeat(MAX_DECISION_BODY_BYTES) } },
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.code).toBe("payload_too_large");
  });

  it("who may run it: admin and deployer keys, the environment's own secret key; not read-only, another environment's key, another organization", async () => {
    expect((await playground(org.live.id, org.live.secretKey, surfaceCheck("own-key"))).body.status).toBe(200);
    const readOnly = await playground(org.live.id, readOnlyKey, surfaceCheck("read-only"));
    expect(readOnly.status).toBe(403);
    expect(readOnly.body.message).toContain("run playground decisions");
    const otherEnvironment = await playground(org.live.id, org.preview.secretKey, surfaceCheck("other"));
    expect(otherEnvironment.status).toBe(403);
    expect((await playground(org.live.id, org.live.publishableKey, surfaceCheck("pk"))).status).toBe(403);
    const foreign = await playground(stranger.live.id, org.adminKey, surfaceCheck("foreign"));
    expect(foreign.status).toBe(404);
  });
});
