/**
 * An idempotent retry enqueues no triggers: a surface decision retried with its Idempotency-Key (sequentially or
 * concurrently) puts one set of trigger messages on the queue — system triggers (`decision.made`, `counters.updated`,
 * `user.added`, `plans.changed`) and the custom ones its workflows fire — so action workflows run once per logical
 * request. Observed on the queue producer itself, captured (test/support/triggers.ts): what the Worker sends is
 * recorded, and actions run when a test delivers the messages — and through the action's effect.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { meterStub } from "../../../durable-objects/meter/client";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { faultyMeter, workerWith } from "../../support/faults";
import { captureTriggers, type CapturedTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

const ACTIONS = {
  "count-triggers": recordTriggersAction(["page.viewed", "decision.made", "counters.updated", "user.added", "plans.changed"]),
  "fire-on-view": {
    type: "surface",
    surface: "hello-world",
    source: `export default async ({ identity, utils }: any) => { await utils.triggers.fire("page.viewed", { who: identity.identifier }); return {}; };`,
  },
};
const TRIGGERS = { "page.viewed": { schema: { type: "object", properties: { who: { type: "string" } }, required: ["who"] } } };

/** A second organization whose surface workflow fires many large triggers. */
const BULK_WORKFLOWS = {
  "fire-many": {
    type: "surface",
    surface: "hello-world",
    source: `export default async ({ identity, utils }: any) => {
      if (!identity.identifier.startsWith("bulky")) return {};
      // 10 payloads of ~31 KB (multi-byte text): more than one queue batch holds.
      for (let i = 0; i < 10; i++) await utils.triggers.fire("bulk.item", { i, text: "€".repeat(10_000) });
      let refused = "";
      try { await utils.triggers.fire("bulk.item", { i: 99, text: "€".repeat(11_000) }); } catch (error) { refused = (error as Error).message; }
      return { properties: { refused } };
    };`,
  },
  "on-bulk": { type: "action", triggers: ["bulk.item"], source: "export default () => {};" },
};

let org: TestOrganization;
/** An organization whose only action listens to decision.made: no user tracking rides along with the meter call. */
let decisionsOnly: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Idempotent triggers");
  const document = helloWorld();
  document.workflows = ACTIONS;
  document.triggers = TRIGGERS;
  document.plans.premium.stripeProductIds = ["prod_premium"];
  await publish(org.adminKey, document, [org.live.id]);

  decisionsOnly = await createOrganization("Idempotent triggers, decisions only");
  const plain = helloWorld();
  plain.workflows = { "on-decision": { type: "action", triggers: ["decision.made"], source: "export default () => {};" } };
  plain.plans.premium.stripeProductIds = ["prod_premium"];
  // A Premium customer here holds no metered plan under the unlimited one, so its decisions meter nothing at all.
  plain.plans.registered.autoAssign = [];
  await publish(decisionsOnly.adminKey, plain, [decisionsOnly.live.id]);
});

/** What the Worker hands to the trigger queue during the test: every message, and the size of each batch. */
let triggers: CapturedTriggers;
beforeEach(() => {
  triggers = captureTriggers();
});
afterEach(async () => {
  await triggers.restore();
});

const decide = (target: TestOrganization, identifier: string, idempotencyKey?: string) =>
  call("POST", "/api/v1/surface-decisions", {
    key: target.live.secretKey,
    headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : {},
    body: { surfaceSlug: "hello-world", identity: { userIdentifier: identifier } },
  });

/** Trigger names enqueued for one user, sorted (once the requests' work after their responses is done). */
async function enqueuedFor(target: TestOrganization, identifier: string): Promise<string[]> {
  await waitForBackgroundWork();
  return triggers.sent
    .filter((message) => message.organizationId === target.id && message.identifier === identifier)
    .map((message) => message.trigger)
    .sort();
}

const seen = (identifier: string, trigger: string) =>
  meterStub(env.METER, `${org.id}:default:u`, identifier).customDataGet(`seen:${trigger}`) as Promise<unknown[] | null>;

