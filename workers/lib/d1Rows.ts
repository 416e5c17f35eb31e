/** Statements shared by tables whose rows are inserted once and revoked, never updated otherwise (keys). */

export interface InsertStatements {
  /** Inserts the row. */
  statement: D1PreparedStatement;
  /** Inserts the same row only if the statement just before it in a batch changed exactly one row. */
  afterOneChange: D1PreparedStatement;
}

export function insertRowStatements(db: D1Database, table: string, row: Record<string, unknown>): InsertStatements {
  const columns = Object.keys(row);
  const values = Object.values(row);
  const placeholders = columns.map(() => "?").join(", ");
  const insert = `INSERT INTO ${table} (${columns.join(", ")})`;
  return {
    statement: db.prepare(`${insert} VALUES (${placeholders})`).bind(...values),
    afterOneChange: db.prepare(`${insert} SELECT ${placeholders} WHERE changes() = 1`).bind(...values),
  };
}

/**
 * Revokes row `id` of `table` and writes its replacement in one batch (one transaction), the replacement only if this
 * batch's revocation changed the row: of two concurrent replacements only one succeeds. False when the row was revoked
 * (or replaced) already.
 */
export async function revokeAndReplace(db: D1Database, table: string, id: string, revokedAt: string, replacement: InsertStatements): Promise<boolean> {
  const [, inserted] = await db.batch([
    db.prepare(`UPDATE ${table} SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`).bind(revokedAt, id),
    replacement.afterOneChange,
  ]);
  return inserted?.meta.changes === 1;
}
