/**
 * Custom redemptions: an offer whose method is `workflow` runs its redemption workflow with the client's input.
 *
 * Never half a redemption: what the workflow writes through utils (custom data, triggers) is staged while it runs and
 * applied only once it succeeded — the custom data in one meter-object call that applies all of it or nothing, the
 * triggers enqueued after. A workflow that throws, times out, returns something else than its contract or refuses
 * (`{fail}`) leaves nothing behind.
 */
import { type Schema, Validator } from "@cfworker/json-schema";
import { LRUCache } from "lru-cache";
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { SnapshotOffer, SnapshotWorkflow } from "../engine/snapshot";
import { ApiError, formatPath } from "../errors";
import type { JsonValue, RedemptionArgs } from "../workflows/authorTypes";
import { scopedUtils, StagedWrites } from "../workflows/scopedUtils";
import { RequiredWorkflowError, validateRedemptionResult, WorkflowStages } from "../workflows/stages";
import type { CallerScope, Configured, Identified } from "./context";
import type { Services } from "./services";
import { workflowContext, workflowIdentity } from "./workflowArgs";
import type { PendingTrigger } from "./workflowSession";

export type RedemptionWorkflowOutcome = { ok: true; result: JsonValue } | { ok: false; kind: string; reason: string };

/**
 * How long a redemption workflow may take unless it sets `deadlineMs`: someone clicked "buy" and waits, and the
 * workflow may call the payment provider through utils — longer than a decision's 50 ms, shorter than an action's.
 */
export const DEFAULT_REDEMPTION_DEADLINE_MS = 2_000;

/** Input validators per (version, offer): a version is immutable, so a validator is built once. */
const inputValidators = new LRUCache<string, Validator>({ max: 1_000 });

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
  const value = (input ?? null) as JsonValue;
  checkInput(prepared.versionId, offer.slug, redemption.schema, value);

  const workflow = prepared.snapshot.workflows.find((candidate) => candidate.slug === redemption.workflow && candidate.type === "redemption");
  if (!workflow) return failed(services, offer, redemption.workflow, { kind: "unavailable", reason: `workflow ${redemption.workflow} is not a redemption workflow of the deployed version` });

  let settings;
  try {
    settings = await services.workflowEnvironment(environment.id);
  } catch (error) {
    services.logger.error("workflow_settings_unavailable", { environmentId: environment.id, error: String(error) });
    const reason = "the environment's workflow settings could not be read";
    if (workflow.required) {
      throw new RequiredWorkflowError(workflow.slug, reason, [{ slug: workflow.slug, type: workflow.type, ok: false, durationMs: 0, kind: "unavailable", error: reason }]);
    }
    return failed(services, offer, workflow.slug, { kind: "unavailable", reason });
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
    return failed(services, offer, workflow.slug, { kind: record?.kind ?? "bad_result", reason: record?.error ?? "the workflow failed" });
  }
  if ("fail" in outcome) return failed(services, offer, workflow.slug, { kind: "refused", reason: outcome.fail.message });

  const writes = staged.customDataWrites();
  if (writes.length > 0) {
    try {
      await services.meter.stub({ organizationId: environment.organizationId, store, authenticated: identity.isAuthenticated, identifier: identity.identifier }).customDataApply(writes);
    } catch (error) {
      // One call, one transaction: when it fails, none of the writes is there.
      return failed(services, offer, workflow.slug, { kind: "unavailable", reason: `the workflow's custom data could not be saved: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
  if (fired.length > 0) services.waitUntil(services.triggers.enqueue(prepared, environment, identity, fired, 0));
  return { ok: true, result: outcome.result ?? null };
}

/** 400 `validation_failed` naming each path of `input` the offer's schema refuses. */
function checkInput(versionId: string, offerSlug: string, schema: Record<string, unknown>, input: JsonValue): void {
  const key = `${versionId}\u0000${offerSlug}`;
  let validator = inputValidators.get(key);
  if (!validator) {
    validator = new Validator(schema as Schema, "2020-12", false);
    inputValidators.set(key, validator);
  }
  const result = validator.validate(input);
  if (result.valid) return;
  // The validator reports each failing keyword and the schemas around it; the deepest location says the most.
  const seen = new Set<string>();
  const details = result.errors
    .filter((error) => !result.errors.some((other) => other !== error && other.instanceLocation.startsWith(`${error.instanceLocation}/`)))
    .map((error) => ({ path: formatPath(["input", ...pointerSegments(error.instanceLocation)]), message: error.error }))
    .filter((detail) => !seen.has(`${detail.path}\u0000${detail.message}`) && seen.add(`${detail.path}\u0000${detail.message}`))
    .slice(0, 10);
  throw new ApiError("validation_failed", `Invalid request: ${details.map((detail) => `${detail.path}: ${detail.message}`).join("; ")}`, details);
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
  if (failure.kind !== "refused") services.logger.warn("redemption_workflow_failed", { offer: offer.slug, workflow, kind: failure.kind, reason: failure.reason });
  return { ok: false, ...failure };
}
