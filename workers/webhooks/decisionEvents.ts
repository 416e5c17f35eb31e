/**
 * What a decision's meter answer tells operators' systems: a plan change, a new user, and counters crossing the
 * thresholds subscriptions ask for. Everything here runs after the response (inside `waitUntil`); an environment without
 * subscriptions costs one cached lookup and nothing else.
 */
import { env as workerEnv } from "cloudflare:workers";
import type { MeterReading, MeterRequest } from "../engine/types";
import { UNLIMITED_UNITS } from "../engine/meters";
import { sha256Hex } from "../lib/crypto";
import {
  type ActiveSubscription,
  activeSubscriptions,
  publishWebhookEvents,
  subscribesTo,
  wantsIdentity,
  type WebhookEventInput,
  type WebhookPublisherEnv,
} from "./publish";

export interface DecisionMeterAnswer {
  /** The decision's event id: the webhook event ids derive from it, so a publication repeated for it is sent once. */
  eventId: string;
  identifier: string;
  /** A signed-in identity (subscriptions with `authenticatedOnly` hear of no other). */
  authenticated: boolean;
  authType?: string;
  /** Readings as the response reports them (reportedReading). */
  readings: readonly MeterReading[];
  /** The counters the decision sent to the meter (which of them have a real, capped limit). */
  requests: readonly MeterRequest[];
  userAdded?: boolean;
  plansChanged?: { from: string[] | null; to: string[] };
}

/** A stable Standard Webhooks message id for one thing that happened. */
export const derivedWebhookEventId = async (about: string): Promise<string> => `msg_${(await sha256Hex(about)).slice(0, 32)}`;

/**
 * The percentages (of `thresholds`, plus 100) a reading crossed in this request: p is crossed when the units before the
 * request were under p% of the limit and the units after are at or past it. Counters only grow within a period, so
 * each is crossed once per period (units given back and consumed again can cross it again). Only capped counters with
 * a limit: an unlimited counter or an overflow setting has no "limit reached". Compared in integers (7% of 100 units
 * is 7 units, where 0.07 × 100 is 7.000000000000001).
 */
export function crossedThresholds(reading: MeterReading, request: MeterRequest | undefined, thresholds: readonly number[]): number[] {
  if (!request || request.limit >= UNLIMITED_UNITS || request.overage !== undefined || request.overriddenLimit !== undefined) return [];
  if (!reading.consumedInRequest || reading.consumedUnitsInRequest <= 0 || !(reading.totalUnits > 0)) return [];
  const before = reading.consumedUnits - reading.consumedUnitsInRequest;
  return [...new Set([...thresholds, 100])].filter((percent) => {
    const percentOfTotal = percent * reading.totalUnits;
    return before * 100 < percentOfTotal && percentOfTotal <= reading.consumedUnits * 100;
  });
}

const COUNTER_EVENTS = ["counter.threshold_reached", "counter.limit_reached"] as const;

