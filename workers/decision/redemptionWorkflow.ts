/**
 * Custom redemptions: an offer whose method is `workflow` runs its redemption workflow with the client's input.
 *
 * Never half a redemption: what the workflow writes through utils (custom data, triggers) is staged while it runs and
 * applied only once it succeeded — the custom data in one meter-object call that applies all of it or nothing, the
 * triggers enqueued after. A workflow that throws, times out, returns something else than its contract or refuses
 * (`{fail}`) leaves nothing behind. The apply is a compare-and-set on every key the workflow read: when another
 * request changed one meanwhile (two claims of a "claim once" gift), nothing is applied and the outcome is a
 * `conflict` the client may retry. The apply happens once per token (its id is recorded with the writes): a retry of
 * a token whose writes were applied but whose answer was lost runs the workflow again, applies nothing and answers
 * that second run's outcome.
 */
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { SnapshotOffer, SnapshotWorkflow } from "../engine/snapshot";
import { jsonValueProblem, MAX_JSON_DEPTH } from "../../schema/config";
import { ApiError, formatPath } from "../errors";
import { schemaValidator } from "../lib/schemaValidators";
import type { JsonValue, RedemptionArgs } from "../workflows/authorTypes";
import { scopedUtils, StagedWrites } from "../workflows/scopedUtils";
import { RequiredWorkflowError, validateRedemptionResult, WorkflowStages } from "../workflows/stages";
import { meterKeyOf } from "./meterCall";
import type { CallerScope, Configured, Identified } from "./context";
import type { Services } from "./services";
import { workflowContext, workflowIdentity } from "./workflowArgs";
import type { PendingTrigger } from "./workflowSession";

/**
 * Why a redemption workflow's redemption did not happen, beyond the workflow's own failures (`threw`, `timeout`,
 * `bad_result`, … as its run record says): `refused` — it answered `{fail}`; `conflict` — a value it read changed
 * before its writes could be applied; `unavailable` — the user's data could not be reached to apply them.
 */
export const REDEMPTION_REFUSED = "refused";
export const REDEMPTION_CONFLICT = "conflict";
export const REDEMPTION_UNAVAILABLE = "unavailable";
/** The platform could not run the workflow: its environment's settings (D1) or the workflow runtime were unreachable. */
const SETTINGS_UNAVAILABLE = "settings_unavailable";
const RUNTIME_UNAVAILABLE = "runtime_unavailable";

/** Retry-After 1: a dependency of the platform failed for this request; the same token may be tried again at once. */
function retryShortly(error: ApiError): ApiError {
  error.retryAfterSeconds = 1;
  return error;
}

/** A trigger the workflow fired that the queue did not take (the redemption stands: its writes are applied). */
export interface UnsentRedemptionTrigger {
  trigger: string;
  reason: string;
}

export type RedemptionWorkflowOutcome =
  | { ok: true; result: JsonValue; unsentTriggers?: UnsentRedemptionTrigger[] }
  | { ok: false; kind: string; reason: string };

/** The error answer of a failed redemption outcome (what POST /api/v1/offer-redemptions throws). */
export function redemptionWorkflowError(offerSlug: string, failure: { kind: string; reason: string }): ApiError {
  switch (failure.kind) {
    // Customer code answered, not a dependency: a deliberate refusal is the workflow's 403.
    case REDEMPTION_REFUSED:
      return new ApiError("rejected_by_workflow", `The redemption of offer ${offerSlug} was refused: ${failure.reason}`);
    case REDEMPTION_CONFLICT:
      return new ApiError("conflict", `The data this redemption read changed meanwhile; try again (offer ${offerSlug}: ${failure.reason})`);
    case REDEMPTION_UNAVAILABLE:
      return retryShortly(
        new ApiError("meter_unavailable", `The user's data could not be reached while saving what offer ${offerSlug}'s workflow wrote: it may not have been applied; retry with the same token`),
      );
    // The platform's own dependencies (the environment's settings, the workflow runtime), not the customer's code.
    case SETTINGS_UNAVAILABLE:
    case RUNTIME_UNAVAILABLE:
      return retryShortly(new ApiError("service_unavailable", `The redemption workflow of offer ${offerSlug} could not run (${failure.kind}): ${failure.reason}; nothing was applied, retry with the same token`));
    // Any other failure (a throw, a timeout, a malformed result) is the 531 of failed customer code.
    default:
      return new ApiError("workflow_error", `The redemption workflow of offer ${offerSlug} failed (${failure.kind}): ${failure.reason}`);
  }
}

/**
 * How long a redemption workflow may take unless it sets `deadlineMs`: someone clicked "buy" and waits, and the
 * workflow may call the payment provider through utils — longer than a decision's 50 ms, shorter than an action's.
 */
export const DEFAULT_REDEMPTION_DEADLINE_MS = 2_000;


/**
 * The validator stops collecting here: an input with thousands of mismatches must not keep the shared isolate busy
 * reporting them (the answer names at most MAX_REPORTED_INPUT_ERRORS anyway).
 */
