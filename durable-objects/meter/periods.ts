/**
 * Calendar periods for meters, aligned to boundaries in an IANA time zone (UTC by default). Pure functions.
 *
 * `periodStart(period, nowMs, timeZone)` returns the UTC instant (ms) at which the period containing `nowMs` began in
 * that zone:
 * - `lifetime` starts at the epoch (0 → "1970-01-01T00:00:00.000Z");
 * - `minute` is the UTC minute (every current zone offset is a whole number of minutes);
 * - `hour`, `day`, `week` (ISO 8601: Monday 00:00), `month`, `year` start at local wall-clock boundaries.
 *
 * DST: when a boundary falls in a gap (e.g. a zone whose clocks jump from 00:00 to 01:00), the period starts at the
 * first instant after the gap; when a day/week/month/year boundary is repeated (fall back), the first occurrence
 * counts; a repeated local hour is two separate hour periods.
 * An unknown time zone is treated as UTC (the config layer validates zones; metering must not fail on one).
 */
import { LRUCache } from "lru-cache";
import type { Period } from "../../schema/config";

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Per zone: its formatter, or null for a zone that is UTC or unknown (wrapped: lru-cache holds no null values). */
const formatters = new LRUCache<string, { format: Intl.DateTimeFormat | null }>({ max: 500 });

function formatter(timeZone: string): Intl.DateTimeFormat | null {
  const cached = formatters.get(timeZone);
  if (cached) return cached.format;
  let format: Intl.DateTimeFormat | null;
  try {
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
    // A zone that resolves to UTC gets the arithmetic fast path.
    if (format.resolvedOptions().timeZone === "UTC") format = null;
  } catch {
    format = null;
  }
  formatters.set(timeZone, { format });
  return format;
}

/** True when `timeZone` is an IANA zone this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return true;
  } catch {
    return false;
  }
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function localTime(instant: number, format: Intl.DateTimeFormat): LocalTime {
  const fields: LocalTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of format.formatToParts(instant)) {
    if (part.type in fields) fields[part.type as keyof LocalTime] = Number(part.value);
  }
  fields.hour %= 24;
  return fields;
}

/** Offset of the zone from UTC at `instant`, in ms (local wall clock = instant + offset). */
function offsetAt(instant: number, format: Intl.DateTimeFormat): number {
  const local = localTime(instant, format);
  const wall = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  return wall - Math.floor(instant / 1000) * 1000;
}

/** Every instant whose local wall-clock time is `wall` (encoded as a UTC timestamp); empty in a DST gap. */
function instantsOf(wall: number, format: Intl.DateTimeFormat): { valid: number[]; afterGap: number } {
  const offsets = new Set([offsetAt(wall - DAY_MS, format), offsetAt(wall, format), offsetAt(wall + DAY_MS, format)]);
  const valid: number[] = [];
  let afterGap = -Infinity;
  for (const offset of offsets) {
    const candidate = wall - offset;
    if (candidate + offsetAt(candidate, format) === wall) valid.push(candidate);
    afterGap = Math.max(afterGap, candidate);
  }
  valid.sort((a, b) => a - b);
  return { valid, afterGap };
}

function utcStart(period: Exclude<Period, "lifetime" | "minute">, nowMs: number): number {
  const now = new Date(nowMs);
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const d = now.getUTCDate();
  switch (period) {
    case "hour":
      return Math.floor(nowMs / HOUR_MS) * HOUR_MS;
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

function zonedStart(period: Exclude<Period, "lifetime" | "minute">, nowMs: number, format: Intl.DateTimeFormat): number {
  const local = localTime(nowMs, format);
  let wall: number;
  switch (period) {
    case "hour":
      wall = Date.UTC(local.year, local.month - 1, local.day, local.hour);
      break;
    case "day":
      wall = Date.UTC(local.year, local.month - 1, local.day);
      break;
    case "week": {
      const weekday = new Date(Date.UTC(local.year, local.month - 1, local.day)).getUTCDay();
      wall = Date.UTC(local.year, local.month - 1, local.day - ((weekday + 6) % 7));
      break;
    }
    case "month":
      wall = Date.UTC(local.year, local.month - 1, 1);
      break;
    case "year":
      wall = Date.UTC(local.year, 0, 1);
      break;
  }
  const { valid, afterGap } = instantsOf(wall, format);
  if (valid.length === 0) return afterGap;
  if (period === "hour") {
    // A repeated local hour (fall back) is two periods: take the latest occurrence that has begun.
    for (let i = valid.length - 1; i >= 0; i--) if (valid[i]! <= nowMs) return valid[i]!;
  }
  return valid[0]!;
}

/** How far past a period's start its successor has certainly begun (periods vary with DST and month length). */
const NEXT_STEP_MS: Record<Exclude<Period, "lifetime" | "minute">, number> = {
  hour: HOUR_MS * 1.5,
  day: HOUR_MS * 26,
  week: DAY_MS * 7 + HOUR_MS * 2,
  month: DAY_MS * 32,
  year: DAY_MS * 367,
};

/** Last computed zoned period per (period, zone): `[start, end)`, so the hot path rarely formats dates. */
const zonedCache = new LRUCache<string, { start: number; end: number }>({ max: 1_000 });

export function periodStart(period: Period, nowMs: number, timeZone = "UTC"): number {
  if (period === "lifetime") return 0;
  if (period === "minute") return Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
  const format = timeZone === "UTC" ? null : formatter(timeZone);
  if (format === null) return utcStart(period, nowMs);
  const key = `${period}|${timeZone}`;
  const cached = zonedCache.get(key);
  if (cached && cached.start <= nowMs && nowMs < cached.end) return cached.start;
  const start = zonedStart(period, nowMs, format);
  const end = zonedStart(period, start + NEXT_STEP_MS[period], format);
  if (start <= nowMs && nowMs < end) zonedCache.set(key, { start, end });
  return start;
}

export const isoPeriodStart = (period: Period, nowMs: number, timeZone?: string): string =>
  new Date(periodStart(period, nowMs, timeZone)).toISOString();