/** The webhook events of one meter answer, for the subscriptions given (none when none wants them). */
export async function decisionWebhookEvents(
  environmentId: string,
  answer: DecisionMeterAnswer,
  subscriptions: readonly { eventTypes: string[]; thresholds: number[] }[],
): Promise<WebhookEventInput[]> {
  const wants = (type: string) => subscriptions.some((subscription) => subscribesTo({ id: "", ...subscription }, type));
  const events: WebhookEventInput[] = [];
  const about = `${environmentId}:${answer.eventId}`;
  if (answer.plansChanged?.from && wants("plan.changed")) {
    events.push({
      type: "plan.changed",
      id: await derivedWebhookEventId(`${about}:plan.changed`),
      data: { identifier: answer.identifier, from: answer.plansChanged.from, to: answer.plansChanged.to, reason: "decision", decisionEventId: answer.eventId },
    });
  }
  if (answer.userAdded && wants("user.added")) {
    events.push({
      type: "user.added",
      id: await derivedWebhookEventId(`${about}:user.added`),
      data: { identifier: answer.identifier, ...(answer.authType ? { authType: answer.authType } : {}), decisionEventId: answer.eventId },
    });
  }
  if (COUNTER_EVENTS.some(wants)) {
    // Every threshold any subscription asks for: each subscription then gets the crossings of its own thresholds.
    const thresholds = [...new Set(subscriptions.filter((subscription) => subscribesTo({ id: "", ...subscription }, "counter.threshold_reached")).flatMap((s) => s.thresholds))];
    for (const reading of answer.readings) {
      const request = answer.requests.find((candidate) => candidate.counterId === reading.counterId);
      for (const percent of crossedThresholds(reading, request, thresholds)) {
        const data = {
          identifier: answer.identifier,
          counterId: reading.counterId,
          consumedUnits: reading.consumedUnits,
          totalUnits: reading.totalUnits,
          remainingUnits: reading.remainingUnits,
          periodStart: reading.periodStart,
          decisionEventId: answer.eventId,
        };
        const periodKey = `${about}:${reading.counterId}:${reading.periodStart}`;
        if (percent === 100 && wants("counter.limit_reached")) {
          events.push({ type: "counter.limit_reached", id: await derivedWebhookEventId(`${periodKey}:limit`), data });
        }
        if (thresholds.includes(percent)) {
          events.push({ type: "counter.threshold_reached", id: await derivedWebhookEventId(`${periodKey}:${percent}`), data: { ...data, threshold: percent } });
        }
      }
    }
  }
  return events;
}

/**
 * Publishes what a decision's meter answer says happened to the environment's subscriptions. Never throws; call it
 * inside `waitUntil`.
 */
export async function publishDecisionWebhooks(env: WebhookPublisherEnv, environment: { id: string; organizationId: string }, answer: DecisionMeterAnswer): Promise<void> {
  try {
    // Every event here is an identity event: a subscription limited to signed-in identities hears of no visitor.
    const listens = (subscription: ActiveSubscription) => wantsIdentity(subscription, answer.authenticated);
    const subscriptions = (await activeSubscriptions(env.DB, environment.id)).filter(listens);
    if (subscriptions.length === 0) return;
    const events = await decisionWebhookEvents(environment.id, answer, subscriptions);
    if (events.length === 0) return;
    // A counter.threshold_reached event goes only to the subscriptions that asked for its percentage.
    const [thresholdEvents, others] = partition(events, (event) => event.type === "counter.threshold_reached");
    await publishWebhookEvents(env, environment, others, listens);
    for (const event of thresholdEvents) {
      const percent = event.data.threshold as number;
      await publishWebhookEvents(env, environment, [event], (subscription) => listens(subscription) && subscription.thresholds.includes(percent));
    }
  } catch (error) {
    console.warn(JSON.stringify({ event: "decision_webhooks_not_published", environmentId: environment.id, error: String(error) }));
  }
}

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
}

/** The publisher for the decision path: its D1 and the Worker's webhooks queue. */
export const decisionWebhookPublisher = (db: D1Database): WebhookPublisherEnv => ({ DB: db, WEBHOOKS: (workerEnv as Partial<Env>).WEBHOOKS });

/**
 * Whether the environment's endpoints want plan.changed or user.added of this identity: a decision must then call the
 * meter, which remembers the user's plans (as it does when a workflow listens to those triggers) — for an anonymous
 * visitor too, unless every such subscription is `authenticatedOnly`. A cached lookup (activeSubscriptions: a failed
 * one counts as none for 10 s), so a D1 outage never holds decisions up.
 */
export async function webhooksTrackUsers(db: D1Database, environmentId: string, authenticated: boolean): Promise<boolean> {
  return (await activeSubscriptions(db, environmentId)).some(
    (subscription) => wantsIdentity(subscription, authenticated) && (subscribesTo(subscription, "plan.changed") || subscribesTo(subscription, "user.added")),
  );
}
