/** POST /api/v1/counter-updates: the reference's manual counter changes, through HTTP. */
import { beforeAll, describe, expect, it } from "vitest";
import { call } from "../../support/api";
import { eventsFor, helloWorldOrg, newsSiteOrg, uniqueId, type PublishedOrg } from "./helpers";

let hello: PublishedOrg;
let news: PublishedOrg;
beforeAll(async () => {
  [hello, news] = await Promise.all([helloWorldOrg(), newsSiteOrg()]);
});

const update = (target: PublishedOrg, body: Record<string, unknown>, options: { key?: string; headers?: Record<string, string> } = {}) =>
  call("POST", "/api/v1/counter-updates", { key: options.key ?? target.key, headers: options.headers, body: { counterId: target.counterId, ...body } });
const consumed = async (target: PublishedOrg, identity: Record<string, unknown>, feature: string) =>
  (await call("POST", "/api/v1/access-checks", { key: target.key, body: { identity } })).body.features[feature].properties.enabled.consumedUnits;

describe("counter updates", () => {
  it("adds units, gives them back, and never goes below zero", async () => {
    const identity = { anonymousIdentifier: uniqueId("cu") };
    const plus = await update(hello, { identity, update: 2 });
    expect(plus.status).toBe(200);
    expect(plus.body).toMatchObject({ status: "success", counter: { counterId: hello.counterId, consumedUnits: 2, remainingUnits: 1, totalUnits: 3, consumedUnitsInRequest: 2 } });
    expect(await consumed(hello, identity, "widget")).toBe(2);

    const minus = await update(hello, { identity, update: -5 });
    expect(minus.status).toBe(200);
    expect(minus.body.counter).toMatchObject({ consumedUnits: 0, remainingUnits: 3, hasAccess: true });
    expect(await consumed(hello, identity, "widget")).toBe(0);

    // The default update is 1, and a decision then sees the units.
    expect((await update(hello, { identity })).body.counter.consumedUnits).toBe(1);
    const decision = await call("POST", "/api/v1/surface-decisions", { key: hello.key, body: { surfaceSlug: "hello-world", identity } });
    expect(decision.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 2, consumedInRequest: true });
  });

  it("goes over the limit without refusing, and decisions are then denied", async () => {
    const identity = { anonymousIdentifier: uniqueId("over") };
    const over = await update(hello, { identity, update: 5 });
    expect(over.status).toBe(200);
    expect(over.body.counter).toMatchObject({ consumedUnits: 5, remainingUnits: 0, hasAccess: false });
    const decision = await call("POST", "/api/v1/surface-decisions", { key: hello.key, body: { surfaceSlug: "hello-world", identity } });
    expect(decision.body.features.widget.properties.enabled).toMatchObject({ hasAccess: false, consumedUnits: 5 });
  });

  it("counts a resource once under a unique-resources meter", async () => {
    const identity = { anonymousIdentifier: uniqueId("reader") };
    const first = await update(news, { identity, resourceId: "article-1" });
    const again = await update(news, { identity, resourceId: "article-1" });
    const other = await update(news, { identity, resourceId: "article-2" });
    expect([first.status, again.status, other.status]).toEqual([200, 200, 200]);
    expect(first.body.counter).toMatchObject({ consumedUnits: 1, uniqueResources: true, consumedInRequest: true });
    expect(again.body.counter).toMatchObject({ consumedUnits: 1, resourceIdUsed: true, consumedInRequest: false });
    expect(other.body.counter.consumedUnits).toBe(2);
    // A decision for a resource counted by the update does not consume again.
    const read = await call("POST", "/api/v1/surface-decisions", { key: news.key, body: { surfaceSlug: "article-page", identity, resource: { id: "article-1" } } });
    expect(read.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, resourceIdUsed: true, consumedUnits: 2, consumedInRequest: false });
  });

  it("applies an Idempotency-Key once and refuses it with another body", async () => {
    const identity = { anonymousIdentifier: uniqueId("idem") };
    const headers = { "idempotency-key": uniqueId("key") };
    const results = await Promise.all(Array.from({ length: 10 }, () => update(hello, { identity, update: 2 }, { headers })));
    for (const result of results) {
      expect(result.status).toBe(200);
      expect(result.body).toEqual(results[0]!.body);
    }
    expect(results[0]!.body.counter.consumedUnits).toBe(2);
    expect(await consumed(hello, identity, "widget")).toBe(2);

    const reused = await update(hello, { identity, update: 1 }, { headers });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ status: "error", statusCode: 422, code: "idempotency_key_reused" });
    expect(await consumed(hello, identity, "widget")).toBe(2);
  });

  it("records a counter_update event after the response", async () => {
    const identifier = uniqueId("event");
    const result = await update(hello, { identity: { anonymousIdentifier: identifier }, update: 2 });
    const events = await eventsFor(hello.key, `kind=counter_update&identifier=${identifier}`, 1);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id: result.body.eventId, kind: "counter_update", identifier });
    expect(events[0].record).toMatchObject({ counterId: hello.counterId, update: 2, counter: { consumedUnits: 2 } });
  });

  it("refuses unknown counters (404), unmetered ones (409) and bad bodies (400)", async () => {
    const identity = { anonymousIdentifier: uniqueId("bad") };
    const unknown = await update(hello, { identity, counterId: "default:feat_nothere00.enabled" });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ status: "error", code: "not_found" });
    // The right feature in another store (this key's environment is production-type: store "default").
    const otherStore = await update(hello, { identity, counterId: hello.counterId.replace(/^default:/, "preview:") });
    expect(otherStore.status).toBe(404);
    // A boolean property is not meterable.
    const notMeterable = await update(hello, { identity, counterId: hello.counterId.replace(/\.enabled$/, ".premium") });
    expect(notMeterable.status).toBe(404);
    // Registered news readers have articles "on": nothing to meter.
    const unmetered = await update(news, { identity: { userIdentifier: uniqueId("registered") } });
    expect(unmetered.status).toBe(409);
    expect(unmetered.body).toMatchObject({ status: "error", code: "conflict" });
    expect(unmetered.body.message).toContain("not metered");

    expect((await update(hello, { identity, update: 1.5 })).status).toBe(400);
    expect((await update(hello, { identity, update: "2" })).status).toBe(400);
    expect((await update(hello, { identity: {} })).status).toBe(400);
    expect(await consumed(hello, identity, "widget")).toBe(0);
  });

  it("takes publishable keys, which may not send userIdentifier", async () => {
    const anonymous = await update(hello, { identity: { anonymousIdentifier: uniqueId("pk") } }, { key: hello.org.live.publishableKey });
    expect(anonymous.status).toBe(200);
    expect(anonymous.body.counter.consumedUnits).toBe(1);
    const provided = await update(hello, { identity: { userIdentifier: uniqueId("pk-user") } }, { key: hello.org.live.publishableKey });
    expect(provided.status).toBe(403);
    expect(provided.body.code).toBe("forbidden_identity_form");
    expect((await call("POST", "/api/v1/counter-updates", { body: { identity: { anonymousIdentifier: "x" }, counterId: hello.counterId } })).status).toBe(401);
  });

  it("is in the OpenAPI document", async () => {
    const document = await call("GET", "/openapi.json");
    expect(document.body.paths["/api/v1/counter-updates"]?.post).toBeDefined();
    expect(document.body.paths["/api/v1/identity-links"]?.post).toBeDefined();
    expect(document.body.paths["/api/v1/admin/environments/{environmentId}/identities/{identifier}/counters"]?.get).toBeDefined();
  });
});
