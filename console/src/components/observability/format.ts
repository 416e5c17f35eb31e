/** Small formatting helpers shared by the events, tail and metrics screens. */

export type Json = Record<string, unknown>;
export const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
export const records = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isRecord) : []);

/** "14:03:07" today, "Nov 24 14:03" otherwise: the tail and the explorer show recent things. */
export function shortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString(undefined, { hour12: false })
    : date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

/** A datetime-local input's value (local time) as ISO-8601 UTC, or undefined when empty or invalid. */
export function isoFromLocal(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

export function denialText(denial: Json): string {
  return `${String(denial.featureSlug ?? "?")}.${String(denial.property ?? "?")}: ${String(denial.reason ?? "?")}`;
}
