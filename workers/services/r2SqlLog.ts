/**
 * Reading the decision log (services/decisionLog.ts) back for the console: R2 SQL over the Iceberg table the
 * DECISION_LOG pipeline writes (POST {apiBase}/accounts/{account}/r2-sql/query/{bucket}, `{warehouse, query}`, a bearer
 * token with R2 SQL Read and R2 Data Catalog Read). The same filters, order and cursor as D1's events query.
 *
 * Values reach the SQL as literals: the platform's own ids and instants are checked against strict patterns, and what
 * a console user typed (an identifier, a surface, an outcome) is quoted the SQL-standard way (a `'` doubled) after
 * anything but printable text is refused.
 */
import { ApiError } from "../errors";
import { olderThanCursorParts } from "../lib/keysetPage";
import type { EventKind, EventQuery, StoredEvent } from "./events";
import { unpackRecordText } from "./decisionLog";

export interface R2SqlSettings {
  /** `https://api.sql.cloudflarestorage.com/api/v1` in production; tests point it at a local fake. */
  apiBase: string;
  accountId: string;
  token: string;
  /** The R2 bucket holding the catalog, and the warehouse (`{accountId}_{bucket}`). */
  bucket: string;
  warehouse: string;
  /** `namespace.table` of the pipeline's sink. */
  table: string;
}

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,63}\.[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Printable text only: no control characters, no lone surrogates (what the SQL parser could read differently). */
const PRINTABLE = /^[^\p{Cc}\p{Cs}]*$/u;

function text(value: string): string {
  if (!PRINTABLE.test(value)) throw new ApiError("validation_failed", "A filter holds characters the event log cannot search for");
  return `'${value.replaceAll("'", "''")}'`;
}

function id(value: string): string {
  if (!ID.test(value)) throw new ApiError("validation_failed", "An id filter is not an id");
  return `'${value}'`;
}

/** An ISO-8601 instant as the log stores `created_at` (milliseconds, `Z`), or a 400. */
function instant(value: string): string {
  const parsed = Date.parse(value);
  if (!Number.isFinite(parsed)) throw new ApiError("validation_failed", "A time filter is not an ISO-8601 instant");
  const normalized = new Date(parsed).toISOString();
  if (!INSTANT.test(normalized)) throw new ApiError("validation_failed", "A time filter is out of range");
  return `'${normalized}'`;
}

/** The SQL of a page of the log (the query's `limit + 1` rows, so the caller knows whether a next page exists). */
/** Days the event list reads back from the log when the query names no `from`. */
export const DEFAULT_WINDOW_DAYS = 7;

export function logQuerySql(table: string, query: EventQuery, kinds: readonly EventKind[], now = Date.now()): string {
  if (!TABLE.test(table)) throw new ApiError("service_unavailable", "The decision log table is not a plain namespace.table name");
  const where = [`organization_id = ${id(query.organizationId)}`];
  if (query.environmentId) where.push(`environment_id = ${id(query.environmentId)}`);
  where.push(query.kind ? `kind = ${text(query.kind)}` : `kind IN (${kinds.map((kind) => `'${kind}'`).join(", ")})`);
  if (query.identifier) where.push(`identifier = ${text(query.identifier)}`);
  if (query.surfaceSlug) where.push(`surface_slug = ${text(query.surfaceSlug)}`);
  if (query.outcome) where.push(`outcome = ${text(query.outcome)}`);
  // The table is partitioned by day of ingestion, which is never before a record was made: a lower bound lets R2 SQL
  // skip older days' files (a minute of margin for clocks). Without `from`, the list reads the last
  // DEFAULT_WINDOW_DAYS — R2 SQL bills the bytes it scans, and a page of the newest records needs no more.
  // The window ends where the page does: at `to` or the cursor when they are older than now.
  const end = Math.min(now, query.to ? Date.parse(query.to) : now, query.before ? Date.parse(olderThanCursorParts(query.before).createdAt) || now : now);
  const from = query.from ?? new Date(end - DEFAULT_WINDOW_DAYS * 86_400_000).toISOString();
  if (query.from) where.push(`created_at >= ${instant(query.from)}`);
  where.push(`__ingest_ts >= ${instant(new Date(Date.parse(from) - 60_000).toISOString())}`);
  if (query.to) where.push(`created_at <= ${instant(query.to)}`);
  if (query.before) {
    const { createdAt, id: beforeId } = olderThanCursorParts(query.before);
    const at = instant(createdAt);
    where.push(`(created_at < ${at} OR (created_at = ${at} AND id < ${text(beforeId)}))`);
  }
  return `SELECT id, environment_id, kind, created_at, identifier, surface_slug, outcome, record FROM ${table} WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ${query.limit + 1}`;
}

interface LogRow {
  id: string;
  environment_id: string;
  kind: EventKind;
  created_at: string;
  identifier: string | null;
  surface_slug: string | null;
  outcome: string | null;
  record: string;
}

/** The log's rows of a query, newest first (at most `limit + 1`, as D1's events query reads them). */
export async function queryDecisionLog(settings: R2SqlSettings, query: EventQuery, kinds: readonly EventKind[]): Promise<StoredEvent[]> {
  const sql = logQuerySql(settings.table, query, kinds);
  let response: Response;
  try {
    response = await fetch(`${settings.apiBase.replace(/\/+$/, "")}/accounts/${encodeURIComponent(settings.accountId)}/r2-sql/query/${encodeURIComponent(settings.bucket)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${settings.token}`, "content-type": "application/json" },
      body: JSON.stringify({ warehouse: settings.warehouse, query: sql }),
      signal: AbortSignal.timeout(20_000),
    });
  } catch (error) {
    throw new ApiError("upstream_error", `The decision log (R2 SQL) could not be reached: ${String(error)}`);
  }
  const body = (await response.json().catch(() => null)) as { success?: boolean; result?: { rows?: unknown }; errors?: { message?: string }[] } | null;
  if (!response.ok || !body?.success || !Array.isArray(body.result?.rows)) {
    const message = body?.errors?.map((error) => error.message).join("; ") || `status ${response.status}`;
    throw new ApiError("upstream_error", `The decision log (R2 SQL) answered: ${message.slice(0, 300)}`);
  }
  return Promise.all(
    (body.result.rows as LogRow[]).map(async (row) => ({
      id: String(row.id),
      environmentId: String(row.environment_id),
      kind: row.kind,
      createdAt: isoOf(row.created_at),
      identifier: row.identifier ?? null,
      surfaceSlug: row.surface_slug ?? null,
      outcome: row.outcome ?? null,
      record: await parseRecord(row.record),
    })),
  );
}

/** The stream stores `created_at` as the ISO text it was sent; anything else means the table is not the one expected. */
function isoOf(value: unknown): string {
  const parsed = Date.parse(String(value));
  if (!Number.isFinite(parsed)) throw new ApiError("upstream_error", "The decision log (R2 SQL) answered a created_at that is not an ISO-8601 instant: is DECISION_LOG_TABLE the stream's table?");
  return new Date(parsed).toISOString();
}

async function parseRecord(logged: unknown): Promise<Record<string, unknown>> {
  try {
    const value = JSON.parse(await unpackRecordText(String(logged))) as unknown;
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { unreadable: true };
  }
}
