/**
 * The workflow stages of a decision: middleware → provisioning → feature → surface → components.
 * Each stage runs only the workflows configured for it, independent ones concurrently, each under its deadline.
 * A failure degrades to the stage's fallback (no plans added, base properties kept, empty behaviour) and is
 * recorded; a workflow marked `required` fails the request with 531 instead.
 */
import type { SnapshotWorkflow } from "../engine/snapshot";
import type { BotTag } from "../engine/types";
import { ApiError } from "../errors";
import type { ComponentBehavior, FeatureResult, HttpModify, HttpReplace, JsonValue, MiddlewareResult, ProvisioningResult, RedemptionResult, SurfaceBehavior } from "./authorTypes";
import { DEFAULT_DEADLINE_MS, type WorkflowOutcome, type WorkflowRunner } from "./runner";
import { isRecord, NotPlainJsonError, toPlainJson } from "../lib/json";

/** What a synchronous workflow may return: plain JSON of at most this size (anything else falls back). */
export const MAX_WORKFLOW_RESULT_BYTES = 256 * 1024;

export interface WorkflowRecord {
  slug: string;
  type: SnapshotWorkflow["type"];
  ok: boolean;
  durationMs: number;
  error?: string;
  kind?: string;
}

/**
 * A `required` workflow failed: the request answers 531. It carries the runs so far, so the caller can record the
 * failed decision; its message holds the customer's error text, which only secret-key callers may see.
 */
export class RequiredWorkflowError extends ApiError {
  constructor(
    readonly slug: string,
    readonly reason: string,
    readonly records: WorkflowRecord[],
  ) {
    super("workflow_error", `Workflow ${slug} failed: ${reason}`);
  }
}

export class WorkflowStages {
  readonly records: WorkflowRecord[] = [];

  constructor(
    private readonly runner: WorkflowRunner,
    private readonly utils: object,
  ) {}

  /** Runs one workflow and validates its result; undefined means "use the fallback". */
  async run<T>(workflow: SnapshotWorkflow, args: Record<string, unknown>, validate: (value: unknown) => T | undefined): Promise<T | undefined> {
    const outcome: WorkflowOutcome = await this.runner.run({ workflow, args, utils: this.utils, deadlineMs: workflow.deadlineMs ?? DEFAULT_DEADLINE_MS });
    let failure: { kind: string; error: string } | undefined;
    let value: T | undefined;
    if (outcome.ok) {
      const plain = plainResult(outcome.value);
      if (plain instanceof NotPlainJsonError) failure = { kind: "bad_result", error: `a ${workflow.type} workflow must return plain JSON: ${plain.message}` };
      else {
        value = validate(plain);
        if (value === undefined) failure = { kind: "bad_result", error: `unexpected result from a ${workflow.type} workflow: ${preview(plain)}` };
      }
    } else failure = { kind: outcome.kind, error: outcome.error };
    this.records.push({
      slug: workflow.slug,
      type: workflow.type,
      ok: !failure,
      durationMs: Math.round(outcome.durationMs * 100) / 100,
      ...(failure ? { error: failure.error, kind: failure.kind } : {}),
    });
    if (failure && workflow.required) throw new RequiredWorkflowError(workflow.slug, failure.error, [...this.records]);
    return value;
  }

  get failures(): WorkflowRecord[] {
    return this.records.filter((record) => !record.ok);
  }
}

/** The result as a fresh plain-JSON copy (the only form the platform passes on), or why it is not one. */
function plainResult(value: unknown): unknown {
  try {
    return toPlainJson(value, { maxBytes: MAX_WORKFLOW_RESULT_BYTES });
  } catch (error) {
    return error instanceof NotPlainJsonError ? error : new NotPlainJsonError(error instanceof Error ? error.message : String(error));
  }
}

