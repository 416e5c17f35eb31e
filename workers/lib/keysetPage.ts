/**
 * Keyset pagination over `(created_at, id)`, newest first — the events, dead letters and webhook deliveries lists. A
 * cursor is `createdAt|id` of the last row of the previous page: stable while rows are added, and no OFFSET scan.
 */

/** A cursor's two halves. */
export function olderThanCursorParts(cursor: string): { createdAt: string; id: string } {
  const [createdAt = "", id = ""] = cursor.split("|");
  return { createdAt, id };
}

/** The condition (and its parameters) for the rows strictly older than the cursor. */
export function olderThanCursor(cursor: string): { clause: string; params: string[] } {
  const { createdAt, id } = olderThanCursorParts(cursor);
  return { clause: "(created_at < ? OR (created_at = ? AND id < ?))", params: [createdAt, createdAt, id] };
}

/** A page of `limit` rows out of a query that asked for `limit + 1`, and the cursor of the next page (null: the last). */
export function keysetPage<Row extends { created_at: string; id: string }>(rows: Row[], limit: number): { page: Row[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextCursor: rows.length > limit && last ? `${last.created_at}|${last.id}` : null };
}