const uniqueUser = (label: string) => `${label}-${crypto.randomUUID()}@example.com`;

describe("an idempotent retry of a surface decision enqueues no triggers", () => {
  it("a retry with the same Idempotency-Key and body enqueues nothing: system and custom triggers are queued once, and the action runs once", async () => {
    const user = uniqueUser("retry");
    const key = `key-${crypto.randomUUID()}`;
    const first = await decide(org, user, key);
    const retry = await decide(org, user, key);
    expect([first.status, retry.status]).toEqual([200, 200]);
    // The retry answers like the first request (same event, same consumption)…
    expect(retry.body.eventId).toBe(first.body.eventId);
    expect(retry.body.features).toEqual(first.body.features);
    expect(first.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, consumedInRequest: true });
    // …but the triggers of that one logical request are on the queue once.
    expect(await enqueuedFor(org, user)).toEqual(["counters.updated", "decision.made", "page.viewed", "user.added"]);
    await triggers.deliver();
    expect(await seen(user, "decision.made")).toEqual([expect.objectContaining({ eventId: first.body.eventId })]);
    expect(await seen(user, "page.viewed")).toEqual([{ who: user }]);
    expect(await seen(user, "user.added")).toHaveLength(1);

    // A new key is a new request: its triggers are enqueued (it is no longer a new user).
    const next = await decide(org, user, `key-${crypto.randomUUID()}`);
    expect(next.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 2, consumedInRequest: true });
    expect(await enqueuedFor(org, user)).toEqual(["counters.updated", "counters.updated", "decision.made", "decision.made", "page.viewed", "page.viewed", "user.added"]);
  });

  it("a request that gave up on a slow meter enqueues the meter's triggers when it answers; a retry adds nothing", async () => {
    const user = uniqueUser("slow");
    const key = `key-${crypto.randomUUID()}`;
    const callSlow = workerWith({ meter: faultyMeter("slow", [user]) });
    const first = await callSlow("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      headers: { "idempotency-key": key },
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: user } },
    });
    expect(first.status).toBe(200);
    // The response fell back (the meter answered after the deadline)…
    expect(first.body.features.widget.properties.enabled).toMatchObject({ isFallback: true });
    // …but the object did consume and add the user, and its triggers followed when it answered.
    const names = await enqueuedFor(org, user);
    expect(names).toEqual(["counters.updated", "decision.made", "page.viewed", "user.added"]);
    const retry = await decide(org, user, key);
    expect(retry.status).toBe(200);
    expect(retry.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, consumedInRequest: true });
    expect(await enqueuedFor(org, user)).toEqual(names);
  });

  it("a retry that gave up on a slow meter waits for its answer before enqueueing anything: a replay adds nothing", async () => {
    const user = uniqueUser("slow-retry");
    const key = `key-${crypto.randomUUID()}`;
    const first = await decide(org, user, key);
    expect(first.status).toBe(200);
    const names = await enqueuedFor(org, user);
    expect(names).toEqual(["counters.updated", "decision.made", "page.viewed", "user.added"]);
    // The retry's meter answers after the deadline: until it does, the request cannot know it is a replay, so its
    // decision.made and the triggers its workflow fired must not go out on their own.
    const callSlow = workerWith({ meter: faultyMeter("slow", [user]) });
    const retry = await callSlow("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      headers: { "idempotency-key": key },
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: user } },
    });
    expect(retry.status).toBe(200);
    expect(retry.body.features.widget.properties.enabled).toMatchObject({ isFallback: true });
    expect(await enqueuedFor(org, user)).toEqual(names);
  });

  it("a retry consumes nothing more, workflows included: their counters read instead of consuming", async () => {
    const consumer = await createOrganization("Replay-safe workflow counters");
    const document = helloWorld();
    document.workflows = {
      "consume-extra": {
        type: "surface",
        surface: "hello-world",
        source: `export default async ({ features, utils }: any) => {
          const reading = await utils.counters.consume("default:" + features.widget.featureId + ".enabled");
          await utils.customData.set("visits", ((await utils.customData.get("visits")) ?? 0) + 1);
          return { properties: { afterWorkflow: reading.consumedUnits } };
        };`,
      },
    };
    await publish(consumer.adminKey, document, [consumer.live.id]);
    const user = uniqueUser("replay-consume");
    const key = `key-${crypto.randomUUID()}`;
    const first = await decide(consumer, user, key);
    expect(first.body.surfaceBehavior.properties).toEqual({ afterWorkflow: 2 });
    const retry = await decide(consumer, user, key);
    expect(retry.body.surfaceBehavior.properties).toEqual({ afterWorkflow: 2 });
    const check = await call("POST", "/api/v1/access-checks", { key: consumer.live.secretKey, body: { identity: { userIdentifier: user } } });
    expect(check.body.features.widget.properties.enabled.consumedUnits).toBe(2);
    // …and its custom-data writes are skipped: the first request's stand.
    expect(await meterStub(env.METER, `${consumer.id}:default:u`, user).customDataGet("visits")).toBe(1);
  });

  it("20 concurrent retries with one key enqueue one set of triggers", async () => {
    const user = uniqueUser("concurrent");
    const key = `key-${crypto.randomUUID()}`;
    const results = await Promise.all(Array.from({ length: 20 }, () => decide(org, user, key)));
    expect(results.map((result) => result.status)).toEqual(Array(20).fill(200));
    expect(new Set(results.map((result) => result.body.eventId)).size).toBe(1);
    expect(await enqueuedFor(org, user)).toEqual(["counters.updated", "decision.made", "page.viewed", "user.added"]);
  });

  it("a retried decision that changed the user's plans fires plans.changed once", async () => {
    const user = uniqueUser("upgrade");
    expect((await decide(org, user)).status).toBe(200);
    await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/${user}`, { key: org.live.secretKey, body: { stripeProductIds: ["prod_premium"] } });
    const key = `key-${crypto.randomUUID()}`;
    const upgraded = await decide(org, user, key);
    const retry = await decide(org, user, key);
    expect(retry.body.eventId).toBe(upgraded.body.eventId);
    // Premium is "on" over Registered's metered widgets: the counter keeps counting, so both consuming decisions
    // report counters.updated; the first decision brought user.added.
    const names = await enqueuedFor(org, user);
    expect(names.filter((name) => name === "plans.changed")).toHaveLength(1);
    expect(names).toEqual(["counters.updated", "counters.updated", "decision.made", "decision.made", "page.viewed", "page.viewed", "plans.changed", "user.added"]);
  });

  it("a retry of a decision that meters nothing is recognised too (the key is recorded in the user's object)", async () => {
    // Premium users of this version meter nothing, and no action listens to user.added / plans.changed.
    const user = uniqueUser("unmetered");
    await call("PUT", `/api/v1/admin/environments/${decisionsOnly.live.id}/customers/${user}`, {
      key: decisionsOnly.live.secretKey,
      body: { stripeProductIds: ["prod_premium"] },
    });
    const key = `key-${crypto.randomUUID()}`;
    const first = await decide(decisionsOnly, user, key);
    expect(first.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true });
    expect(first.body.features.widget.properties.enabled.consumedUnits).toBeUndefined();
    const retry = await decide(decisionsOnly, user, key);
    expect(retry.body.eventId).toBe(first.body.eventId);
    expect(await enqueuedFor(decisionsOnly, user)).toEqual(["decision.made"]);
    // Without a key every decision is its own request.
    await decide(decisionsOnly, user);
    await decide(decisionsOnly, user);
    expect(await enqueuedFor(decisionsOnly, user)).toEqual(["decision.made", "decision.made", "decision.made"]);
  });

  it("one key in two production environments (one shared store) is two requests, not a replay", async () => {
    const created = await call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: `second-${crypto.randomUUID().slice(0, 8)}`, type: "production" } });
    expect(created.status).toBe(201);
    const second = { ...org, live: { id: created.body.environment.id, secretKey: created.body.keys.find((k: { type: string }) => k.type === "secret").key, publishableKey: "" } };
    const deployed = await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key: org.live.secretKey });
    expect((await call("POST", `/api/v1/admin/environments/${second.live.id}/deployments`, { key: org.adminKey, body: { versionId: deployed.body.deployedVersionId } })).status).toBe(201);

    const user = uniqueUser("two-envs");
    const key = `key-${crypto.randomUUID()}`;
    const inLive = await decide(org, user, key);
    const inSecond = await decide(second, user, key);
    expect([inLive.status, inSecond.status]).toEqual([200, 200]);
    // Same user object (both production), two consumptions, each with its own triggers.
    expect(inLive.body.features.widget.properties.enabled.consumedUnits).toBe(1);
    expect(inSecond.body.features.widget.properties.enabled.consumedUnits).toBe(2);
    await waitForBackgroundWork();
    const forUser = triggers.sent.filter((message) => message.identifier === user);
    expect(forUser.filter((message) => message.trigger === "counters.updated").map((message) => message.environmentId).sort()).toEqual([org.live.id, second.live.id].sort());
  });

  it("one key used for a surface decision and for a credit charge or counter update is two requests", async () => {
    const user = uniqueUser("two-routes");
    const key = `key-${crypto.randomUUID()}`;
    const feature = await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey });
    expect((await decide(org, user, key)).status).toBe(200);
    const update = await call("POST", "/api/v1/counter-updates", {
      key: org.live.secretKey,
      headers: { "idempotency-key": key },
      body: { identity: { userIdentifier: user }, counterId: `default:${feature.body.id}.enabled`, update: 1 },
    });
    expect(update.status).toBe(200);
    expect(update.body.counter.consumedUnits).toBe(2);
  });

  it("large triggers are measured in bytes and split into batches the queue accepts; none is lost", async () => {
    const bulky = await createOrganization("Bulky triggers");
    const document = helloWorld();
    document.workflows = BULK_WORKFLOWS;
    document.triggers = { "bulk.item": {} };
    await publish(bulky.adminKey, document, [bulky.live.id]);
    const user = uniqueUser("bulky");
    const before = triggers.batchBytes.length;
    const decision = await decide(bulky, user);
    expect(decision.status).toBe(200);
    // 11,000 × "€" is 33 KB of UTF-8 but fewer than 32 Ki characters: refused by bytes.
    expect(decision.body.surfaceBehavior.properties.refused).toBe("trigger payloads must be JSON of at most 32 KiB");
    await waitForBackgroundWork();
    const bulk = triggers.sent.filter((message) => message.identifier === user && message.trigger === "bulk.item");
    expect(bulk.map((message) => (message.payload as { i: number }).i).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const batches = triggers.batchBytes.slice(before);
    expect(batches.length).toBeGreaterThan(1);
    for (const bytes of batches) expect(bytes).toBeLessThan(256_000);
  });

  it("a counter update enqueues counters.updated once, first request or retry", async () => {
    const user = uniqueUser("counter-update");
    const feature = await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey });
    const counterId = `default:${feature.body.id}.enabled`;
    const update = () =>
      call("POST", "/api/v1/counter-updates", {
        key: org.live.secretKey,
        headers: { "idempotency-key": "update-once" },
        body: { identity: { userIdentifier: user }, counterId, update: 2 },
      });
    const first = await update();
    const retry = await update();
    expect([first.status, retry.status]).toEqual([200, 200]);
    expect(retry.body).toEqual(first.body);
    expect(await enqueuedFor(org, user)).toEqual(["counters.updated"]);
    const message = triggers.sent.find((candidate) => candidate.identifier === user)!;
    expect(message.payload).toEqual({ eventId: first.body.eventId, identifier: user, counters: [expect.objectContaining({ counterId, consumedUnits: 2, consumedUnitsInRequest: 2 })] });
    // The limits of the user's plan ride along for the action's utils.counters.
    expect(message.counters).toEqual([[counterId, { limit: 3, period: "lifetime", uniqueResources: false }]]);
    await triggers.deliver();
    expect(await seen(user, "counters.updated")).toHaveLength(1);
  });
});