const MAX_COLLECTED_INPUT_ERRORS = 100;
const MAX_REPORTED_INPUT_ERRORS = 10;

/**
 * Validates `input` against the offer's schema (400 `validation_failed` when it does not match: nothing runs), then
 * runs the workflow. A failure is an outcome, never a throw (unless the workflow is `required`: 531).
 */
export async function runRedemptionWorkflow(
  services: Services,
  subject: CallerScope & Configured & Identified,
  offer: SnapshotOffer,
  claims: OfferTokenClaims,
  input: unknown,
): Promise<RedemptionWorkflowOutcome> {
  const redemption = offer.redemption;
  if (redemption.method !== "workflow") throw new ApiError("bad_request", `Offer ${offer.slug} is redeemed by ${redemption.method}, not by a workflow`);
  const { environment, prepared, store, identity, bot, facts } = subject;
  const value = checkRedemptionInput(offer, input);

  const workflow = prepared.snapshot.workflows.find((candidate) => candidate.slug === redemption.workflow && candidate.type === "redemption");
  if (!workflow) return failed(services, offer, redemption.workflow, { kind: "not_deployed", reason: `workflow ${redemption.workflow} is not a redemption workflow of the deployed version` });

  let settings;
  try {
    settings = await services.workflowEnvironment(environment.id);
  } catch (error) {
    services.logger.error("workflow_settings_unavailable", { environmentId: environment.id, error: String(error) });
    const reason = "the environment's workflow settings could not be read";
    if (workflow.required) {
      throw new RequiredWorkflowError(workflow.slug, reason, [{ slug: workflow.slug, type: workflow.type, ok: false, durationMs: 0, kind: "unavailable", error: reason }]);
    }
    return failed(services, offer, workflow.slug, { kind: SETTINGS_UNAVAILABLE, reason });
  }

  const staged = new StagedWrites();
  const fired: PendingTrigger[] = [];
  const utils = scopedUtils({
    meter: services.meter,
    organizationId: environment.organizationId,
    store,
    prepared,
    identifier: () => identity.identifier,
    authenticated: () => identity.isAuthenticated,
    readOnly: false,
    fireTrigger: (name, payload) => fired.push({ name, payload }),
    payments: services.payments({ environment, prepared, store }),
    staged,
  });
  const runner = services.workflowRunner({ organizationId: environment.organizationId, environmentId: environment.id, egressHosts: settings.egressAllowList });
  const stages = new WorkflowStages(runner, utils);
  const args: RedemptionArgs = {
    identity: workflowIdentity(identity, bot),
    context: workflowContext(facts, bot),
    env: settings.values,
    offer: {
      slug: offer.slug,
      variant: claims.variant,
      title: offer.variants.find((variant) => variant.slug === claims.variant)?.presentation?.title ?? offer.presentation.title,
      price: claims.amt !== null && claims.cur !== null ? { amount: claims.amt, currency: claims.cur, ...(claims.int ? { interval: claims.int } : {}) } : null,
    },
    input: value,
  };
  // A `required` workflow that fails throws RequiredWorkflowError (531) from here; its staged writes are dropped.
  const outcome = await stages.run({ ...workflow, deadlineMs: workflow.deadlineMs ?? DEFAULT_REDEMPTION_DEADLINE_MS }, args, validateRedemptionResult);
  if (outcome === undefined) {
    const record = stages.records.at(-1);
    // The runtime's own "unavailable" is not the user's data being unreachable (REDEMPTION_UNAVAILABLE).
    const kind = record?.kind === REDEMPTION_UNAVAILABLE ? RUNTIME_UNAVAILABLE : (record?.kind ?? "bad_result");
    return failed(services, offer, workflow.slug, { kind, reason: record?.error ?? "the workflow failed" });
  }
  if ("fail" in outcome) return failed(services, offer, workflow.slug, { kind: REDEMPTION_REFUSED, reason: outcome.fail.message });

  const writes = staged.customDataWrites();
  if (writes.length > 0) {
    let applied;
    try {
      const user = services.meter.stub(meterKeyOf({ environment, store, identity }));
      // Once per token: a retry whose first apply committed (its answer lost) is answered `replayed`, nothing written.
      applied = await user.customDataApply(writes, staged.expectations(), `redemption:${claims.jti}`);
    } catch (error) {
      // One call, one transaction — but the error may come after the object committed it (the answer lost on the way
      // back): the writes may be there. A retry of the same token cannot apply them twice (the apply id above).
      services.logger.warn("redemption_writes_unavailable", { offer: offer.slug, workflow: workflow.slug, error: error instanceof Error ? error.message : String(error) });
      return { ok: false, kind: REDEMPTION_UNAVAILABLE, reason: "the user's data could not be reached to save what the workflow wrote (it may have been saved)" };
    }
    if (!applied.applied) {
      return { ok: false, kind: REDEMPTION_CONFLICT, reason: `custom data ${JSON.stringify(applied.conflict)} changed while the workflow ran, so nothing it wrote was applied` };
    }
  }
  const unsentTriggers = fired.length > 0 ? await enqueueFired(services, subject, offer, workflow.slug, fired) : [];
  return { ok: true, result: outcome.result ?? null, ...(unsentTriggers.length > 0 ? { unsentTriggers } : {}) };
}

