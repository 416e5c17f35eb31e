/**
 * Stage 6: what the surface workflow asked of the HTTP response — a replacement (it has a `body`: answered instead of
 * the page) or a modification of the page's headers, cookies and status.
 */
import type { HttpModify, HttpReplace } from "@edge-monetization/client";

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === "string") : []);
/** Statuses whose responses carry no body. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const validStatus = (status: unknown): status is number => typeof status === "number" && Number.isInteger(status) && status >= 200 && status <= 599;

/** The replacement response, or null when `http` is not one. */
export function replacementResponse(http: unknown): Response | null {
  if (!isRecord(http) || typeof http.body !== "string") return null;
  const replace = http as unknown as HttpReplace;
  const status = validStatus(replace.status) ? replace.status : 200;
  const headers = new Headers();
  if (isRecord(replace.headers)) for (const [name, value] of Object.entries(replace.headers)) if (typeof value === "string") headers.set(name, value);
  for (const cookie of strings(replace.cookies)) headers.append("Set-Cookie", cookie);
  if (!headers.has("content-type")) headers.set("content-type", "text/html; charset=utf-8");
  return new Response(NULL_BODY_STATUSES.has(status) ? null : replace.body, {
    status,
    headers,
    ...(typeof replace.statusText === "string" ? { statusText: replace.statusText } : {}),
  });
}

/** The page's status and headers with a modification applied (the body is the caller's: null when the status allows none). */
export function modifiedResponseInit(http: unknown, init: { status: number; statusText: string; headers: Headers }): { status: number; statusText: string; headers: Headers; bodyAllowed: boolean } {
  const result = { ...init, bodyAllowed: !NULL_BODY_STATUSES.has(init.status) };
  if (!isRecord(http) || http.body !== undefined) return result;
  const modify = http as HttpModify;
  if (Array.isArray(modify.addHeaders)) {
    for (const header of modify.addHeaders) if (isRecord(header) && typeof header.name === "string" && typeof header.value === "string") result.headers.set(header.name, header.value);
  }
  for (const name of strings(modify.removeHeaders)) result.headers.delete(name);
  for (const cookie of strings(modify.addCookies)) result.headers.append("Set-Cookie", cookie);
  if (validStatus(modify.status)) {
    result.status = modify.status;
    result.bodyAllowed = !NULL_BODY_STATUSES.has(modify.status);
    if (typeof modify.statusText !== "string") result.statusText = "";
  }
  if (typeof modify.statusText === "string") result.statusText = modify.statusText;
  return result;
}
