/**
 * Lazy schema: a new object creates its tables right before its first write (reads of a never-written object touch no
 * table), an evicted object finds them again, and an object with only part of the schema is completed on wake.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
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
    expect(await tables(stub)).toEqual(["agent_charges", "agent_nonces", "agent_pending_payments", "counters", "credit_allowances", "credit_carry", "credit_ledger", "credits", "custom_data", "idempotency", "links", "overage_billed", "profile", "reservations", "resources"]);
    await evictDurableObject(stub);
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" })))).toMatchObject({ hasAccess: true, consumedUnits: 2 });
  });

  it("completes a partial schema on wake without losing data", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" });
    await runInDurableObject(stub, (_instance: MeterObject, state) => {
      state.storage.sql.exec("DROP TABLE links");
    });
    await evictDurableObject(stub);
    expect(only(readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 3, { consume: false })], timeZone: "UTC" })))).toMatchObject({ consumedUnits: 1 });
    expect(await tables(stub)).toContain("links");
    expect(await stub.importOnce("a->b", [])).toEqual({ linked: true, counters: 0 });
  });
});
