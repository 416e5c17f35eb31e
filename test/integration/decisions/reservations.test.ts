/** POST /api/v1/reservations, …/{id}/finalize and …/{id}/release through HTTP: reserve → settle on the actual usage. */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { UsageReportMessage } from "../../../workers/payments/usage";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";
import { workerWith } from "../../support/faults";
import { capturePayments, type CapturedPayments } from "../../support/payments";
import { captureTriggers, type CapturedTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

const DOCUMENT = {
  features: {
    llm: {
      properties: {
        enabled: { type: "enabled", fallback: "off" },
        tokens: { type: "credits", costs: { base: 1, actions: { generate: 5 } } },
      },
    },
    batch: { properties: { enabled: { type: "enabled", fallback: "off" } } },
    articles: { properties: { enabled: { type: "enabled", fallback: "off" } } },
  },
  plans: {
    basic: {
      autoAssign: ["anonymous", "authenticated"],
      features: {
        llm: { enabled: { metered: { limit: 10, period: "month" } }, tokens: { credits: { amount: 20, period: "month" } } },
        batch: { enabled: { metered: { limit: 3, period: "month", overage: "overflow" } } },
        articles: { enabled: { metered: { limit: 5, period: "month", uniqueResources: true } } },
      },
    },
  },
};

let org: TestOrganization;
let other: TestOrganization;
let llm: string;
let batch: string;
let tokens: string;
let articles: string;
beforeAll(async () => {
  [org, other] = await Promise.all([createOrganization("Reservations"), createOrganization("Reservations, other")]);
  await Promise.all([publish(org.adminKey, DOCUMENT, [org.live.id]), publish(other.adminKey, DOCUMENT, [other.live.id])]);
  const id = async (slug: string) => (await call("GET", `/api/v1/admin/features/${slug}`, { key: org.live.secretKey })).body.id as string;
  llm = `default:${await id("llm")}.enabled`;
  tokens = `default:${await id("llm")}.tokens`;
  batch = `default:${await id("batch")}.enabled`;
  articles = `default:${await id("articles")}.enabled`;
});

let sequence = 0;
const user = (label: string) => ({ userIdentifier: `${label}-${Date.now().toString(36)}-${sequence++}` });

const reserve = (body: Record<string, unknown>, options: { key?: string; headers?: Record<string, string> } = {}) =>
  call("POST", "/api/v1/reservations", { key: options.key ?? org.live.secretKey, headers: options.headers, body });
const finalize = (id: string, body: Record<string, unknown>, key = org.live.secretKey) => call("POST", `/api/v1/reservations/${id}/finalize`, { key, body });
const release = (id: string, body: Record<string, unknown>) => call("POST", `/api/v1/reservations/${id}/release`, { key: org.live.secretKey, body });

/** The counter as decisions see it (an access check reads, never consumes). */
async function checked(identity: Record<string, unknown>, feature: string, property = "enabled") {
  const result = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity } });
  expect(result.status).toBe(200);
  return result.body.features[feature].properties[property];
}

async function reserved(identity: Record<string, unknown>, counterId: string, amount?: number): Promise<string> {
  const result = await reserve({ identity, counterId, ...(amount === undefined ? {} : { amount }) });
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  expect(result.body.granted).toBe(true);
  return result.body.reservation.id;
}

