/**
 * D1 reports a refused write only through its error message (SQLite's text, e.g. "D1_ERROR: UNIQUE constraint failed:
 * versions.organization_id, versions.number: SQLITE_CONSTRAINT"). This is the one place that reads that text.
 */

function messagesOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // A layer that wraps the driver's error keeps its text in the cause.
  return error.cause instanceof Error ? `${error.message}\n${error.cause.message}` : error.message;
}

/** A UNIQUE or PRIMARY KEY constraint refused the write: the row exists already (often a lost race). */
export function isUniqueConstraintError(error: unknown): boolean {
  return /UNIQUE constraint failed/i.test(messagesOf(error));
}

/** A FOREIGN KEY constraint refused the write: a row it refers to does not exist (or was deleted meanwhile). */
export function isForeignKeyError(error: unknown): boolean {
  return /FOREIGN KEY constraint failed/i.test(messagesOf(error));
}
