/**
 * One access check or surface decision, as the list of its stages (each in stages/, in this order):
 *   config → identity → middleware workflows → customer → provisioning workflows      (subject.ts)
 *   → plans (engine) → meter (ONE Durable Object call) → features (+ feature workflows)
 *   → surface workflow → component workflows → response
 *   and after the response: the decision record and the triggers.
 * Each stage is timed into `Server-Timing` and the record. The Hono context stops at the route: stages get the
 * request's Services and the typed context the previous stages built.
 */
import { ApiError } from "../errors";
import { newId } from "../lib/ids";
import { RequiredWorkflowError } from "../workflows/stages";
import type { DecisionRequest } from "./context";
import type { Services } from "./services";
import { consumeMeter, enqueueDecisionTriggers, planDecision, recordDecision, renderResponse, resolveFeatures, runComponentWorkflows, runSurfaceWorkflow, type DecisionResponse } from "./stages";
import { resolveSubject } from "./subject";

export async function runDecision(services: Services, request: DecisionRequest): Promise<DecisionResponse> {
  services.timing.mark("auth");
  try {
    return await decide(services, request);
  } catch (error) {
    if (error instanceof RequiredWorkflowError) throw recordRequiredWorkflowFailure(services, request, error);
    throw error;
  }
}

async function decide(services: Services, request: DecisionRequest): Promise<DecisionResponse> {
  const subject = await resolveSubject(services, request);
  const planned = planDecision(services, subject);
  const metered = await consumeMeter(services, planned);
  const featured = await resolveFeatures(services, metered);
  const surfaced = await runSurfaceWorkflow(services, featured);
  const decided = await runComponentWorkflows(services, surfaced);
  const response = await renderResponse(services, decided);

  const denied = recordDecision(services, decided, response);
  enqueueDecisionTriggers(services, decided, { eventId: response.eventId, granted: denied.length === 0 });
  return response;
}

/**
 * A required workflow failed (531): the failed decision is recorded with the runs so far, and the caller learns which
 * workflow failed — with the customer's error text only for a secret key (a browser holding a publishable key sees
 * none of the customer's internals; the record keeps them).
 */
function recordRequiredWorkflowFailure(services: Services, request: DecisionRequest, error: RequiredWorkflowError): ApiError {
  const { environment, kind, surfaceSlug } = request;
  services.recordEvent({
    id: newId("evt"),
    organizationId: environment.organizationId,
    environmentId: environment.id,
    kind,
    identifier: null,
    surfaceSlug: surfaceSlug ?? null,
    outcome: "failed",
    record: { workflows: error.records, error: error.message, versionId: environment.deployedVersionId },
  });
  return request.keyType === "secret" ? error : new ApiError("workflow_error", `Workflow ${error.slug} failed`);
}
