/**
 * Custom redemptions: an offer whose method is `workflow` runs its redemption workflow with the client's input.
 * STUB — the redemption-workflow work replaces the body; the signature is the contract.
 */
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { SnapshotOffer } from "../engine/snapshot";
import type { JsonValue } from "../workflows/authorTypes";
import type { CallerScope, Configured, Identified } from "./context";
import type { Services } from "./services";

export type RedemptionWorkflowOutcome = { ok: true; result: JsonValue } | { ok: false; kind: string; reason: string };

/**
 * Validates `input` against the offer's schema (400 `validation_failed` when it does not match: nothing runs), then
 * runs the workflow. A failure is an outcome, never a throw (unless the workflow is `required`: 531).
 */
export async function runRedemptionWorkflow(
  _services: Services,
  _subject: CallerScope & Configured & Identified,
  _offer: SnapshotOffer,
  _claims: OfferTokenClaims,
  _input: unknown,
): Promise<RedemptionWorkflowOutcome> {
  return { ok: false, kind: "unavailable", reason: "redemption workflows are not available yet" };
}
