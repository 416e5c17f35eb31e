/**
 * The editable draft of an organization's configuration: one validated document per organization. Every edit
 * re-validates the whole document and writes it with a revision check, so concurrent edits cannot silently
 * overwrite each other and the stored draft is always a valid document.
 */
import { ConfigDocument, jsonValueProblem } from "../../schema/config";
import { ApiError, validationError } from "../errors";
import { newId, nowIso } from "../lib/ids";
import { isRecord, utf8ByteLength } from "../lib/json";

export interface Draft {
  document: ConfigDocument;
  revision: number;
  updatedAt: string;
  /** The document exactly as stored: what a version validates (a draft from older rules is loosened for readers). */
  stored?: unknown;
  /** False for a draft saved under older rules that fails today's: readable and replaceable, not editable piecemeal. */
  valid?: boolean;
}

export async function getDraft(db: D1Database, organizationId: string): Promise<Draft> {
  const row = await db
    .prepare("SELECT document, revision, updated_at FROM drafts WHERE organization_id = ?")
    .bind(organizationId)
    .first<{ document: string; revision: number; updated_at: string }>();
  if (!row) throw new ApiError("organization_not_found", "Organization not found");
  const stored = JSON.parse(row.document) as unknown;
  const parsed = ConfigDocument.safeParse(stored);
  // A draft saved under older, looser rules may fail today's: it is still served as stored (so it can be read,
  // exported and replaced), and every edit or version re-validates it and names what must change.
  if (!parsed.success) console.warn(JSON.stringify({ event: "draft_fails_current_schema", organizationId, issues: parsed.error.issues.length }));
  return { document: parsed.success ? parsed.data : looseDocument(stored), revision: row.revision, updatedAt: row.updated_at, stored, valid: parsed.success };
}

const SECTIONS = ["features", "plans", "surfaces", "authMethods", "workflows", "triggers", "offers", "offerGroups"] as const;

/**
 * A stored document for readers: every top-level section an object of objects, and any entry that is not plain JSON
 * of bounded depth (a schema nested thousands of levels, say) replaced by `{}` — readers serialize and diff it.
 */
function looseDocument(stored: unknown): ConfigDocument {
  const document: Record<string, unknown> = isRecord(stored) ? { ...stored } : {};
  for (const section of SECTIONS) {
    const entries = isRecord(document[section]) ? (document[section] as Record<string, unknown>) : {};
    document[section] = Object.fromEntries(
      Object.entries(entries)
        .filter(([, entry]) => isRecord(entry))
        .map(([slug, entry]) => [slug, jsonValueProblem(entry) ? {} : entry]),
    );
  }
  if (jsonValueProblem(document.settings)) document.settings = {};
  return document as unknown as ConfigDocument;
}

/** Validates `input` as a whole document; on failure the error lists every path (prefixed as given). */
export function validateDocument(input: unknown, prefix: readonly PropertyKey[] = []): ConfigDocument {
  const result = ConfigDocument.safeParse(input);
  if (!result.success) throw validationError(result.error, prefix);
  return result.data;
}

/**
 * Gives every feature a stable id: the id it already had under the same slug in `previous`, else a new one.
 * Applying a document that omits ids therefore never moves a feature's counters.
 */
export function ensureFeatureIds(document: ConfigDocument, previous?: ConfigDocument): ConfigDocument {
  const features: ConfigDocument["features"] = {};
  for (const [slug, feature] of Object.entries(document.features)) {
    features[slug] = { ...feature, id: feature.id ?? previous?.features[slug]?.id ?? newId("feat") };
  }
  return { ...document, features };
}

/**
 * Bounds a draft however it grows (whole documents or collection edits): D1 rows hold at most 2 MB, and a version
 * stores the document beside its compiled snapshot.
 */
export const MAX_DRAFT_BYTES = 1024 * 1024;

/** Replaces the draft if it is still at `expectedRevision`; returns the new revision. */
/** The document as it would be stored; 413 past MAX_DRAFT_BYTES (also what a dry run checks). */
export function serializeDraft(document: ConfigDocument): string {
  const serialized = JSON.stringify(document);
  const bytes = utf8ByteLength(serialized);
  if (bytes > MAX_DRAFT_BYTES) {
    throw new ApiError("payload_too_large", `The configuration would be ${bytes} bytes; documents are limited to ${MAX_DRAFT_BYTES} bytes`);
  }
  return serialized;
}

export async function saveDraft(db: D1Database, organizationId: string, document: ConfigDocument, expectedRevision: number): Promise<Draft> {
  const serialized = serializeDraft(document);
  const updatedAt = nowIso();
  const result = await db
    .prepare("UPDATE drafts SET document = ?, revision = revision + 1, updated_at = ? WHERE organization_id = ? AND revision = ?")
    .bind(serialized, updatedAt, organizationId, expectedRevision)
    .run();
  if (result.meta.changes !== 1) {
    throw new ApiError("conflict", "The draft was changed by another request; read it again and retry");
  }
  return { document, revision: expectedRevision + 1, updatedAt };
}

/**
 * Reads the draft, applies `edit`, validates the result and saves it. A lost race is retried a few times, since an
 * edit is a pure function of the draft it read.
 */
export async function editDraft(db: D1Database, organizationId: string, edit: (document: ConfigDocument) => unknown): Promise<Draft> {
  for (let attempt = 0; ; attempt++) {
    const draft = await getDraft(db, organizationId);
    if (draft.valid === false) {
      throw new ApiError(
        "conflict",
        "The draft was saved under older rules and fails today's: replace it with PUT /api/v1/admin/config (creating a version lists what must change)",
      );
    }
    const next = ensureFeatureIds(validateDocument(edit(structuredClone(draft.document))), draft.document);
    try {
      return await saveDraft(db, organizationId, next, draft.revision);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "conflict") || attempt >= 3) throw error;
    }
  }
}
