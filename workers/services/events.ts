/**
 * Decision records and audit entries. Written after the response (ctx.waitUntil); queried by the admin API.
 */
import { newId, nowIso } from "../lib/ids";

export type EventKind = "access_check" | "surface_decision" | "counter_update" | "admin";

export interface EventInput {
  id?: string;
  organizationId: string;
  environmentId: string;
  kind: EventKind;
  identifier?: string | null;
  surfaceSlug?: string | null;
  outcome?: string | null;
  record: Record<string, unknown>;
}

export interface StoredEvent {
  id: string;
  environmentId: string;
  kind: EventKind;
  createdAt: string;
  identifier: string | null;
  surfaceSlug: string | null;
  outcome: string | null;
  record: Record<string, unknown>;
}

export async function insertEvent(db: D1Database, event: EventInput): Promise<string> {
  const id = event.id ?? newId("evt");
  await db
    .prepare("INSERT INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(
      id,
      event.organizationId,
      event.environmentId,
      event.kind,
      nowIso(),
      event.identifier ?? null,
      event.surfaceSlug ?? null,
      event.outcome ?? null,
      JSON.stringify(event.record),
    )
    .run();
  return id;
}

export interface EventQuery {
  organizationId: string;
  environmentId?: string;
  kind?: EventKind;
  identifier?: string;
  surfaceSlug?: string;
  outcome?: string;
  from?: string;
  to?: string;
  /** Cursor: return events strictly older than this `createdAt|id`. */
  before?: string;
  limit: number;
}

export async function queryEvents(db: D1Database, query: EventQuery): Promise<{ events: StoredEvent[]; nextCursor: string | null }> {
  const where = ["organization_id = ?"];
  const params: unknown[] = [query.organizationId];
  const add = (clause: string, value: unknown) => {
    where.push(clause);
    params.push(value);
  };
  if (query.environmentId) add("environment_id = ?", query.environmentId);
  if (query.kind) add("kind = ?", query.kind);
  if (query.identifier) add("identifier = ?", query.identifier);
  if (query.surfaceSlug) add("surface_slug = ?", query.surfaceSlug);
  if (query.outcome) add("outcome = ?", query.outcome);
  if (query.from) add("created_at >= ?", query.from);
  if (query.to) add("created_at <= ?", query.to);
  if (query.before) {
    const [createdAt = "", id = ""] = query.before.split("|");
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    params.push(createdAt, createdAt, id);
  }
  const { results } = await db
    .prepare(`SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, query.limit + 1)
    .all<{ id: string; environment_id: string; kind: EventKind; created_at: string; identifier: string | null; surface_slug: string | null; outcome: string | null; record: string }>();
  const page = results.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    events: page.map((row) => ({
      id: row.id,
      environmentId: row.environment_id,
      kind: row.kind,
      createdAt: row.created_at,
      identifier: row.identifier,
      surfaceSlug: row.surface_slug,
      outcome: row.outcome,
      record: JSON.parse(row.record) as Record<string, unknown>,
    })),
    nextCursor: results.length > query.limit && last ? `${last.created_at}|${last.id}` : null,
  };
}