function preview(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return String(value);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Result validators: the contract of each workflow type. They return the result types workflow authors are given
// (authorTypes.ts), checking their outer shape; nested values are trusted as the structured clones they arrived as.

export type { ComponentBehavior, MiddlewareResult, SurfaceBehavior };

export function validateMiddleware(value: unknown): MiddlewareResult | undefined {
  if (value === null) return {};
  if (!isRecord(value)) return undefined;
  const out: MiddlewareResult = {};
  if (value.identifier !== undefined) {
    if (typeof value.identifier !== "string" || !value.identifier || value.identifier.length > 512) return undefined;
    out.identifier = value.identifier;
  }
  if (value.fail !== undefined) {
    const fail = value.fail;
    if (!isRecord(fail) || typeof fail.status !== "number" || fail.status < 400 || fail.status > 499 || typeof fail.message !== "string") return undefined;
    out.fail = { status: fail.status, message: fail.message.slice(0, 500) };
  }
  if (value.properties !== undefined) {
    if (!isRecord(value.properties)) return undefined;
    out.properties = value.properties as Record<string, JsonValue>;
  }
  if (value.bot !== undefined) {
    const bot = value.bot;
    if (!isRecord(bot) || typeof bot.category !== "string" || typeof bot.code !== "string") return undefined;
    out.bot = {
      category: bot.category as BotTag["category"],
      code: bot.code,
      isVerified: bot.isVerified === true,
      operator: typeof bot.operator === "string" ? bot.operator : "",
      product: typeof bot.product === "string" ? bot.product : "",
    };
  }
  return out;
}

export function validatePlanSlugs(value: unknown): ProvisioningResult | undefined {
  if (value === null) return [];
  if (!Array.isArray(value) || value.length > 100 || !value.every((slug) => typeof slug === "string")) return undefined;
  return value as string[];
}

/** A feature workflow returns property overrides: `{ [propertySlug]: value }`. Types are checked by the caller. */
export function validatePropertyOverrides(value: unknown): FeatureResult | undefined {
  if (value === null) return {};
  return isRecord(value) ? (value as FeatureResult) : undefined;
}

export function validateSurfaceBehavior(value: unknown): SurfaceBehavior | undefined {
  if (value === null) return {};
  if (!isRecord(value)) return undefined;
  if (value.properties !== undefined && !isRecord(value.properties)) return undefined;
  const http = value.http === undefined ? undefined : validHttp(value.http);
  if (value.http !== undefined && !http) return undefined;
  const out: SurfaceBehavior = {};
  if (value.properties !== undefined) out.properties = value.properties as Record<string, JsonValue>;
  if (http) out.http = http;
  if (value.content !== undefined) out.content = value.content as JsonValue;
  return out;
}

export function validateComponentBehavior(value: unknown): ComponentBehavior | undefined {
  if (value === null) return {};
  if (!isRecord(value)) return undefined;
  if (value.properties !== undefined && !isRecord(value.properties)) return undefined;
  const out: ComponentBehavior = {};
  if (value.properties !== undefined) out.properties = value.properties as Record<string, JsonValue>;
  if (value.content !== undefined) out.content = value.content as JsonValue;
  return out;
}

/**
 * A redemption workflow returns `{ result? }` (nothing counts as `{}`), or `{ fail: { message } }` to refuse the
 * redemption; anything else is a bad result, which refuses it too.
 */
export function validateRedemptionResult(value: unknown): RedemptionResult | undefined {
  if (value === null) return {};
  if (!isRecord(value)) return undefined;
  if (value.fail !== undefined) {
    const fail = value.fail;
    if (!isRecord(fail) || typeof fail.message !== "string" || Object.keys(value).length !== 1) return undefined;
    return { fail: { message: fail.message.slice(0, 500) } };
  }
  if (Object.keys(value).some((key) => key !== "result")) return undefined;
  return value.result === undefined ? {} : { result: value.result as JsonValue };
}

const isStatus = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 100 && (value as number) <= 599;
const isText = (value: unknown, max = 8192): value is string => typeof value === "string" && value.length <= max;
const isTextList = (value: unknown): value is string[] => Array.isArray(value) && value.length <= 100 && value.every((item) => isText(item));
const isHeaderRecord = (value: unknown): value is Record<string, string> =>
  isRecord(value) && Object.keys(value).length <= 100 && Object.entries(value).every(([name, text]) => isText(name, 256) && isText(text));

/**
 * A surface's `http`, as the edge proxy will apply it: a replacement (`body` set: an integer `status` 100–599, string
 * headers, cookies and body) or a modification (headers to add or remove, cookies, an optional status). Anything else
 * is refused, so a client never receives a status of "teapot" or a header that is not text.
 */
function validHttp(value: unknown): HttpReplace | HttpModify | undefined {
  if (!isRecord(value)) return undefined;
  if (value.statusText !== undefined && !isText(value.statusText, 512)) return undefined;
  if (value.body !== undefined) {
    if (!isStatus(value.status) || !isText(value.body, MAX_WORKFLOW_RESULT_BYTES)) return undefined;
    if (value.headers !== undefined && !isHeaderRecord(value.headers)) return undefined;
    if (value.cookies !== undefined && !isTextList(value.cookies)) return undefined;
    return value as unknown as HttpReplace;
  }
  if (value.status !== undefined && !isStatus(value.status)) return undefined;
  if (value.removeHeaders !== undefined && !isTextList(value.removeHeaders)) return undefined;
  if (value.addCookies !== undefined && !isTextList(value.addCookies)) return undefined;
  if (value.addHeaders !== undefined) {
    const headers = value.addHeaders;
    if (!Array.isArray(headers) || headers.length > 100 || !headers.every((header) => isRecord(header) && isText(header.name, 256) && isText(header.value))) return undefined;
  }
  return value as unknown as HttpModify;
}
