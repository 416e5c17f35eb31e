import { describe, expect, it } from "vitest";
import { isoPeriodStart, isValidTimeZone, periodStart } from "../../../durable-objects/meter/periods";
import { at } from "./helpers";

describe("periodStart (UTC)", () => {
  const now = at("2026-05-14T13:47:21.123Z"); // a Thursday

  it.each([
    ["lifetime", "1970-01-01T00:00:00.000Z"],
    ["minute", "2026-05-14T13:47:00.000Z"],
    ["hour", "2026-05-14T13:00:00.000Z"],
    ["day", "2026-05-14T00:00:00.000Z"],
    ["week", "2026-05-11T00:00:00.000Z"],
    ["month", "2026-05-01T00:00:00.000Z"],
    ["year", "2026-01-01T00:00:00.000Z"],
  ] as const)("%s starts at %s", (period, expected) => {
    expect(isoPeriodStart(period, now)).toBe(expected);
    expect(isoPeriodStart(period, now, "UTC")).toBe(expected);
  });

  it("lifetime is the epoch whatever the zone", () => {
    expect(periodStart("lifetime", now, "Europe/Berlin")).toBe(0);
  });

  it("weeks start on Monday (ISO 8601), also across a year boundary and on Sunday", () => {
    expect(isoPeriodStart("week", at("2026-01-01T10:00:00Z"))).toBe("2025-12-29T00:00:00.000Z");
    expect(isoPeriodStart("week", at("2026-05-17T23:59:59.999Z"))).toBe("2026-05-11T00:00:00.000Z"); // Sunday
    expect(isoPeriodStart("week", at("2026-05-18T00:00:00Z"))).toBe("2026-05-18T00:00:00.000Z"); // Monday
  });

  it("a boundary instant belongs to the new period, the instant before to the old one", () => {
    expect(isoPeriodStart("month", at("2026-06-01T00:00:00.000Z"))).toBe("2026-06-01T00:00:00.000Z");
    expect(isoPeriodStart("month", at("2026-05-31T23:59:59.999Z"))).toBe("2026-05-01T00:00:00.000Z");
    expect(isoPeriodStart("month", at("2024-02-29T12:00:00Z"))).toBe("2024-02-01T00:00:00.000Z");
  });
});

describe("periodStart in a time zone", () => {
  it("aligns days, months and years to local midnight", () => {
    // 2026-05-31 23:30 in Berlin (CEST, +2) is still May there.
    expect(isoPeriodStart("month", at("2026-05-31T21:30:00Z"), "Europe/Berlin")).toBe("2026-04-30T22:00:00.000Z");
    expect(isoPeriodStart("month", at("2026-05-31T22:00:00Z"), "Europe/Berlin")).toBe("2026-05-31T22:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-01-15T03:00:00Z"), "America/New_York")).toBe("2026-01-14T05:00:00.000Z");
    expect(isoPeriodStart("year", at("2025-12-31T16:00:00Z"), "Asia/Tokyo")).toBe("2025-12-31T15:00:00.000Z");
  });

  it("handles Europe/Berlin's DST change inside a month and a week", () => {
    // March 2026 began in CET (+1); April begins in CEST (+2): the boundaries carry different offsets.
    expect(isoPeriodStart("month", at("2026-03-31T21:59:59Z"), "Europe/Berlin")).toBe("2026-02-28T23:00:00.000Z");
    expect(isoPeriodStart("month", at("2026-03-31T22:00:00Z"), "Europe/Berlin")).toBe("2026-03-31T22:00:00.000Z");
    // Clocks go forward on Sunday 2026-03-29; that week began on Monday 2026-03-23 00:00 CET.
    expect(isoPeriodStart("week", at("2026-03-29T12:00:00Z"), "Europe/Berlin")).toBe("2026-03-22T23:00:00.000Z");
    expect(isoPeriodStart("week", at("2026-03-30T12:00:00Z"), "Europe/Berlin")).toBe("2026-03-29T22:00:00.000Z");
    // The day of the change is 23 hours long.
    expect(isoPeriodStart("day", at("2026-03-29T21:59:00Z"), "Europe/Berlin")).toBe("2026-03-28T23:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-03-29T22:00:00Z"), "Europe/Berlin")).toBe("2026-03-29T22:00:00.000Z");
  });

  it("handles America/New_York's spring-forward and fall-back hours", () => {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    expect(isoPeriodStart("day", at("2026-03-08T12:00:00Z"), "America/New_York")).toBe("2026-03-08T05:00:00.000Z");
    expect(isoPeriodStart("hour", at("2026-03-08T07:30:00Z"), "America/New_York")).toBe("2026-03-08T07:00:00.000Z");
    expect(isoPeriodStart("hour", at("2026-03-08T06:59:00Z"), "America/New_York")).toBe("2026-03-08T06:00:00.000Z");
    // 2026-11-01: 01:00-02:00 happens twice; each is its own hour, the day starts at the first midnight.
    expect(isoPeriodStart("hour", at("2026-11-01T05:30:00Z"), "America/New_York")).toBe("2026-11-01T05:00:00.000Z");
    expect(isoPeriodStart("hour", at("2026-11-01T06:30:00Z"), "America/New_York")).toBe("2026-11-01T06:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-11-01T12:00:00Z"), "America/New_York")).toBe("2026-11-01T04:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-11-02T04:59:00Z"), "America/New_York")).toBe("2026-11-01T04:00:00.000Z");
  });

  it("starts a day whose midnight does not exist at the end of the gap (America/Santiago)", () => {
    // 2026-09-06 00:00 (-04) jumps to 01:00 (-03) = 04:00Z.
    expect(isoPeriodStart("day", at("2026-09-06T12:00:00Z"), "America/Santiago")).toBe("2026-09-06T04:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-09-06T03:59:00Z"), "America/Santiago")).toBe("2026-09-05T04:00:00.000Z");
  });

  it("uses local hours in zones with half-hour offsets", () => {
    expect(isoPeriodStart("hour", at("2026-01-01T10:45:00Z"), "Asia/Kolkata")).toBe("2026-01-01T10:30:00.000Z");
    expect(isoPeriodStart("minute", at("2026-01-01T10:45:31Z"), "Asia/Kolkata")).toBe("2026-01-01T10:45:00.000Z");
  });

  it("is stable inside a period and moves exactly at the boundary (cached path)", () => {
    const start = at("2026-03-31T22:00:00Z");
    for (let t = start; t < start + 30 * 86_400_000; t += 3_600_000 * 7) {
      expect(periodStart("month", t, "Europe/Berlin")).toBe(start);
    }
    expect(periodStart("month", start - 1, "Europe/Berlin")).toBe(at("2026-02-28T23:00:00Z"));
    expect(periodStart("month", at("2026-04-30T22:00:00Z"), "Europe/Berlin")).toBe(at("2026-04-30T22:00:00Z"));
  });

  it("treats an unknown zone as UTC", () => {
    expect(isValidTimeZone("Not/AZone")).toBe(false);
    expect(isValidTimeZone("Europe/Berlin")).toBe(true);
    expect(isoPeriodStart("month", at("2026-05-14T13:00:00Z"), "Not/AZone")).toBe("2026-05-01T00:00:00.000Z");
  });
});
