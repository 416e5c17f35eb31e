/**
 * Metering through HTTP: concurrent surface decisions never over-grant, and an Idempotency-Key makes concurrent
 * retries consume once.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call } from "../../support/api";
import { helloWorldOrg, uniqueId, type PublishedOrg } from "./helpers";

let hello: PublishedOrg;
beforeAll(async () => {
  hello = await helloWorldOrg();
});

const decide = (identifier: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
  call("POST", "/api/v1/surface-decisions", { key: hello.key, headers, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: identifier }, ...extra } });
const check = (identifier: string) => call("POST", "/api/v1/access-checks", { key: hello.key, body: { identity: { anonymousIdentifier: identifier } } });

describe("surface decisions under concurrency", () => {
  it("grants exactly 3 of 50 concurrent decisions for one identifier, and the counter reads 3", async () => {
    const visitor = uniqueId("burst");
    const results = await Promise.all(Array.from({ length: 50 }, () => decide(visitor)));
    expect(results.map((result) => result.status)).toEqual(Array(50).fill(200));
    const enabled = results.map((result) => result.body.features.widget.properties.enabled);
    expect(enabled.filter((state) => state.hasAccess)).toHaveLength(3);
    expect(enabled.filter((state) => state.consumedInRequest)).toHaveLength(3);
    expect(enabled.every((state) => state.isFallback === false)).toBe(true);
    for (const state of enabled.filter((s) => !s.hasAccess)) expect(state).toMatchObject({ consumedUnits: 3, remainingUnits: 0, excessUnitsInRequest: 1 });

    const after = await check(visitor);
    expect(after.status).toBe(200);
    expect(after.body.features.widget.properties.enabled).toMatchObject({ counterId: hello.counterId, consumedUnits: 3, remainingUnits: 0, totalUnits: 3, hasAccess: false });
  });

  it("consumes one unit for 20 concurrent retries with one Idempotency-Key, all with identical features", async () => {
    const visitor = uniqueId("retry");
    const headers = { "idempotency-key": uniqueId("key") };
    const results = await Promise.all(Array.from({ length: 20 }, () => decide(visitor, headers)));
    expect(results.map((result) => result.status)).toEqual(Array(20).fill(200));
    for (const result of results) expect(result.body.features).toEqual(results[0]!.body.features);
    expect(new Set(results.map((result) => result.body.eventId)).size).toBe(1);
    expect(results[0]!.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, consumedInRequest: true, remainingUnits: 2 });

    const after = await check(visitor);
    expect(after.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, remainingUnits: 2 });
    // A new key consumes again.
    const next = await decide(visitor, { "idempotency-key": uniqueId("key") });
    expect(next.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 2, consumedInRequest: true });
  });

  it("refuses a reused Idempotency-Key with another body (422, error shape) and changes nothing", async () => {
    const visitor = uniqueId("reuse");
    const headers = { "idempotency-key": uniqueId("key") };
    expect((await decide(visitor, headers)).status).toBe(200);
    const reused = await decide(visitor, headers, { resource: { id: "another-body" } });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ status: "error", statusCode: 422, code: "idempotency_key_reused" });
    expect(typeof reused.body.message).toBe("string");
    expect(typeof reused.body.requestId).toBe("string");
    expect((await check(visitor)).body.features.widget.properties.enabled.consumedUnits).toBe(1);
  });
});
