/**
 * Metered overage over HTTP: an `overage: overflow` allowance keeps granting past its limit and reports the units
 * beyond it (`overageUnits`, and — with `stripeMeterEvent` — one Stripe Billing Meter event per request through the
 * payments queue, each unit of overage billed once a period, even when given back and consumed again); a capped one
 * (the default) refuses as before. Conflicts between plans, access checks that only read, counter updates,
 * concurrency, Idempotency-Key retries and identities without a Stripe customer.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { UsageReportMessage } from "../../../workers/payments/usage";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { type CapturedPayments, capturePayments, connectStripe, deliverPaymentMessages, type StripeAccount } from "../../support/payments";
import { fakeStripe, meterEventsOf } from "../../support/stripe";
import { uniqueId } from "./helpers";

const LIMIT = 3;

const DOCUMENT = {
  features: {
    api: { properties: { enabled: { type: "enabled", fallback: "off", onMeterFailure: "closed" } } },
    export: { properties: { enabled: { type: "enabled", fallback: "off", onMeterFailure: "closed" } } },
  },
  plans: {
    // Every signed-in user: API calls past 3 a month billed as overage; 2 exports, capped.
    basic: {
      autoAssign: ["authenticated"],
      features: {
        api: { enabled: { metered: { limit: LIMIT, period: "month", overage: "overflow", stripeMeterEvent: "api_calls" } } },
        export: { enabled: { metered: { limit: 2, period: "month" } } },
      },
    },
    // Bought: a capped allowance smaller than basic's, one larger, and unlimited.
    small: { stripeProductIds: ["prod_small"], features: { api: { enabled: { metered: { limit: 2, period: "month" } } } } },
    large: { stripeProductIds: ["prod_large"], features: { api: { enabled: { metered: { limit: 10, period: "month" } } } } },
    unlimited: { stripeProductIds: ["prod_unlimited"], features: { api: { enabled: "on" } } },
  },
  surfaces: {
    call: { consumes: ["api.enabled"] },
    download: { consumes: ["export.enabled"] },
  },
};

// Stripe test-mode keys belong to a preview environment (its user data store is `preview`).
let org: TestOrganization;
let stripe: StripeAccount;
let apiCounter: string;
beforeAll(async () => {
  org = await createOrganization("Metered overage");
  await publish(org.adminKey, DOCUMENT, [org.preview.id]);
  stripe = await connectStripe(org, org.preview.id);
  const feature = await call("GET", "/api/v1/admin/features/api", { key: org.preview.secretKey });
  apiCounter = `preview:${feature.body.id}.enabled`;
});

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => {
  payments.restore();
});

const decide = (user: string, surfaceSlug = "call", headers: Record<string, string> = {}) =>
  call("POST", "/api/v1/surface-decisions", { key: org.preview.secretKey, headers, body: { surfaceSlug, identity: { userIdentifier: user } } });
const check = (user: string) => call("POST", "/api/v1/access-checks", { key: org.preview.secretKey, body: { identity: { userIdentifier: user } } });
const updateCounter = (user: string, update: number, headers: Record<string, string> = {}) =>
  call("POST", "/api/v1/counter-updates", { key: org.preview.secretKey, headers, body: { identity: { userIdentifier: user }, counterId: apiCounter, update } });

/** A signed-in user who is a customer of the fake Stripe account (linked by the admin API), with products if given. */
async function customer(label: string, stripeProductIds: string[] = []): Promise<{ user: string; customerId: string }> {
  const user = uniqueId(label);
  const { data } = await fakeStripe<{ data: { id: string }[] }>("customers", { key: stripe.key, body: { customers: [{ email: `${user}@example.com` }] } });
  const customerId = data[0]!.id;
  const put = await call("PUT", `/api/v1/admin/environments/${org.preview.id}/customers/${encodeURIComponent(user)}`, {
    key: org.preview.secretKey,
    body: { stripeCustomerId: customerId, stripeProductIds },
  });
  expect(put.status).toBeLessThan(300);
  return { user, customerId };
}

