/**
 * Dead letters: trigger messages whose action workflows still failed on the queue's last attempt, kept per environment
 * until an operator retries or deletes them (admin API). The queue consumer decides what a dead letter is and bounds
 * the message it hands over (workflows/actions.ts); this module only stores and reads them.
 */
import { keysetPage, olderThanCursor } from "../lib/keysetPage";
import { sha256Hex } from "../lib/crypto";
import { nowIso } from "../lib/ids";

export type DeadLetterState = "dead" | "retried";

export interface DeadLetterInput {
  organizationId: string;
  environmentId: string;
  /**
   * The queue message's id. The dead letter's id is derived from it, so writing the same message twice (a consumer
   * that stored it but died before its ack, then the dead-letter queue's consumer) keeps one dead letter.
   */
  queueMessageId: string;
  trigger: string;
  identifier: string | null;
  /** The trigger message as plain JSON, already bounded by the caller. */
  message: Record<string, unknown>;
  /** The payload could not be kept: the dead letter can be read but not retried. */
  messageTruncated: boolean;
  workflows: string[];
  lastError: string | null;
  attempts: number;
}

export interface DeadLetter extends DeadLetterSummary {
  message: Record<string, unknown>;
}

/** A dead letter as lists show it: without its message, which may be a queue message's size (up to 120 KB). */
export interface DeadLetterSummary {
  id: string;
  environmentId: string;
  trigger: string;
  identifier: string | null;
  messageTruncated: boolean;
  workflows: string[];
  lastError: string | null;
  attempts: number;
  state: DeadLetterState;
  createdAt: string;
  retriedAt: string | null;
}

/** Which environment a read or a change is about: another tenant's dead letter is never found. */
export interface DeadLetterScope {
  organizationId: string;
  environmentId: string;
}

/** Error text kept on a dead letter (and on the events of failed runs): enough to read, never a large row. */
export const MAX_ERROR_CHARS = 2_000;
/** Failing workflows named on one dead letter. */
const MAX_WORKFLOWS = 50;

/** `text` cut to `max` characters, marked when cut. */
export function boundedText(text: string, max = MAX_ERROR_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export async function deadLetterIdOf(environmentId: string, queueMessageId: string): Promise<string> {
  return `dlq_${(await sha256Hex(`${environmentId}:${queueMessageId}`)).slice(0, 24)}`;
}

/** Stores a dead letter; a second write of the same queue message is ignored. Returns the dead letter's id. */
export async function storeDeadLetter(db: D1Database, input: DeadLetterInput): Promise<string> {
  const id = await deadLetterIdOf(input.environmentId, input.queueMessageId);
  await db
    .prepare(
      `INSERT OR IGNORE INTO dead_letters (id, organization_id, environment_id, trigger_name, identifier, message, message_truncated, workflows, last_error, attempts, state, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'dead', ?)`,
    )
    .bind(
      id,
      input.organizationId,
      input.environmentId,
      input.trigger,
      input.identifier,
      JSON.stringify(input.message),
      input.messageTruncated ? 1 : 0,
      JSON.stringify(input.workflows.slice(0, MAX_WORKFLOWS)),
      input.lastError === null ? null : boundedText(input.lastError),
      input.attempts,
      nowIso(),
    )
    .run();
  return id;
}

interface DeadLetterRow extends SummaryRow {
  message: string;
}

interface SummaryRow {
  id: string;
  environment_id: string;
  trigger_name: string;
  identifier: string | null;
  message_truncated: number;
  workflows: string;
  last_error: string | null;
  attempts: number;
  state: DeadLetterState;
  created_at: string;
  retried_at: string | null;
}

const SUMMARY_COLUMNS = "id, environment_id, trigger_name, identifier, message_truncated, workflows, last_error, attempts, state, created_at, retried_at";

const fromRow = (row: DeadLetterRow): DeadLetter => ({ ...summaryOf(row), message: JSON.parse(row.message) as Record<string, unknown> });

const summaryOf = (row: SummaryRow): DeadLetterSummary => ({
  id: row.id,
  environmentId: row.environment_id,
  trigger: row.trigger_name,
  identifier: row.identifier,
  messageTruncated: row.message_truncated === 1,
  workflows: JSON.parse(row.workflows) as string[],
  lastError: row.last_error,
  attempts: row.attempts,
  state: row.state,
  createdAt: row.created_at,
  retriedAt: row.retried_at,
});

export interface DeadLetterQuery extends DeadLetterScope {
  state?: DeadLetterState;
  /** Cursor: dead letters strictly older than this `createdAt|id`. */
  before?: string;
  limit: number;
}

/** A page of an environment's dead letters, newest first (paginated like the events), without their messages. */
export async function listDeadLetters(db: D1Database, query: DeadLetterQuery): Promise<{ deadLetters: DeadLetterSummary[]; nextCursor: string | null }> {
  const where = ["organization_id = ?", "environment_id = ?"];
  const params: unknown[] = [query.organizationId, query.environmentId];
  if (query.state) {
    where.push("state = ?");
    params.push(query.state);
  }
  if (query.before) {
    const older = olderThanCursor(query.before);
    where.push(older.clause);
    params.push(...older.params);
  }
  const { results } = await db
    .prepare(`SELECT ${SUMMARY_COLUMNS} FROM dead_letters WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, query.limit + 1)
    .all<SummaryRow>();
  const { page, nextCursor } = keysetPage(results, query.limit);
  return { deadLetters: page.map(summaryOf), nextCursor };
}

export async function getDeadLetter(db: D1Database, scope: DeadLetterScope, id: string): Promise<DeadLetter | null> {
  const row = await db
    .prepare("SELECT * FROM dead_letters WHERE id = ? AND organization_id = ? AND environment_id = ?")
    .bind(id, scope.organizationId, scope.environmentId)
    .first<DeadLetterRow>();
  return row ? fromRow(row) : null;
}

/**
 * Marks a dead letter retried, if it still is `dead`: the one conditional write that lets only one of two concurrent
 * retries send the message again. Null when it is not there or was retried already.
 */
export async function markDeadLetterRetried(db: D1Database, scope: DeadLetterScope, id: string): Promise<DeadLetter | null> {
  const row = await db
    .prepare("UPDATE dead_letters SET state = 'retried', retried_at = ? WHERE id = ? AND organization_id = ? AND environment_id = ? AND state = 'dead' RETURNING *")
    .bind(nowIso(), id, scope.organizationId, scope.environmentId)
    .first<DeadLetterRow>();
  return row ? fromRow(row) : null;
}

/** Undoes markDeadLetterRetried when the message could not be sent after all. */
export async function unmarkDeadLetterRetried(db: D1Database, scope: DeadLetterScope, id: string): Promise<void> {
  await db
    .prepare("UPDATE dead_letters SET state = 'dead', retried_at = NULL WHERE id = ? AND organization_id = ? AND environment_id = ? AND state = 'retried'")
    .bind(id, scope.organizationId, scope.environmentId)
    .run();
}

/** Deletes a dead letter; false when there was none. */
export async function deleteDeadLetter(db: D1Database, scope: DeadLetterScope, id: string): Promise<boolean> {
  const result = await db
    .prepare("DELETE FROM dead_letters WHERE id = ? AND organization_id = ? AND environment_id = ?")
    .bind(id, scope.organizationId, scope.environmentId)
    .run();
  return result.meta.changes > 0;
}