/**
 * Sends the triggers of a redemption that happened, before answering (not in the background, where a failure would
 * go unseen). What the queue did not take is logged and returned for the redemption's record; the redemption itself
 * stands — its writes are applied and cannot be taken back.
 */
async function enqueueFired(
  services: Services,
  subject: CallerScope & Configured & Identified,
  offer: SnapshotOffer,
  workflow: string,
  fired: PendingTrigger[],
): Promise<UnsentRedemptionTrigger[]> {
  let unsent: UnsentRedemptionTrigger[];
  try {
    // The queue reports what it could not send when its implementation does (enqueueTriggers); older ones answer nothing.
    const answer: unknown = await services.triggers.enqueue(subject.prepared, subject.environment, subject.identity, fired, 0);
    unsent = Array.isArray(answer) ? (answer as UnsentRedemptionTrigger[]) : [];
  } catch (error) {
    unsent = fired.map(({ name }) => ({ trigger: name, reason: `the queue refused it: ${error instanceof Error ? error.message : String(error)}` }));
  }
  if (unsent.length > 0) services.logger.warn("redemption_triggers_unsent", { offer: offer.slug, workflow, unsent });
  return unsent;
}

/**
 * The client's `input` for a workflow-redeemed offer, checked: plain JSON nested at most MAX_JSON_DEPTH levels that
 * matches the offer's schema, else 400 `validation_failed` naming the paths it refuses. Runs nothing and writes
 * nothing, so it can be called before a redemption is claimed. An absent input is `null`.
 */
export function checkRedemptionInput(offer: SnapshotOffer, input: unknown): JsonValue {
  const redemption = offer.redemption;
  if (redemption.method !== "workflow") throw new ApiError("bad_request", `Offer ${offer.slug} is redeemed by ${redemption.method}, not by a workflow`);
  const value = input ?? null;
  // Before the validator, which recurses: a deeply nested input would overflow its stack.
  const problem = jsonValueProblem(value);
  if (problem) {
    const message = problem.startsWith("nested deeper") ? `must not be nested deeper than ${MAX_JSON_DEPTH} levels` : problem;
    throw new ApiError("validation_failed", `Invalid request: input: ${message}`, [{ path: "input", message }]);
  }
  // The fingerprint covers the redemption, schema included.
  const result = schemaValidator(`redemption\u0000${offer.slug}\u0000${offer.fingerprint}`, redemption.schema).validate(value);
  if (result.valid) return value as JsonValue;
  const details = inputErrorDetails(result.errors);
  throw new ApiError("validation_failed", `Invalid request: ${details.map((detail) => `${detail.path}: ${detail.message}`).join("; ")}`, details);
}

/**
 * The validator reports each failing keyword and the schemas around it; the deepest location says the most. The
 * first MAX_COLLECTED_INPUT_ERRORS are considered, in one pass: the locations that have a deeper error are collected
 * once, then each error is kept only if its location is not among them.
 */
function inputErrorDetails(all: readonly { instanceLocation: string; error: string }[]): { path: string; message: string }[] {
  const errors = all.slice(0, MAX_COLLECTED_INPUT_ERRORS);
  const enclosing = new Set<string>();
  for (const { instanceLocation } of errors) {
    for (let slash = instanceLocation.indexOf("/"); slash !== -1; slash = instanceLocation.indexOf("/", slash + 1)) enclosing.add(instanceLocation.slice(0, slash));
  }
  const seen = new Set<string>();
  const details: { path: string; message: string }[] = [];
  for (const error of errors) {
    if (enclosing.has(error.instanceLocation)) continue;
    const detail = { path: formatPath(["input", ...pointerSegments(error.instanceLocation)]), message: error.error };
    const id = `${detail.path}\u0000${detail.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    details.push(detail);
    if (details.length === MAX_REPORTED_INPUT_ERRORS) break;
  }
  return details;
}

/** `#/items/0/name` → ["items", 0, "name"] (JSON Pointer, RFC 6901). */
function pointerSegments(location: string): (string | number)[] {
  return location
    .replace(/^#/, "")
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment));
}

function failed(services: Services, offer: SnapshotOffer, workflow: SnapshotWorkflow["slug"], failure: { kind: string; reason: string }): RedemptionWorkflowOutcome {
  // A refusal is the workflow's answer, not a fault.
  if (failure.kind !== REDEMPTION_REFUSED) services.logger.warn("redemption_workflow_failed", { offer: offer.slug, workflow, kind: failure.kind, reason: failure.reason });
  return { ok: false, ...failure };
}