/** The usage messages the Worker queued for one user. */
async function usageSent(user: string): Promise<UsageReportMessage[]> {
  await waitForBackgroundWork();
  return (payments.sent as unknown as { kind?: string; identifier?: string }[]).filter(
    (message): message is UsageReportMessage => message.kind === "usage" && message.identifier === user,
  );
}

/** The Stripe meter events the fake recorded for one customer. */
async function meterEventsFor(customerId: string) {
  return (await meterEventsOf(stripe.key)).filter((event) => event.payload.stripe_customer_id === customerId);
}

const totalOf = (events: { payload: Record<string, string> }[]) => events.reduce((sum, event) => sum + Number(event.payload.value), 0);

describe("overflow: granted past the limit", () => {
  it("grants every decision, under the limit, with overageUnits; reports each request's overage to Stripe once", async () => {
    const { user, customerId } = await customer("overflow");
    const states = [];
    for (let i = 0; i < 5; i++) {
      const response = await decide(user);
      expect(response.status).toBe(200);
      states.push(response.body.features.api.properties.enabled);
    }
    expect(states.map((state) => [state.hasAccess, state.consumedUnits, state.remainingUnits, state.totalUnits, state.overageUnits, state.consumedInRequest])).toEqual([
      [true, 1, 2, 3, 0, true],
      [true, 2, 1, 3, 0, true],
      [true, 3, 0, 3, 0, true],
      [true, 4, 0, 3, 1, true],
      [true, 5, 0, 3, 2, true],
    ]);

    const sent = await usageSent(user);
    expect(sent).toEqual([
      expect.objectContaining({ kind: "usage", organizationId: org.id, environmentId: org.preview.id, counterId: apiCounter, eventName: "api_calls", value: 1 }),
      expect.objectContaining({ value: 1 }),
    ]);
    await payments.deliver();
    const events = await meterEventsFor(customerId);
    expect(events.map((event) => [event.event_name, event.payload.value])).toEqual([
      ["api_calls", "1"],
      ["api_calls", "1"],
    ]);
    expect(new Set(events.map((event) => event.identifier)).size).toBe(2);
    // Delivered again (a redelivery after a lost ack): Stripe counts each identifier once, and each is recorded once.
    await deliverPaymentMessages(sent, 2);
    expect(totalOf(await meterEventsFor(customerId))).toBe(2);

    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${org.preview.id}&kind=usage&identifier=${encodeURIComponent(user)}`, { key: org.adminKey });
    expect(recorded.status).toBe(200);
    expect(recorded.body.events).toHaveLength(2);
    expect(recorded.body.events[0]).toMatchObject({ kind: "usage", outcome: "reported", record: { customerId, counterId: apiCounter, eventName: "api_calls", value: 1 } });
  });

  it("an access check only reads: no unit, no report", async () => {
    const { user, customerId } = await customer("check");
    for (let i = 0; i < 4; i++) expect((await decide(user)).status).toBe(200);
    const before = await usageSent(user);
    expect(before).toHaveLength(1);
    const read = await check(user);
    expect(read.body.features.api.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 4, remainingUnits: 0, totalUnits: 3, overageUnits: 1, consumedInRequest: false });
    expect((await check(user)).body.features.api.properties.enabled.consumedUnits).toBe(4);
    expect(await usageSent(user)).toHaveLength(1);
    await payments.deliver();
    expect(totalOf(await meterEventsFor(customerId))).toBe(1);
  });

  it("counter updates count past the limit too and report the units beyond it", async () => {
    const { user, customerId } = await customer("update");
    const first = await updateCounter(user, 2);
    expect(first.status).toBe(200);
    expect(first.body.counter).toMatchObject({ counterId: apiCounter, consumedUnits: 2, remainingUnits: 1, totalUnits: 3, hasAccess: true, overageUnits: 0 });
    const over = await updateCounter(user, 5);
    expect(over.status).toBe(200);
    expect(over.body.counter).toMatchObject({ consumedUnits: 7, remainingUnits: 0, totalUnits: 3, hasAccess: true, overageUnits: 4, consumedUnitsInRequest: 5 });
    // Units given back are not reported (Stripe meter events only add).
    const back = await updateCounter(user, -1);
    expect(back.body.counter).toMatchObject({ consumedUnits: 6, overageUnits: 3 });
    expect((await usageSent(user)).map((message) => [message.value, message.eventId])).toEqual([[4, over.body.eventId]]);
    await payments.deliver();
    expect((await meterEventsFor(customerId)).map((event) => event.payload.value)).toEqual(["4"]);
  });

  it("N concurrent decisions with limit L: all granted, N units consumed, N − L overage, each unit reported once", async () => {
    const { user, customerId } = await customer("burst");
    const N = 12;
    const results = await Promise.all(Array.from({ length: N }, () => decide(user)));
    expect(results.map((result) => result.status)).toEqual(Array(N).fill(200));
    const states = results.map((result) => result.body.features.api.properties.enabled);
    expect(states.every((state) => state.hasAccess && state.consumedInRequest)).toBe(true);
    expect(states.map((state) => state.consumedUnits).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, index) => index + 1));
    const after = await check(user);
    expect(after.body.features.api.properties.enabled).toMatchObject({ consumedUnits: N, overageUnits: N - LIMIT, remainingUnits: 0 });

    const sent = await usageSent(user);
    expect(sent).toHaveLength(N - LIMIT);
    expect(new Set(sent.map((message) => message.eventId)).size).toBe(N - LIMIT);
    await payments.deliver();
    const events = await meterEventsFor(customerId);
    expect(events).toHaveLength(N - LIMIT);
    expect(totalOf(events)).toBe(N - LIMIT);
  });

  it("a retried decision (same Idempotency-Key) reports nothing twice", async () => {
    const { user, customerId } = await customer("retry");
    for (let i = 0; i < LIMIT; i++) expect((await decide(user)).status).toBe(200);
    const headers = { "idempotency-key": uniqueId("key") };
    const first = await decide(user, "call", headers);
    const retried = await decide(user, "call", headers);
    expect(retried.body.eventId).toBe(first.body.eventId);
    expect(retried.body.features.api.properties.enabled).toMatchObject({ consumedUnits: 4, overageUnits: 1 });
    expect((await usageSent(user)).map((message) => message.eventId)).toEqual([first.body.eventId]);
    await payments.deliver();
    expect(totalOf(await meterEventsFor(customerId))).toBe(1);
  });

  it("an identity without a Stripe customer: granted, nothing sent to Stripe, the report recorded as no_customer", async () => {
    const user = uniqueId("nobody");
    for (let i = 0; i < LIMIT + 2; i++) expect((await decide(user)).body.features.api.properties.enabled.hasAccess).toBe(true);
    const sent = await usageSent(user);
    expect(sent.map((message) => message.value)).toEqual([1, 1]);
    const eventsBefore = (await meterEventsOf(stripe.key)).length;
    // Only the usage reports (the decisions also asked for a customer lookup, which is not what this test is about).
    expect((await deliverPaymentMessages(sent)).retryMessages).toEqual([]);
    expect((await meterEventsOf(stripe.key)).length).toBe(eventsBefore);
    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${org.preview.id}&kind=usage&identifier=${encodeURIComponent(user)}`, { key: org.adminKey });
    expect(recorded.body.events.map((event: { outcome: string; record: { customerId: unknown } }) => [event.outcome, event.record.customerId])).toEqual([
      ["no_customer", null],
      ["no_customer", null],
    ]);
  });
});