describe("reservations: reserve", () => {
  it("takes the units when there is room; without room answers granted: false and takes nothing", async () => {
    const identity = user("room");
    const granted = await reserve({ identity, counterId: llm, amount: 4, ttlSeconds: 120 });
    expect(granted.status).toBe(200);
    expect(granted.body).toMatchObject({
      status: "success",
      granted: true,
      reservation: { counterId: llm, amount: 4 },
      counter: { counterId: llm, consumedUnits: 4, remainingUnits: 6, consumedUnitsInRequest: 4 },
    });
    expect(granted.body.eventId).toMatch(/^evt_/);
    const expiresIn = Date.parse(granted.body.reservation.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(100_000);
    expect(expiresIn).toBeLessThanOrEqual(120_000);
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 4 });

    const refused = await reserve({ identity, counterId: llm, amount: 7 });
    expect(refused.status).toBe(200);
    expect(refused.body).toMatchObject({ status: "success", granted: false, counter: { consumedUnits: 4, consumedUnitsInRequest: 0, hasAccess: false } });
    expect(refused.body).not.toHaveProperty("reservation");
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 4 });
  });

  it("20 concurrent reservations of 3 units against a limit of 10: exactly 3 granted, 9 consumed", async () => {
    const identity = user("burst");
    const results = await Promise.all(Array.from({ length: 20 }, () => reserve({ identity, counterId: llm, amount: 3 })));
    for (const result of results) expect(result.status).toBe(200);
    expect(results.filter((result) => result.body.granted)).toHaveLength(3);
    expect(new Set(results.filter((result) => result.body.granted).map((result) => result.body.reservation.id)).size).toBe(3);
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 9 });
  });

  it("reserves credits at the action's price by default and refuses what the balance cannot cover", async () => {
    const identity = user("credits");
    const priced = await reserve({ identity, counterId: tokens, action: "generate" });
    expect(priced.status, JSON.stringify(priced.body)).toBe(200);
    expect(priced.body).toMatchObject({ granted: true, reservation: { amount: 5 }, credit: { creditId: tokens, balance: 15, deductedInRequest: true } });
    const tooMuch = await reserve({ identity, counterId: tokens, amount: 16 });
    expect(tooMuch.body).toMatchObject({ granted: false, credit: { balance: 15, reason: "insufficient_credits" } });
    expect(await checked(identity, "llm", "tokens")).toMatchObject({ balance: 15 });
  });

  it("applies an Idempotency-Key once and refuses it with another body", async () => {
    const identity = user("key");
    const headers = { "idempotency-key": `rsv-${crypto.randomUUID()}` };
    const results = await Promise.all(Array.from({ length: 10 }, () => reserve({ identity, counterId: llm, amount: 2 }, { headers })));
    for (const result of results) expect(result.body).toEqual(results[0]!.body);
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 2 });
    const reused = await reserve({ identity, counterId: llm, amount: 3 }, { headers });
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe("idempotency_key_reused");
  });

  it("refuses bad bodies, unique-resources and unknown counters, and publishable keys", async () => {
    const identity = user("bad");
    expect((await reserve({ identity, counterId: llm })).status).toBe(400);
    expect((await reserve({ identity, counterId: llm, amount: 1.5 })).status).toBe(400);
    expect((await reserve({ identity, counterId: llm, amount: 0 })).status).toBe(400);
    expect((await reserve({ identity, counterId: llm, amount: 1, ttlSeconds: 3601 })).status).toBe(400);
    expect((await reserve({ identity, counterId: tokens, amount: -2 })).status).toBe(400);
    const unique = await reserve({ identity, counterId: articles, amount: 1 });
    expect(unique.status).toBe(409);
    expect(unique.body.code).toBe("conflict");
    expect((await reserve({ identity, counterId: "default:feat_nothere00.enabled", amount: 1 })).status).toBe(404);
    const publishable = await reserve({ identity: { anonymousIdentifier: "pk-visitor" }, counterId: llm, amount: 1 }, { key: org.live.publishableKey });
    expect(publishable.status).toBe(403);
    expect(publishable.body).toMatchObject({ status: "error", code: "forbidden" });
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 0 });
  });
});

