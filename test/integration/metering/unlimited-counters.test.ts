/**
 * Unlimited counters — a plan's `on` over another plan's metered setting (hello-world's Premium over Registered's 3
 * widgets) — outside the response: `counters.updated` triggers report them as the response does (under the
 * overridden limit), and utils.counters in action and decision workflows and `POST /api/v1/counter-updates` count
 * them, never refusing, and report them to workflows under the overridden limit too.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { meterStub } from "../../../durable-objects/meter/client";
import { UNLIMITED_UNITS } from "../../../workers/engine";
import type { TriggerMessage } from "../../../workers/workflows/triggers";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { captureTriggers, type CapturedTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

const WORKFLOWS = {
  "record-counters": recordTriggersAction(["counters.updated"]),
  // Counts the counter a trigger reports once more, under the limits that rode along with the trigger.
  "count-again": {
    type: "action",
    triggers: ["counters.updated"],
    source: `export default async ({ payload, utils }: any) => {
      let result;
      try {
        const reading = await utils.counters.consume(payload.counters[0].counterId);
        result = { consumedUnits: reading.consumedUnits, remainingUnits: reading.remainingUnits, totalUnits: reading.totalUnits, hasAccess: reading.hasAccess };
      } catch (error) {
        result = { error: (error as Error).message };
      }
      await utils.customData.set("counted-again", [...((await utils.customData.get("counted-again")) ?? []), result]);
    };`,
  },
  // A decision's own workflow counts it under the limits the decision resolved.
  "count-in-surface": {
    type: "surface",
    surface: "hello-world",
    source: `export default async ({ identity, features, utils }: any) => {
      if (!identity.identifier.startsWith("surface-")) return {};
      try {
        const counterId = features.widget.properties.enabled.counterId;
        const readings = [await utils.counters.consume(counterId), await utils.counters.incrementCounter(counterId, 2)];
        return { properties: { counted: readings.map((reading: any) => [reading.consumedUnits, reading.remainingUnits, reading.totalUnits, reading.hasAccess]) } };
      } catch (error) {
        return { properties: { counted: (error as Error).message } };
      }
    };`,
  },
};

let org: TestOrganization;
let counterId: string;

beforeAll(async () => {
  org = await createOrganization("Unlimited counters");
  const document = helloWorld();
  document.workflows = WORKFLOWS;
  document.plans.premium.stripeProductIds = ["prod_premium"];
  await publish(org.adminKey, document, [org.live.id]);
  const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
  counterId = `default:${featureId}.enabled`;
});

let triggers: CapturedTriggers;
beforeEach(() => {
  triggers = captureTriggers();
});
afterEach(async () => {
  await triggers.restore();
});

/** A signed-in user whose customer record grants Premium ("on" over Registered's metered 3 widgets). */
async function premiumUser(label: string): Promise<string> {
  const user = `${label}-${crypto.randomUUID()}@example.com`;
  const customer = await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/${user}`, { key: org.live.secretKey, body: { stripeProductIds: ["prod_premium"] } });
  expect(customer.status).toBeLessThan(300);
  return user;
}

const decide = (user: string) =>
  call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: user } } });
const updateCounter = (user: string, update: number) =>
  call("POST", "/api/v1/counter-updates", { key: org.live.secretKey, body: { identity: { userIdentifier: user }, counterId, update } });

/** The counters.updated messages the Worker sent for one user, in order. */
async function countersUpdated(user: string): Promise<TriggerMessage[]> {
  await waitForBackgroundWork();
  return triggers.sent.filter((message) => message.identifier === user && message.trigger === "counters.updated");
}

/** The reading fields of a rendered meterable property (what a trigger's reading carries). */
function readingOf(property: Record<string, unknown>): Record<string, unknown> {
  const { type: _type, isFallback: _isFallback, ...reading } = property;
  return reading;
}

const seen = (user: string, key: string) => meterStub(env.METER, `${org.id}:default:u`, user).customDataGet(key) as Promise<unknown[] | null>;

describe("unlimited counters outside the response", () => {
  it("counters.updated reports each reading as the response does, under the overridden limit, and carries the counter's settings", async () => {
    const user = await premiumUser("trigger");
    const responses = [];
    for (let i = 0; i < 4; i++) responses.push((await decide(user)).body.features.widget.properties.enabled);
    expect(responses.map((property) => [property.consumedUnits, property.remainingUnits, property.totalUnits, property.hasAccess])).toEqual([
      [1, 2, 3, true],
      [2, 1, 3, true],
      [3, 0, 3, true],
      [4, 0, 3, true],
    ]);
    const messages = await countersUpdated(user);
    expect(messages.map((message) => (message.payload as { counters: unknown[] }).counters)).toEqual(responses.map((property) => [readingOf(property)]));
    // The limits riding along let action workflows count it: without a limit of the user's, never refused.
    for (const message of messages) {
      expect(new Map(message.counters).get(counterId)).toEqual({ limit: UNLIMITED_UNITS, period: "lifetime", uniqueResources: false, overriddenLimit: 3 });
    }
  });

  it("an action workflow counts it with utils.counters.consume", async () => {
    const user = await premiumUser("action");
    expect((await decide(user)).status).toBe(200);
    await triggers.deliver();
    // Reported as the response reports it: under Registered's 3, not the meter's ceiling.
    expect(await seen(user, "counted-again")).toEqual([{ consumedUnits: 2, remainingUnits: 1, totalUnits: 3, hasAccess: true }]);
    expect(await seen(user, "seen:counters.updated")).toEqual([expect.objectContaining({ counters: [expect.objectContaining({ consumedUnits: 1, totalUnits: 3, remainingUnits: 2 })] })]);
    const check = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userIdentifier: user } } });
    expect(check.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 2, totalUnits: 3, remainingUnits: 1 });
  });

  it("a decision's own workflow counts it with utils.counters.consume", async () => {
    const user = await premiumUser("surface");
    const decision = await decide(user);
    expect(decision.status).toBe(200);
    // The decision consumed the first unit, its surface workflow the second and then two more, past Registered's 3;
    // the workflow reads them under that 3, as the response does.
    expect(decision.body.surfaceBehavior.properties).toEqual({ counted: [[2, 1, 3, true], [4, 0, 3, true]] });
  });

  it("a counter update counts it (200, never refused) and reports it under the overridden limit, in its trigger too", async () => {
    const user = await premiumUser("update");
    const first = await updateCounter(user, 2);
    expect(first.status).toBe(200);
    expect(first.body.counter).toMatchObject({ counterId, consumedUnits: 2, remainingUnits: 1, totalUnits: 3, hasAccess: true, consumedUnitsInRequest: 2 });
    const over = await updateCounter(user, 5);
    expect(over.status).toBe(200);
    expect(over.body.counter).toMatchObject({ consumedUnits: 7, remainingUnits: 0, totalUnits: 3, hasAccess: true });
    const back = await updateCounter(user, -10);
    expect(back.body.counter).toMatchObject({ consumedUnits: 0, remainingUnits: 3, totalUnits: 3, hasAccess: true });

    const messages = await countersUpdated(user);
    expect(messages.map((message) => (message.payload as { counters: unknown[] }).counters)).toEqual([[first.body.counter], [over.body.counter], [back.body.counter]]);
    expect(new Map(messages[0]!.counters).get(counterId)).toEqual({ limit: UNLIMITED_UNITS, period: "lifetime", uniqueResources: false, overriddenLimit: 3 });
    // A decision reads the same count.
    expect((await decide(user)).body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, totalUnits: 3, remainingUnits: 2, hasAccess: true });
  });
});