describe("each unit of overage is billed once a period", () => {
  const valuesSent = async (user: string) => (await usageSent(user)).map((message) => message.value);

  it("a unit given back and consumed again is not billed again: +4, −1, +1 bill 1; one more bills 1", async () => {
    const { user, customerId } = await customer("giveback");
    const over = await updateCounter(user, 4);
    expect(over.body.counter).toMatchObject({ consumedUnits: 4, overageUnits: 1 });
    expect((await updateCounter(user, -1)).body.counter).toMatchObject({ consumedUnits: 3, overageUnits: 0 });
    const again = await updateCounter(user, 1);
    // The reading still says where the counter stands; only the billing knows the unit was billed already.
    expect(again.body.counter).toMatchObject({ consumedUnits: 4, overageUnits: 1, consumedUnitsInRequest: 1 });
    expect(again.body.counter).not.toHaveProperty("overageBilledUnits");
    expect(await valuesSent(user)).toEqual([1]);
    // A decision consuming the given-back unit again bills nothing either.
    expect((await updateCounter(user, -1)).status).toBe(200);
    expect((await decide(user)).body.features.api.properties.enabled).toMatchObject({ consumedUnits: 4, overageUnits: 1 });
    expect(await valuesSent(user)).toEqual([1]);
    const next = await updateCounter(user, 1);
    expect(next.body.counter).toMatchObject({ consumedUnits: 5, overageUnits: 2 });
    expect((await usageSent(user)).map((message) => [message.value, message.eventId])).toEqual([
      [1, over.body.eventId],
      [1, next.body.eventId],
    ]);
    await payments.deliver();
    expect(totalOf(await meterEventsFor(customerId))).toBe(2);
  });

  it("N concurrent decisions and counter updates past limit L bill N − L; concurrent give-backs and re-consumption bill only new overage", async () => {
    const { user, customerId } = await customer("concurrent");
    const N = 10;
    const results = await Promise.all(Array.from({ length: N }, (_, index) => (index % 2 === 0 ? decide(user) : updateCounter(user, 1))));
    expect(results.map((result) => result.status)).toEqual(Array(N).fill(200));
    expect(await valuesSent(user)).toHaveLength(N - LIMIT);
    expect((await valuesSent(user)).reduce((sum, value) => sum + value, 0)).toBe(N - LIMIT);

    // Units given back and consumed again while others are consumed: billed up to the highest overage reached only.
    const mixed = await Promise.all([
      updateCounter(user, -1),
      decide(user),
      updateCounter(user, -1),
      updateCounter(user, 1),
      decide(user),
      updateCounter(user, -1),
      updateCounter(user, 1),
    ]);
    const consumedUnits = mixed.map((result) => result.body.counter?.consumedUnits ?? result.body.features.api.properties.enabled.consumedUnits);
    const highest = Math.max(N, ...consumedUnits);
    expect((await valuesSent(user)).reduce((sum, value) => sum + value, 0)).toBe(highest - LIMIT);
    expect((await check(user)).body.features.api.properties.enabled.consumedUnits).toBe(N + 1);
    await payments.deliver();
    expect(totalOf(await meterEventsFor(customerId))).toBe(highest - LIMIT);
  });

  it("a replayed counter update (same Idempotency-Key) bills nothing more, also after units were given back", async () => {
    const { user, customerId } = await customer("update-retry");
    const headers = { "idempotency-key": uniqueId("key") };
    const first = await updateCounter(user, LIMIT + 2, headers);
    expect(first.body.counter).toMatchObject({ consumedUnits: LIMIT + 2, overageUnits: 2 });
    const retried = await updateCounter(user, LIMIT + 2, headers);
    expect(retried.body).toEqual(first.body);
    expect((await updateCounter(user, -2)).body.counter).toMatchObject({ consumedUnits: LIMIT });
    expect((await updateCounter(user, LIMIT + 2, headers)).body).toEqual(first.body);
    expect((await updateCounter(user, 2)).body.counter).toMatchObject({ consumedUnits: LIMIT + 2, overageUnits: 2 });
    expect((await usageSent(user)).map((message) => [message.value, message.eventId])).toEqual([[2, first.body.eventId]]);
    await payments.deliver();
    expect(totalOf(await meterEventsFor(customerId))).toBe(2);
  });
});