describe("reservations: finalize and release", () => {
  it("gives back what was not used, and takes the extra up to the limit (reporting the rest)", async () => {
    const identity = user("settle");
    const small = await reserved(identity, llm, 5);
    const refund = await finalize(small, { identity, amount: 2 });
    expect(refund.status, JSON.stringify(refund.body)).toBe(200);
    expect(refund.body).toMatchObject({
      status: "success",
      reservation: { id: small, reserved: 5, actual: 2, refunded: 3, charged: 0, uncovered: 0, status: "finalized" },
      counter: { consumedUnits: 2 },
    });
    const big = await reserved(identity, llm, 5);
    const over = await finalize(big, { identity, amount: 12 });
    expect(over.body).toMatchObject({ reservation: { reserved: 5, actual: 12, charged: 3, uncovered: 4 }, counter: { consumedUnits: 10, hasAccess: false } });
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 10, hasAccess: false });
  });

  it("an overflow counter takes all of the actual usage at finalize, past its limit as overage", async () => {
    const identity = user("overflow");
    const id = await reserved(identity, batch, 2);
    expect(await checked(identity, "batch")).toMatchObject({ consumedUnits: 0 });
    const result = await finalize(id, { identity, amount: 5 });
    expect(result.body).toMatchObject({ reservation: { reserved: 2, actual: 5, charged: 3, uncovered: 0 }, counter: { consumedUnits: 5, totalUnits: 3, overageUnits: 2 } });
    expect(result.body.counter).not.toHaveProperty("overageBilledUnits");
    expect(await checked(identity, "batch")).toMatchObject({ consumedUnits: 5 });
  });

  it("settles credits: refunds the difference, takes the extra up to the balance", async () => {
    const identity = user("tokens");
    const id = await reserved(identity, tokens, 8);
    expect((await finalize(id, { identity, amount: 3.5 })).body).toMatchObject({ reservation: { refunded: 4.5 }, credit: { balance: 16.5 } });
    const more = await reserved(identity, tokens, 10);
    expect((await finalize(more, { identity, amount: 30 })).body).toMatchObject({
      reservation: { charged: 6.5, uncovered: 13.5 },
      credit: { balance: 0, reason: "insufficient_credits" },
    });
  });

  it("answers a repeat with the same amount as the first time, and 409 for another amount or a release", async () => {
    const identity = user("repeat");
    const id = await reserved(identity, llm, 5);
    const results = await Promise.all(Array.from({ length: 10 }, () => finalize(id, { identity, amount: 7 })));
    for (const result of results) {
      expect(result.status).toBe(200);
      expect(result.body).toEqual(results[0]!.body);
    }
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 7 });
    const another = await finalize(id, { identity, amount: 6 });
    expect(another.status).toBe(409);
    expect(another.body).toMatchObject({ status: "error", code: "reservation_finalized" });
    expect((await release(id, { identity })).body.code).toBe("reservation_finalized");
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 7 });
  });

  it("releases everything once", async () => {
    const identity = user("release");
    const id = await reserved(identity, llm, 6);
    const released = await release(id, { identity });
    expect(released.body).toMatchObject({ reservation: { reserved: 6, actual: 0, refunded: 6, status: "released" }, counter: { consumedUnits: 0 } });
    expect((await release(id, { identity })).body).toEqual(released.body);
    expect((await finalize(id, { identity, amount: 6 })).status).toBe(409);
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 0 });
  });

  it("refuses unknown ids and another identity's or organization's reservation without touching it", async () => {
    const identity = user("owner");
    const unknown = await finalize("rsv_nothingbythisname", { identity, amount: 1 });
    expect(unknown.status).toBe(409);
    expect(unknown.body).toMatchObject({ status: "error", statusCode: 409, code: "reservation_not_found" });
    const id = await reserved(identity, llm, 5);
    const thief = await finalize(id, { identity: user("thief"), amount: 0 });
    expect(thief.status).toBe(409);
    expect(thief.body.code).toBe("reservation_not_found");
    // The same identifier in another organization is another user of another store.
    expect((await finalize(id, { identity, amount: 0 }, other.live.secretKey)).body.code).toBe("reservation_not_found");
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 5 });
    expect((await finalize(id, { identity, amount: 5 })).status).toBe(200);
  });

  it("refuses a finalize past the expiry and charges nothing: the reserved units go back", async () => {
    const identity = user("late");
    const response = await reserve({ identity, counterId: llm, amount: 4, ttlSeconds: 60 });
    const id = response.body.reservation.id;
    const callLater = workerWith({ clock: { now: () => Date.parse(response.body.reservation.expiresAt) + 1000 } });
    const late = await callLater("POST", `/api/v1/reservations/${id}/finalize`, { key: org.live.secretKey, body: { identity, amount: 9 } });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ status: "error", code: "reservation_expired" });
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 0 });
    expect((await finalize(id, { identity, amount: 4 })).body.code).toBe("reservation_expired");
  });

  it("refuses a fractional actual for units and a missing amount", async () => {
    const identity = user("fraction");
    const id = await reserved(identity, llm, 3);
    expect((await finalize(id, { identity, amount: 1.5 })).status).toBe(400);
    expect((await finalize(id, { identity })).status).toBe(400);
    expect((await finalize(id, { identity, amount: -1 })).status).toBe(400);
    expect(await checked(identity, "llm")).toMatchObject({ consumedUnits: 3 });
  });

  it("records each step as a counter_update event", async () => {
    const identity = user("events");
    const response = await reserve({ identity, counterId: llm, amount: 3 });
    const finalized = await finalize(response.body.reservation.id, { identity, amount: 1 });
    const events = await eventsFor(org.live.secretKey, `kind=counter_update&identifier=${identity.userIdentifier}`, 2);
    const byId = new Map(events.map((event) => [event.id, event]));
    expect(byId.get(response.body.eventId)).toMatchObject({ outcome: "granted", record: { action: "reservation.reserve", counterId: llm, amount: 3, reservationId: response.body.reservation.id } });
    expect(byId.get(finalized.body.eventId)).toMatchObject({ outcome: "finalized", record: { action: "reservation.finalize", reservation: { refunded: 2 } } });
  });

  it("is in the OpenAPI document", async () => {
    const document = await call("GET", "/openapi.json");
    expect(document.body.paths["/api/v1/reservations"]?.post).toBeDefined();
    expect(document.body.paths["/api/v1/reservations/{reservationId}/finalize"]?.post).toBeDefined();
    expect(document.body.paths["/api/v1/reservations/{reservationId}/release"]?.post).toBeDefined();
  });
});

