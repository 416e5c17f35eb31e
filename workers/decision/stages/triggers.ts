/**
 * Stage 13 — triggers, after the response: `decision.made`, what the meter says happened (`counters.updated`,
 * `user.added`, `plans.changed`) and the custom triggers workflows fired, to the queue for the action workflows;
 * what the meter says happened also goes to the environment's outbound webhooks (webhooks/decisionEvents.ts).
 * A replay enqueues nothing (the first request did); a meter that answers after the deadline still consumed, so its
 * triggers follow when it answers — and for a keyed request, which may be a retry it cannot recognise without that
 * answer, so do `decision.made` and its workflows' triggers.
 */
import type { EvaluateResult } from "../../../durable-objects/meter/MeterObject";
import type { MeterReading } from "../../engine";
import { reportedReading } from "../../engine/meters";
import { decisionWebhookPublisher, publishDecisionWebhooks } from "../../webhooks/decisionEvents";
import { counterSettingsOf } from "../../workflows/scopedUtils";
import type { Configured, DecisionRequest, Identified, Metered, Planned } from "../context";
import { requestTopUpsAfter } from "../creditTopUps";
import type { Services } from "../services";
import type { Crawled } from "./crawl";
import { grantedOnFallback, queueCrawlChargeReport, queueOverageReports } from "./usage";

type Trigger = { name: string; payload: unknown };

export function enqueueDecisionTriggers<C extends DecisionRequest & Configured & Identified & Planned & Metered & Partial<Crawled>>(
  services: Services,
  context: C,
  decided: { eventId: string; granted: boolean },
): void {
  const { prepared, environment, identity, decision, meter, kind, workflows } = context;
  const { eventId } = decided;
  const { countedMeterRequests } = decision;
  // The user's limits ride along, so utils.counters in the action workflows enforce this decision's plans; unlimited
  // counters too (they never refuse), or an action could not count them.
  const counters = counterSettingsOf(countedMeterRequests);
  const enqueue = (triggers: Trigger[]) => services.triggers.enqueue(prepared, environment, identity, triggers, 0, counters);
  /** What a meter answer says happened: counters consumed, a new user, a plan change. */
  const meterTriggers = (answer: { readings: MeterReading[]; userAdded?: boolean; plansChanged?: { from: string[] | null; to: string[] } }): Trigger[] => {
    // Unlimited counters' and overflow settings' readings as the response reports them, not under the meter's
    // unreachable limit.
    const consumed = answer.readings.filter((reading) => reading.consumedInRequest).map((reading) => reportedReading(reading, countedMeterRequests));
    return [
      ...(consumed.length > 0 ? [{ name: "counters.updated", payload: { eventId, identifier: identity.identifier, counters: consumed } }] : []),
      ...(answer.userAdded ? [{ name: "user.added", payload: { eventId, identifier: identity.identifier, authType: identity.authType } }] : []),
      // The first plan set of a user is not a change (user.added says the user is new).
      ...(answer.plansChanged?.from ? [{ name: "plans.changed", payload: { eventId, identifier: identity.identifier, from: answer.plansChanged.from, to: answer.plansChanged.to } }] : []),
    ];
  };
  /** The same answer to operators' endpoints (outbound webhooks): plan.changed, user.added, counter thresholds. */
  const publishWebhooks = (answer: { readings: MeterReading[]; userAdded?: boolean; plansChanged?: { from: string[] | null; to: string[] } }) =>
    publishDecisionWebhooks(decisionWebhookPublisher(services.db), environment, {
      eventId,
      identifier: identity.identifier,
      authenticated: identity.isAuthenticated,
      authType: identity.authType,
      readings: answer.readings,
      requests: countedMeterRequests,
      userAdded: answer.userAdded,
      plansChanged: answer.plansChanged,
    });
  // A replay's flags and consumed readings are the first request's, whose triggers were enqueued then: enqueueing them
  // again would run every action twice for one logical request.
  // Overage units of overflow settings and a pay-per-crawl charge, for usage-based billing (usage.ts): once per logical
  // request, as the triggers.
  const overage = { environment, identifier: identity.identifier, eventId };
  /** What the request itself says happened: the decision, and the triggers its workflows fired. */
  const requestTriggers: Trigger[] = [
    { name: "decision.made", payload: { eventId, kind, identifier: identity.identifier, outcome: decided.granted ? "granted" : "denied" } },
    ...(workflows?.triggers ?? []),
  ];
  // A keyed request that gave up waiting for the meter does not know yet whether it is a retry: its own triggers wait
  // for the late answer and are enqueued only if that is no replay (or if the meter never answers: at least once).
  const awaitingReplayVerdict = meter.late !== undefined && context.idempotencyKey !== undefined;
  if (!meter.replayed) {
    if (meter.readings) queueOverageReports(services, overage, countedMeterRequests, meter.readings.values());
    queueCrawlChargeReport(services, context, eventId);
    services.waitUntil(
      enqueue([
        ...(awaitingReplayVerdict ? [] : requestTriggers),
        ...(meter.readings ? meterTriggers({ readings: [...meter.readings.values()], userAdded: meter.userAdded, plansChanged: meter.plansChanged }) : []),
      ]),
    );
    requestTopUpsAfter(services, context, meter.creditReadings?.values());
    if (meter.readings) services.waitUntil(publishWebhooks({ readings: [...meter.readings.values()], userAdded: meter.userAdded, plansChanged: meter.plansChanged }));
  }
  if (meter.late) {
    services.waitUntil(
      meter.late.then(
        (answer: EvaluateResult) => {
          if ("conflict" in answer || answer.replayed) return undefined;
          // The response went out on the fallback: its overage is billed only where that fallback granted (the visitor
          // used the unit), never to a visitor it refused. A deduction that did happen can still call for a top-up.
          queueOverageReports(services, overage, grantedOnFallback(prepared, countedMeterRequests), answer.readings);
          requestTopUpsAfter(services, context, answer.credits);
          services.waitUntil(publishWebhooks(answer));
          return enqueue([...(awaitingReplayVerdict ? requestTriggers : []), ...meterTriggers(answer)]);
        },
        () => (awaitingReplayVerdict ? enqueue(requestTriggers) : undefined),
      ),
    );
  }
}
