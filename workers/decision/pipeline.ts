/**
 * One access check or surface decision, as the list of its stages (each in stages/, in this order):
 *   config → identity → middleware workflows → customer → provisioning workflows      (subject.ts)
 *   → plans (engine) → crawl (priced surfaces only) → meter (ONE Durable Object call) → features (+ feature workflows)
 *   → surface workflow → offers (engine + tokens) → component workflows → response
 *   and after the response: the decision record and the triggers, and — only when the request asked for it — the
 *   trace (trace.ts), assembled from the final context.
 * Each stage is timed into `Server-Timing` and the record. The Hono context stops at the route: stages get the
 * request's Services and the typed context the previous stages built.
 */
import type { DecisionRequest } from "./context";
import { recordingRequiredFailures } from "./requiredWorkflows";
import type { Services } from "./services";
import {
  consumeMeter,
  enableOfferUtils,
  enqueueDecisionTriggers,
  negotiateCrawlPrice,
  planDecision,
  recordDecision,
  renderResponse,
  resolveFeatures,
  resolveOffers,
  runComponentWorkflows,
  runSurfaceWorkflow,
  type DecisionResponse,
} from "./stages";
import { resolveSubject } from "./subject";
import { traceOf, WorkflowRunCapture, type DecisionTrace } from "./trace";

export async function runDecision(services: Services, request: DecisionRequest): Promise<DecisionResponse & { trace?: DecisionTrace }> {
  services.timing.mark("auth");
  return recordingRequiredFailures(services, request, () => decide(services, request));
}

async function decide(requestServices: Services, request: DecisionRequest): Promise<DecisionResponse & { trace?: DecisionTrace }> {
  // Untraced decisions (the benchmarked path) run with the request's services as they are.
  const runs = request.trace ? new WorkflowRunCapture() : undefined;
  const services = runs ? runs.watch(requestServices) : requestServices;
  const subject = await resolveSubject(services, request);
  const planned = planDecision(services, subject);
  const priced = await negotiateCrawlPrice(services, planned);
  const metered = await consumeMeter(services, priced);
  const featured = await resolveFeatures(services, metered);
  const surfaced = await runSurfaceWorkflow(services, enableOfferUtils(services, featured));
  const offered = await resolveOffers(services, surfaced);
  const decided = await runComponentWorkflows(services, offered);
  const response = await renderResponse(services, decided);

  const denied = recordDecision(services, decided, response);
  enqueueDecisionTriggers(services, decided, { eventId: response.eventId, granted: denied.length === 0 });
  return runs ? { ...response, trace: traceOf(decided, denied, services.timing, runs) } : response;
}

