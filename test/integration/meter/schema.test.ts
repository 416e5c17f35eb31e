/**
 * Lazy schema: a new object creates its tables right before its first write (reads of a never-written object touch no
 * table), an evicted object finds them again, and an object with only part of the schema is completed on wake.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MeterObject } from "../../../durable-objects/meter/MeterObject";
import { counter, freshMeter, only, readingsOf } from "./helpers";

const WIDGET = "default:feat_widget001.enabled";

const tables = (stub: DurableObjectStub<MeterObject>) =>
  runInDurableObject(stub, (_instance: MeterObject, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND substr(name, 1, 4) <> '_cf_' ORDER BY name")
      .toArray()
      .map((row) => row.name),
  );

describe("meter object schema", () => {
  it("reads of a never-written object are empty and create nothing; the first consume creates the tables", async () => {
    const { stub } = freshMeter();
    const read = readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, { consume: false })], credits: [{ creditId: "tokens", cost: 2, consume: false }], timeZone: "UTC" }));
    expect(only(read)).toMatchObject({ hasAccess: true, consumedUnits: 0, remainingUnits: 3 });
    expect(await stub.getBalance("tokens")).toBe(0);
    expect(await tables(stub)).toEqual([]);
    // A refusal writes nothing either.
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 0)], timeZone: "UTC" })))).toMatchObject({ hasAccess: false, excessUnitsInRequest: 1 });
    expect(await tables(stub)).toEqual([]);

    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" })))).toMatchObject({ hasAccess: true, consumedUnits: 1 });
    // The core table only: resources, overage marks, idempotency keys, credits, custom data, links, the plan set, an
    // agent's and reservations' tables come with their first use.
    expect(await tables(stub)).toEqual(["counters"]);
    await evictDurableObject(stub);
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" })))).toMatchObject({ hasAccess: true, consumedUnits: 2 });
  });

  it("completes a partial schema on wake without losing data", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "k1", requestHash: "h" });
    await runInDurableObject(stub, (_instance: MeterObject, state) => {
      state.storage.sql.exec("DROP INDEX idempotency_created_at");
    });
    await evictDurableObject(stub);
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, { consume: false })], timeZone: "UTC" })))).toMatchObject({ consumedUnits: 1 });
    const indexes = await runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'idempotency_created_at'").toArray().length);
    expect(indexes).toBe(1);
    // The key stored before still answers the retry.
    expect(await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "k1", requestHash: "h" })).toMatchObject({ replayed: true });
    expect(await stub.importOnce("a->b", [])).toEqual({ linked: true, counters: 0 });
    expect(await tables(stub)).toContain("links");
  });

  it("creates an agent's and a reservation's tables on their first use only, and finds them again after eviction", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" });
    // Reads of groups never created answer empty, creating nothing.
    expect(await stub.agentLedger()).toEqual({ charges: [], totals: [], nextCursor: null });
    expect(await stub.beginX402Settlement("pay_none", 1)).toEqual({ refused: "payment_not_found" });
    expect(await stub.settleReservation({ reservationId: "rsv_none", action: "release", counters: [], credits: [], timeZone: "UTC" })).toEqual({ refused: "reservation_not_found" });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await tables(stub)).filter((name) => name.startsWith("agent_") || name === "reservations")).toEqual([]);

    expect(await stub.claimNonce("n-1", Date.now() + 60_000)).toBe(true);
    expect((await tables(stub)).filter((name) => name.startsWith("agent_"))).toEqual(["agent_charges", "agent_nonces", "agent_pending_payments"]);
    await evictDurableObject(stub);
    expect(await stub.claimNonce("n-1", Date.now() + 60_000)).toBe(false);
    const reserved = await stub.reserve({ counter: { counterId: WIDGET, period: "lifetime", limit: 3 }, amount: 1, ttlMs: 60_000, timeZone: "UTC" });
    expect(reserved).toMatchObject({ granted: true });
    expect(await tables(stub)).toContain("reservations");
  });

  it("writes far fewer rows for a new object's first consumption than the whole schema would", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" });
    const objects = await runInDurableObject(stub, (_instance: MeterObject, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite%' AND substr(name, 1, 4) <> '_cf_'").one().n,
    );
    // The counters alone (WITHOUT ROWID: no separate index for its key); every other group waits for its first use.
    expect(objects).toBe(1);
  });

  it("creates credits, custom data and plan-set tables on their first write, and reads them back after eviction", async () => {
    const { stub } = freshMeter();
    expect(await stub.grantCredits({ creditId: "tokens", amount: 5 })).toMatchObject({ ok: true, balance: 5 });
    expect(await tables(stub)).toEqual(["counters", "credit_allowances", "credit_carry", "credit_ledger", "credits"]);
    await stub.customDataSet("k", { v: 1 });
    await stub.evaluate({ counters: [], plans: ["free"], timeZone: "UTC" });
    await evictDurableObject(stub);
    expect(await stub.getBalance("tokens")).toBe(5);
    expect(await stub.customDataGet("k")).toEqual({ v: 1 });
    expect(await stub.replaceLinkedPlans({ remove: [], add: ["pro"] })).toEqual({ from: ["free"], to: ["free", "pro"] });
    expect(await tables(stub)).toEqual(expect.arrayContaining(["custom_data", "profile"]));
  });
});

describe("groups of the core's old tables", () => {
  it("create resources, overage marks and idempotency keys with their first write, before its transaction", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3, { uniqueResources: true })], resourceId: "doc-1", timeZone: "UTC" });
    expect(await tables(stub)).toEqual(["counters", "resources"]);
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, { uniqueResources: true })], resourceId: "doc-1", timeZone: "UTC" })))).toMatchObject({ resourceIdUsed: true, consumedUnits: 1 });
    await evictDurableObject(stub);
    expect(await stub.readCounters()).toMatchObject([{ counterId: WIDGET, consumedUnits: 1, uniqueResourceCount: 1 }]);
    await stub.updateCounter({ counterId: "default:api", period: "month", timeZone: "UTC", limit: 1_000_000, overflowLimit: 0, update: 2, idempotencyKey: "u1", requestHash: "h" });
    expect(await tables(stub)).toEqual(["counters", "idempotency", "overage_billed", "resources"]);
    expect(await stub.updateCounter({ counterId: "default:api", period: "month", timeZone: "UTC", limit: 1_000_000, overflowLimit: 0, update: 2, idempotencyKey: "u1", requestHash: "h" })).toMatchObject({ replayed: true });
  });

  it("an old object with every table keeps working: its rowid counters table included", async () => {
    const { stub } = freshMeter();
    await runInDurableObject(stub, (_instance: MeterObject, state) => {
      state.storage.sql.exec(`
        CREATE TABLE counters (counter_id TEXT PRIMARY KEY, period TEXT NOT NULL, time_zone TEXT NOT NULL, period_start INTEGER NOT NULL, consumed INTEGER NOT NULL);
        CREATE TABLE resources (counter_id TEXT NOT NULL, period_start INTEGER NOT NULL, resource_id TEXT NOT NULL, PRIMARY KEY (counter_id, period_start, resource_id)) WITHOUT ROWID;
        CREATE TABLE overage_billed (counter_id TEXT NOT NULL, period_start INTEGER NOT NULL, billed_through INTEGER NOT NULL, PRIMARY KEY (counter_id, period_start)) WITHOUT ROWID;
        CREATE TABLE idempotency (key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, result TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE INDEX idempotency_created_at ON idempotency (created_at);
        INSERT INTO counters VALUES ('${WIDGET}', 'lifetime', 'UTC', 0, 2);
        INSERT INTO resources VALUES ('${WIDGET}', 0, 'doc-9');`);
    });
    await evictDurableObject(stub);
    const lifetime = { period: "lifetime" as const };
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, { ...lifetime, uniqueResources: true })], resourceId: "doc-9", timeZone: "UTC" })))).toMatchObject({ resourceIdUsed: true, consumedUnits: 2 });
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, lifetime)], timeZone: "UTC" })))).toMatchObject({ consumedUnits: 3 });
    expect(await stub.readCounters()).toMatchObject([{ counterId: WIDGET, consumedUnits: 3, uniqueResourceCount: 1 }]);
  });
});

describe("a refusal stays a read", () => {
  it("a refused unique-resources or overflow consumption on a new identity creates nothing and adds no user; its first grant does", async () => {
    const { stub } = freshMeter();
    const refused = await stub.evaluate({ counters: [counter(WIDGET, 0, { uniqueResources: true })], resourceId: "doc", timeZone: "UTC" });
    expect(only(readingsOf(refused))).toMatchObject({ hasAccess: false });
    expect(refused).not.toHaveProperty("userAdded");
    expect(await stub.evaluate({ counters: [], credits: [{ creditId: "tokens", cost: 5, consume: true }], timeZone: "UTC" })).not.toHaveProperty("userAdded");
    expect(await tables(stub)).toEqual([]);
    const granted = await stub.evaluate({ counters: [counter(WIDGET, 3, { uniqueResources: true })], resourceId: "doc", timeZone: "UTC" });
    expect(granted).toMatchObject({ userAdded: true });
    expect(await tables(stub)).toEqual(["counters", "resources"]);
  });

  it("creates the groups a merged counter writes: one entry reads with an overflow limit, another consumes", async () => {
    const { stub } = freshMeter();
    const result = await stub.evaluate({
      counters: [counter(WIDGET, 1_000_000, { consume: false, overflowLimit: 0, uniqueResources: true }), counter(WIDGET, 1_000_000, { consume: true, overflowLimit: 0 })],
      resourceId: "doc",
      timeZone: "UTC",
      idempotencyKey: "merged",
      requestHash: "h",
    });
    expect(only(readingsOf(result))).toMatchObject({ consumedInRequest: true, overageBilledUnits: 1 });
    expect(await tables(stub)).toEqual(["counters", "idempotency", "overage_billed", "resources"]);
  });
});
