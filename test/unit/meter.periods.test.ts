import { describe, expect, it } from "vitest";
import { isoPeriodStart, periodStart } from "../../durable-objects/meter/periods";

const at = (iso: string) => Date.parse(iso);

describe("periodStart", () => {
  it("aligns to calendar boundaries in UTC", () => {
    const now = at("2026-11-25T15:42:17.123Z"); // a Wednesday
    expect(isoPeriodStart("lifetime", now)).toBe("1970-01-01T00:00:00.000Z");
    expect(isoPeriodStart("minute", now)).toBe("2026-11-25T15:42:00.000Z");
    expect(isoPeriodStart("hour", now)).toBe("2026-11-25T15:00:00.000Z");
    expect(isoPeriodStart("day", now)).toBe("2026-11-25T00:00:00.000Z");
    expect(isoPeriodStart("week", now)).toBe("2026-11-23T00:00:00.000Z");
    expect(isoPeriodStart("month", now)).toBe("2026-11-01T00:00:00.000Z");
    expect(isoPeriodStart("year", now)).toBe("2026-01-01T00:00:00.000Z");
  });

  it("starts ISO weeks on Monday, also across a year boundary", () => {
    expect(isoPeriodStart("week", at("2026-11-23T00:00:00Z"))).toBe("2026-11-23T00:00:00.000Z");
    expect(isoPeriodStart("week", at("2026-11-22T23:59:59Z"))).toBe("2026-11-16T00:00:00.000Z");
    expect(isoPeriodStart("week", at("2027-01-01T12:00:00Z"))).toBe("2026-12-28T00:00:00.000Z");
  });

  it("aligns to local midnight in a time zone, across daylight-saving changes", () => {
    // Berlin: CET (UTC+1) in winter, CEST (UTC+2) in summer; DST starts 2026-03-29.
    expect(isoPeriodStart("day", at("2026-01-15T12:00:00Z"), "Europe/Berlin")).toBe("2026-01-14T23:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-07-15T12:00:00Z"), "Europe/Berlin")).toBe("2026-07-14T22:00:00.000Z");
    expect(isoPeriodStart("day", at("2026-03-29T12:00:00Z"), "Europe/Berlin")).toBe("2026-03-28T23:00:00.000Z");
    expect(isoPeriodStart("month", at("2026-04-10T00:00:00Z"), "Europe/Berlin")).toBe("2026-03-31T22:00:00.000Z");
    // New York: the hour after the November fall-back still belongs to the same day.
    expect(isoPeriodStart("day", at("2026-11-01T07:30:00Z"), "America/New_York")).toBe("2026-11-01T04:00:00.000Z");
    expect(isoPeriodStart("hour", at("2026-11-25T15:42:00Z"), "Asia/Kolkata")).toBe("2026-11-25T15:30:00.000Z");
  });

  it("is stable: every instant of a period maps to the same start", () => {
    const start = periodStart("month", at("2026-02-10T00:00:00Z"), "America/New_York");
    for (const iso of ["2026-02-01T05:00:00Z", "2026-02-14T12:00:00Z", "2026-03-01T04:59:59Z"]) {
      expect(periodStart("month", at(iso), "America/New_York")).toBe(start);
    }
    expect(periodStart("month", at("2026-03-01T05:00:00Z"), "America/New_York")).not.toBe(start);
  });
});
