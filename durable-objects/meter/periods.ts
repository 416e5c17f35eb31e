/**
 * Calendar periods for meters, aligned to boundaries in an IANA time zone (UTC by default). Pure functions.
 * `periodStart` returns the UTC instant (ms) at which the period containing `nowMs` began in that zone; weeks start
 * on Monday (ISO 8601); `lifetime` starts at the epoch.
 */
import type { Period } from "../../schema/config";

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, format);
  }
  return format;
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

function localTime(instant: number, timeZone: string): LocalTime {
  const parts: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(instant)) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour! % 24, minute: parts.minute! };
}

/** Offset of the zone from UTC at `instant`, in ms (local = utc + offset). */
function offsetAt(instant: number, timeZone: string): number {
  const local = localTime(instant, timeZone);
  const seconds = Math.floor(instant / 1000) % 60;
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, seconds < 0 ? seconds + 60 : seconds);
  return asUtc - (instant - (instant % 1000));
}

/** The UTC instant of a local wall-clock time; in a DST gap it resolves to the instant just after the gap. */
function fromLocal(fields: LocalTime, timeZone: string): number {
  const wall = Date.UTC(fields.year, fields.month - 1, fields.day, fields.hour, fields.minute);
  let guess = wall - offsetAt(wall, timeZone);
  guess = wall - offsetAt(guess, timeZone);
  return guess;
}

export function periodStart(period: Period, nowMs: number, timeZone = "UTC"): number {
  if (period === "lifetime") return 0;
  if (period === "minute") return Math.floor(nowMs / 60_000) * 60_000;
  if (timeZone === "UTC") {
    const now = new Date(nowMs);
    const y = now.getUTCFullYear();
    const m = now.getUTCMonth();
    const d = now.getUTCDate();
    switch (period) {
      case "hour":
        return Math.floor(nowMs / 3_600_000) * 3_600_000;
      case "day":
        return Date.UTC(y, m, d);
      case "week":
        return Date.UTC(y, m, d - ((now.getUTCDay() + 6) % 7));
      case "month":
        return Date.UTC(y, m, 1);
      case "year":
        return Date.UTC(y, 0, 1);
    }
  }
  const local = localTime(nowMs, timeZone);
  switch (period) {
    case "hour":
      return fromLocal({ ...local, minute: 0 }, timeZone);
    case "day":
      return fromLocal({ ...local, hour: 0, minute: 0 }, timeZone);
    case "week": {
      const weekday = new Date(Date.UTC(local.year, local.month - 1, local.day)).getUTCDay();
      const monday = new Date(Date.UTC(local.year, local.month - 1, local.day - ((weekday + 6) % 7)));
      return fromLocal({ year: monday.getUTCFullYear(), month: monday.getUTCMonth() + 1, day: monday.getUTCDate(), hour: 0, minute: 0 }, timeZone);
    }
    case "month":
      return fromLocal({ year: local.year, month: local.month, day: 1, hour: 0, minute: 0 }, timeZone);
    case "year":
      return fromLocal({ year: local.year, month: 1, day: 1, hour: 0, minute: 0 }, timeZone);
  }
}

export const isoPeriodStart = (period: Period, nowMs: number, timeZone?: string): string => new Date(periodStart(period, nowMs, timeZone)).toISOString();