describe("cap (the default): unchanged", () => {
  it("refuses past the limit, with no overageUnits and nothing reported", async () => {
    const { user } = await customer("cap");
    const states = [];
    for (let i = 0; i < 3; i++) states.push((await decide(user, "download")).body.features.export.properties.enabled);
    expect(states.map((state) => [state.hasAccess, state.consumedUnits, state.remainingUnits])).toEqual([
      [true, 1, 1],
      [true, 2, 0],
      [false, 2, 0],
    ]);
    expect(states.every((state) => !("overageUnits" in state))).toBe(true);
    expect(await usageSent(user)).toEqual([]);
  });
});

describe("conflicts between plans", () => {
  const apiOf = async (user: string) => {
    const response = await decide(user);
    expect(response.status).toBe(200);
    return response.body.features.api.properties.enabled;
  };

  it("overflow at L beats a capped allowance below L", async () => {
    const { user } = await customer("small", ["prod_small"]);
    for (let i = 0; i < LIMIT; i++) await apiOf(user);
    expect(await apiOf(user)).toMatchObject({ hasAccess: true, totalUnits: LIMIT, consumedUnits: 4, overageUnits: 1 });
    expect(await usageSent(user)).toHaveLength(1);
  });

  it("a capped allowance above L beats overflow: refused at its own limit, no overage", async () => {
    const { user } = await customer("large", ["prod_large"]);
    const update = await updateCounter(user, 10);
    expect(update.body.counter).toMatchObject({ consumedUnits: 10, totalUnits: 10, remainingUnits: 0 });
    expect(update.body.counter).not.toHaveProperty("overageUnits");
    const refused = await apiOf(user);
    expect(refused).toMatchObject({ hasAccess: false, consumedUnits: 10, totalUnits: 10 });
    expect(refused).not.toHaveProperty("overageUnits");
    expect(await usageSent(user)).toEqual([]);
  });

  it("`on` beats overflow: unlimited, counted under L, never billed", async () => {
    const { user } = await customer("unlimited", ["prod_unlimited"]);
    let last;
    for (let i = 0; i < LIMIT + 2; i++) last = await apiOf(user);
    expect(last).toMatchObject({ hasAccess: true, consumedUnits: 5, totalUnits: LIMIT, remainingUnits: 0 });
    expect(last).not.toHaveProperty("overageUnits");
    expect(await usageSent(user)).toEqual([]);
  });
});

describe("configuration", () => {
  it("refuses stripeMeterEvent without overage: overflow, and a malformed event name (400)", async () => {
    const put = (enabled: unknown) =>
      call("PUT", "/api/v1/admin/config", {
        key: org.adminKey,
        body: { ...DOCUMENT, plans: { ...DOCUMENT.plans, basic: { ...DOCUMENT.plans.basic, features: { ...DOCUMENT.plans.basic.features, api: { enabled } } } } },
      });
    const capped = await put({ metered: { limit: 3, stripeMeterEvent: "api_calls" } });
    expect(capped.status).toBe(400);
    expect(capped.body).toMatchObject({ status: "error", statusCode: 400 });
    expect((await put({ metered: { limit: 3, overage: "cap", stripeMeterEvent: "api_calls" } })).status).toBe(400);
    expect((await put({ metered: { limit: 3, overage: "overflow", stripeMeterEvent: "api calls!" } })).status).toBe(400);
    expect((await put({ metered: { limit: 3, overage: "overflow", stripeMeterEvent: "api_calls" } })).status).toBe(200);
  });
});
