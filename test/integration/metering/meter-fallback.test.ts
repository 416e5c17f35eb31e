/**
 * An unreachable or slow meter: the decision still answers 200, each metered property at its `onMeterFailure`
 * fallback with isFallback true, and the decision record says `meter.status: "fallback"`. The fault is injected by
 * building the app with a failing meter in front of the real one (test/support/faults.ts).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { evaluateWithDeadline } from "../../../durable-objects/meter/client";
import type { EvaluateResult } from "../../../durable-objects/meter/MeterObject";
import { call } from "../../support/api";
import { faultyMeter, workerWith, type MeterFault } from "../../support/faults";
import { eventsFor, helloWorldOrg, newsSiteOrg, uniqueId, type PublishedOrg } from "./helpers";

let hello: PublishedOrg;
let news: PublishedOrg;
beforeAll(async () => {
  [hello, news] = await Promise.all([helloWorldOrg(), newsSiteOrg()]);
});
/** The Worker with a meter that fails (`mode`) for `identifier` only. */
const failing = (mode: MeterFault, identifier: string) => workerWith({ meter: faultyMeter(mode, [identifier]) });

describe("unreachable meter", () => {
  it("falls back closed for hello-world's widget when the meter times out, and records it", async () => {
    const identifier = uniqueId("slow");
    const callFailing = failing("timeout", identifier);
    const started = Date.now();
    const result = await callFailing("POST", "/api/v1/surface-decisions", { key: hello.key, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: identifier } } });
    expect(result.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2000);
    const enabled = result.body.features.widget.properties.enabled;
    expect(enabled).toMatchObject({ type: "meterable", counterId: hello.counterId, isFallback: true, hasAccess: false });
    expect(enabled.consumedUnits).toBeUndefined();

    const events = await eventsFor(hello.key, `identifier=${identifier}&kind=surface_decision`, 1);
    expect(events[0].id).toBe(result.body.eventId);
    expect(events[0].record.meter).toMatchObject({ status: "fallback" });
    expect(events[0].record.meter.reason).toContain("timeout");

    // Nothing was consumed: once the meter is back, the visitor has all three uses.
    const check = await call("POST", "/api/v1/access-checks", { key: hello.key, body: { identity: { anonymousIdentifier: identifier } } });
    expect(check.body.features.widget.properties.enabled).toMatchObject({ isFallback: false, consumedUnits: 0, hasAccess: true });
  });

  it("falls back open for news-site's articles when the meter throws, on access checks too", async () => {
    const identifier = uniqueId("broken");
    const callFailing = failing("error", identifier);
    const decision = await callFailing("POST", "/api/v1/surface-decisions", {
      key: news.key,
      body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: identifier }, resource: { id: "a-1" } },
    });
    expect(decision.status).toBe(200);
    expect(decision.body.features.articles.properties.enabled).toMatchObject({ isFallback: true, hasAccess: true });
    // Non-metered properties are unaffected.
    expect(decision.body.features.articles.properties.quality).toMatchObject({ value: "standard", isFallback: false });

    const check = await callFailing("POST", "/api/v1/access-checks", { key: news.key, body: { identity: { anonymousIdentifier: identifier } } });
    expect(check.status).toBe(200);
    expect(check.body.features.articles.properties.enabled).toMatchObject({ isFallback: true, hasAccess: true });

    const events = await eventsFor(news.key, `identifier=${identifier}`, 2);
    for (const event of events) {
      expect(event.record.meter.status).toBe("fallback");
      expect(event.record.meter.reason).toContain("error");
    }
  });

  it("only fails the identifiers it names", async () => {
    const callFailing = failing("error", uniqueId("someone-else"));
    const result = await callFailing("POST", "/api/v1/surface-decisions", { key: hello.key, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: uniqueId("fine") } } });
    expect(result.body.features.widget.properties.enabled).toMatchObject({ isFallback: false, hasAccess: true, consumedUnits: 1 });
  });
});

describe("evaluateWithDeadline", () => {
  const input = { counters: [], timeZone: "UTC" };
  const answering = (delayMs: number) => ({
    evaluate: () => new Promise<EvaluateResult>((resolve) => setTimeout(() => resolve({ readings: [] }), delayMs)),
  });

  it("gives up on a call slower than the deadline", async () => {
    const started = Date.now();
    const result = await evaluateWithDeadline(answering(300) as never, input, 30);
    expect(result).toEqual({ ok: false, reason: "timeout", late: expect.any(Promise) });
    expect(Date.now() - started).toBeLessThan(250);
  });

  it("returns the value of a call within the deadline, and an error as reason 'error'", async () => {
    expect(await evaluateWithDeadline(answering(5) as never, input, 500)).toEqual({ ok: true, value: { readings: [] } });
    const throwing = { evaluate: () => Promise.reject(new Error("object exploded")) };
    expect(await evaluateWithDeadline(throwing as never, input, 500)).toEqual({ ok: false, reason: "error", error: "object exploded" });
  });
});

describe("an unavailable meter where there is no fallback", () => {
  it("counter updates and identity links answer 503 with Retry-After when the object is overloaded", async () => {
    const user = uniqueId("overloaded-user");
    const visitor = uniqueId("overloaded-visitor");
    const callFailing = workerWith({ meter: faultyMeter("error", [user, visitor]) });
    const update = await callFailing("POST", "/api/v1/counter-updates", { key: hello.key, body: { identity: { userIdentifier: user }, counterId: hello.counterId } });
    expect(update.status).toBe(503);
    expect(update.headers.get("retry-after")).toBe("5");
    expect(update.body.message).not.toContain("overloaded"); // the cause stays in the logs
    expect(update.body).toMatchObject({ status: "error", statusCode: 503, code: "meter_unavailable" });
    const link = await callFailing("POST", "/api/v1/identity-links", { key: hello.key, body: { identity: { userIdentifier: user }, anonymousIdentifier: visitor } });
    expect(link.status).toBe(503);
    expect(link.headers.get("retry-after")).toBe("5");
  });
});
