import { describe, expect, it } from "vitest";
import { decodeBase64, encodeBase64 } from "../../workers/lib/base64";
import { randomIdChars, timingSafeEqual } from "../../workers/lib/crypto";
import { newId } from "../../workers/lib/ids";
import { isForeignKeyError, isUniqueConstraintError } from "../../workers/lib/d1Errors";
import { raceDeadline } from "../../workers/lib/deadline";
import { NotPlainJsonError, toPlainJson } from "../../workers/lib/json";
import { BUDGET_EXCEEDED_MESSAGE, workflowFailureKind } from "../../workers/workflows/failures";

describe("raceDeadline", () => {
  it("tells a value, an error and a timeout apart, and hands back the abandoned call", async () => {
    expect(await raceDeadline(async () => 42, 1_000)).toEqual({ status: "value", value: 42 });
    const boom = new Error("boom");
    expect(await raceDeadline(() => Promise.reject(boom), 1_000)).toEqual({ status: "error", error: boom });
    const late = await raceDeadline(() => new Promise((resolve) => setTimeout(() => resolve("late"), 100)), 10);
    expect(late).toEqual({ status: "timeout", late: expect.any(Promise) });
    if (late.status === "timeout") expect(await late.late).toBe("late");
  });

  it("turns a synchronous throw into an error and never mistakes a value for its own timer", async () => {
    const thrown = new TypeError("bad call");
    expect(
      await raceDeadline(() => {
        throw thrown;
      }, 1_000),
    ).toEqual({ status: "error", error: thrown });
    expect(await raceDeadline(async () => "expired", 1_000)).toEqual({ status: "value", value: "expired" });
    expect(await raceDeadline(async () => "timeout", 1_000)).toEqual({ status: "value", value: "timeout" });
  });
});

describe("ids from the random pool", () => {
  it("are the asked length over [a-z0-9], distinct across many pool refills, and use every character", () => {
    const ids = Array.from({ length: 2_000 }, () => randomIdChars(16));
    expect(ids.every((id) => /^[a-z0-9]{16}$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids.join("")).size).toBe(36);
    expect(newId("evt")).toMatch(/^evt_[a-z0-9]{16}$/);
    expect(newId("feat")).toMatch(/^feat_[a-z0-9]{10}$/);
  });
});

describe("base64", () => {
  it("round-trips every byte value and large inputs", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(decodeBase64(encodeBase64(all))).toEqual(all);
    expect(encodeBase64(new TextEncoder().encode("hello"))).toBe("aGVsbG8=");
    const large = crypto.getRandomValues(new Uint8Array(40_000)); // more than one String.fromCharCode chunk
    expect(decodeBase64(encodeBase64(large))).toEqual(large);
  });

  it("refuses text that is not base64", () => {
    expect(() => decodeBase64("not base64!")).toThrow();
  });
});

describe("timingSafeEqual", () => {
  it("compares strings of any length", async () => {
    expect(await timingSafeEqual("operator-token", "operator-token")).toBe(true);
    expect(await timingSafeEqual("operator-token", "operator-tokeN")).toBe(false);
    expect(await timingSafeEqual("operator-token", "operator-token-longer")).toBe(false);
    expect(await timingSafeEqual("", "")).toBe(true);
    expect(await timingSafeEqual("", "x")).toBe(false);
  });
});

describe("D1 constraint errors", () => {
  it("recognises D1's messages, also when wrapped", () => {
    const unique = new Error("D1_ERROR: UNIQUE constraint failed: versions.organization_id, versions.number: SQLITE_CONSTRAINT");
    const foreign = new Error("D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT");
    expect(isUniqueConstraintError(unique)).toBe(true);
    expect(isForeignKeyError(unique)).toBe(false);
    expect(isForeignKeyError(foreign)).toBe(true);
    expect(isUniqueConstraintError(foreign)).toBe(false);
    expect(isUniqueConstraintError(new Error("insert failed", { cause: unique }))).toBe(true);
    expect(isUniqueConstraintError(new Error("D1_ERROR: no such table: versions"))).toBe(false);
    expect(isUniqueConstraintError("not an error")).toBe(false);
  });
});

describe("workflowFailureKind", () => {
  it("classifies the budget guard's error, workerd's hung-isolate cancellation and anything else", () => {
    expect(workflowFailureKind(new Error(BUDGET_EXCEEDED_MESSAGE))).toBe("budget");
    expect(
      workflowFailureKind(new Error("The Workers runtime canceled this request because it detected that your Worker's code had hung and would never generate a response.")),
    ).toBe("timeout");
    expect(workflowFailureKind(new Error("customer code threw"))).toBe("threw");
    expect(workflowFailureKind("a string")).toBe("threw");
  });
});

describe("toPlainJson: what customer code returns, as plain bounded JSON", () => {
  const plain = (value: unknown, maxBytes = 1024) => toPlainJson(value, { maxBytes });
  const refusal = (value: unknown, maxBytes = 1024) => {
    try {
      toPlainJson(value, { maxBytes });
    } catch (error) {
      expect(error).toBeInstanceOf(NotPlainJsonError);
      return (error as Error).message;
    }
    throw new Error("expected a refusal");
  };

  it("copies JSON's own kinds, dropping undefined properties and turning undefined or empty slots into null", () => {
    const input = { a: 1, b: "x", c: [true, null, undefined, , 2], d: { e: undefined, f: -0.5 } }; // eslint-disable-line no-sparse-arrays
    const copy = plain(input);
    expect(copy).toEqual({ a: 1, b: "x", c: [true, null, null, null, 2], d: { f: -0.5 } });
    expect(copy).not.toBe(input);
    expect(JSON.stringify(copy)).toBe('{"a":1,"b":"x","c":[true,null,null,null,2],"d":{"f":-0.5}}');
  });

  it("keeps a __proto__ key as data, never as the copy's prototype", () => {
    const input = JSON.parse('{"__proto__": {"http": {"status": 200, "body": "x"}}}');
    const copy = plain(input) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(copy.http).toBeUndefined();
    expect(Object.keys(copy)).toEqual(["__proto__"]);
  });

  it("refuses what JSON cannot carry, saying where", () => {
    expect(refusal({ n: 10n })).toBe("result.n is a bigint, which JSON cannot carry");
    expect(refusal({ list: [1, () => 2] })).toBe("result.list[1] is a function, which JSON cannot carry");
    expect(refusal({ when: new Date(0) })).toBe("result.when is a Date instance, not a plain object");
    expect(refusal({ map: new Map() })).toBe("result.map is a Map instance, not a plain object");
    expect(refusal({ x: Number.NaN })).toBe("result.x is NaN, which JSON cannot carry");
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(refusal(cycle)).toBe("result.self refers back to itself (a cycle)");
  });

  it("bounds the walk: sparse arrays, shared references, depth and size", () => {
    const sparse: unknown[] = [];
    sparse.length = 2 ** 32 - 1;
    // Refused from its length, before a walk over 4 billion empty slots.
    expect(refusal(sparse)).toBe("result has more than 100000 values");
    // A small graph that expands: 2^30 paths through 30 shared nodes.
    let graph: unknown = 1;
    for (let i = 0; i < 30; i++) graph = [graph, graph];
    expect(refusal(graph)).toBe("result has more than 100000 values");
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(refusal(deep)).toMatch(/nested deeper than 64 levels/);
    expect(refusal({ text: "x".repeat(2_000) })).toBe("result is more than the 1 KiB of JSON allowed");
    expect(refusal({ text: "é".repeat(600) })).toMatch(/^result is \d+ bytes of JSON, more than the 1 KiB allowed$/);
  });
});