describe("reservations: what follows a change (triggers, overage billing)", () => {
  let billed: TestOrganization;
  let llmCounter: string;
  let batchCounter: string;
  let triggers: CapturedTriggers;
  let payments: CapturedPayments;
  beforeAll(async () => {
    billed = await createOrganization("Reservations, billed");
    const document = structuredClone(DOCUMENT) as Record<string, any>;
    document.plans.basic.features.batch.enabled.metered.stripeMeterEvent = "batch_units";
    document.workflows = { "record-counters": recordTriggersAction(["counters.updated"]) };
    await publish(billed.adminKey, document, [billed.live.id]);
    const id = async (slug: string) => (await call("GET", `/api/v1/admin/features/${slug}`, { key: billed.live.secretKey })).body.id as string;
    llmCounter = `default:${await id("llm")}.enabled`;
    batchCounter = `default:${await id("batch")}.enabled`;
  });
  beforeEach(() => {
    triggers = captureTriggers();
    payments = capturePayments();
  });
  afterEach(async () => {
    await triggers.restore();
    payments.restore();
  });

  const post = (path: string, body: Record<string, unknown>) => call("POST", path, { key: billed.live.secretKey, body });
  async function countersUpdated(identifier: string) {
    await waitForBackgroundWork();
    return triggers.sent.filter((message) => message.identifier === identifier && message.trigger === "counters.updated");
  }
  async function usage(identifier: string): Promise<UsageReportMessage[]> {
    await waitForBackgroundWork();
    return (payments.sent as unknown as UsageReportMessage[]).filter((message) => message.kind === "usage" && message.identifier === identifier);
  }

  it("fires counters.updated when units are taken or given back, once per settlement", async () => {
    const identity = user("triggers");
    const reservation = await post("/api/v1/reservations", { identity, counterId: llmCounter, amount: 4 });
    expect((await countersUpdated(identity.userIdentifier)).map((message) => message.payload)).toEqual([
      expect.objectContaining({ eventId: reservation.body.eventId, counters: [expect.objectContaining({ consumedUnits: 4 })] }),
    ]);
    const path = `/api/v1/reservations/${reservation.body.reservation.id}/finalize`;
    const finalized = await post(path, { identity, amount: 1 });
    await post(path, { identity, amount: 1 });
    const sent = await countersUpdated(identity.userIdentifier);
    expect(sent).toHaveLength(2);
    expect(sent[1]!.payload).toMatchObject({ eventId: finalized.body.eventId, counters: [{ consumedUnits: 1 }] });
  });

  it("bills an overflow counter's overage on what the finalize took, once", async () => {
    const identity = user("billing");
    const reservation = await post("/api/v1/reservations", { identity, counterId: batchCounter, amount: 2 });
    expect(reservation.body.granted).toBe(true);
    expect(await usage(identity.userIdentifier)).toEqual([]);
    expect(await countersUpdated(identity.userIdentifier)).toEqual([]);
    const path = `/api/v1/reservations/${reservation.body.reservation.id}/finalize`;
    const finalized = await post(path, { identity, amount: 5 });
    expect(finalized.body.counter).toMatchObject({ consumedUnits: 5, overageUnits: 2 });
    await post(path, { identity, amount: 5 });
    expect(await usage(identity.userIdentifier)).toEqual([
      expect.objectContaining({ counterId: batchCounter, eventName: "batch_units", value: 2, eventId: finalized.body.eventId }),
    ]);
  });
});
