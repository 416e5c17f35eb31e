/**
 * Outbound webhooks at their edges: long error answers, secret rotation during retries, replays of lost, dropped and
 * deleted deliveries, the per-isolate subscriptions cache when D1 is slow or failing, partial queue failures,
 * thresholds in integers, subscriptions limited to signed-in identities, and the per-environment cap.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MeterReading, MeterRequest } from "../../../workers/engine/types";
import { crossedThresholds, webhooksTrackUsers } from "../../../workers/webhooks/decisionEvents";
import { activeSubscriptions, publish } from "../../../workers/webhooks/publish";
import { MAX_SUBSCRIPTIONS_PER_ENVIRONMENT } from "../../../workers/webhooks/subscriptions";
import { call, createOrganization, publish as publishDocument, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { helloWorld } from "../../support/examples";
import { type CapturedWebhooks, captureWebhooks, deliverWebhookMessages, failNext, received, receiverEndpoint, subscribe, webhooksPath } from "./helpers";

let webhooks: CapturedWebhooks;
beforeEach(() => {
  webhooks = captureWebhooks();
});
afterEach(() => {
  webhooks.restore();
  vi.restoreAllMocks();
});

async function site(name: string): Promise<TestOrganization> {
  const org = await createOrganization(name);
  const document = helloWorld();
  document.plans.anonymous.features.widget.enabled = { metered: { limit: 5, period: "lifetime" } };
  await publishDocument(org.adminKey, document, [org.live.id]);
  return org;
}

const decide = (org: TestOrganization, identity: Record<string, unknown>) =>
  call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity } });
const deliveriesOf = async (org: TestOrganization) =>
  (await call("GET", `${webhooksPath(org.live.id)}/deliveries`, { key: org.adminKey })).body.deliveries as Record<string, any>[];
const replay = (org: TestOrganization, id: string) => call("POST", `${webhooksPath(org.live.id)}/deliveries/${id}/replay`, { key: org.adminKey });

async function insertDelivery(org: TestOrganization, subscriptionId: string, status: string, updatedAt: string): Promise<string> {
  const id = `whd_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
  await env.DB.prepare(
    `INSERT INTO webhook_deliveries (id, organization_id, environment_id, subscription_id, event_id, event_type, payload, status, attempts, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, 'user.added', '{"type":"user.added","timestamp":"2026-01-01T00:00:00.000Z","data":{}}', ?, 0, ?, ?)`,
  )
    .bind(id, org.id, org.live.id, subscriptionId, `msg_${id}`, status, updatedAt, updatedAt)
    .run();
  return id;
}

describe("delivery", () => {
  it("removes finished deliveries older than 30 days as batches go by, and keeps the rest", async () => {
    const org = await site("Webhook retention");
    const { url } = receiverEndpoint("retention");
    const { id: subscriptionId } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    const old = new Date(Date.now() - 31 * 86_400_000).toISOString();
    const recent = new Date(Date.now() - 29 * 86_400_000).toISOString();
    const gone = await Promise.all(["delivered", "dropped", "dead"].map((status) => insertDelivery(org, subscriptionId, status, old)));
    // Still being retried, or young enough: kept.
    const kept = [await insertDelivery(org, subscriptionId, "failed", old), await insertDelivery(org, subscriptionId, "delivered", recent)];
    await deliverWebhookMessages([{ deliveryId: "whd_none_to_deliver_here" }]);
    const { results } = await env.DB.prepare("SELECT id FROM webhook_deliveries WHERE environment_id = ?").bind(org.live.id).all<{ id: string }>();
    expect(results.map((row) => row.id).sort()).toEqual([...kept].sort());
    expect(gone).toHaveLength(3);
  });

  it("keeps at most 200 characters of a receiver's long error answer", async () => {
    const org = await site("Webhook long error");
    const { url, path } = receiverEndpoint("long-error");
    await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    await failNext(path, 1, 500, 200_000);
    await decide(org, { userIdentifier: "long@example.com" });
    await webhooks.deliver();
    const [delivery] = await deliveriesOf(org);
    expect(delivery).toMatchObject({ status: "failed", lastStatusCode: 500 });
    expect(delivery!.lastError).toMatch(/^HTTP 500: e+$/);
    expect(delivery!.lastError.length).toBe(200);
  });

  it("a retry after a secret rotation verifies with the old secret and with the new one", async () => {
    const org = await site("Webhook rotation retry");
    const { url, path } = receiverEndpoint("rotation");
    const { id, secret: oldSecret } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    await failNext(path, 1, 503);
    await decide(org, { userIdentifier: "rotated@example.com" });
    await webhooks.deliver(1);
    const rotated = await call("POST", `${webhooksPath(org.live.id)}/${id}/rotate-secret`, { key: org.adminKey });
    expect(rotated.status).toBe(200);
    // The queue's retry of the same message.
    await deliverWebhookMessages([webhooks.sent[0]!], 2);
    const requests = await received(path);
    expect(requests.map((request) => request.status)).toEqual([503, 204]);
    const retry = requests[1]!;
    expect(retry.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(new Webhook(oldSecret).verify(retry.body, retry.headers)).toMatchObject({ type: "user.added" });
    expect(new Webhook(rotated.body.secret).verify(retry.body, retry.headers)).toMatchObject({ type: "user.added" });
    // Once the previous secret has expired, only the new one signs.
    await env.DB.prepare("UPDATE webhook_subscriptions SET previous_secret_expires_at = ? WHERE id = ?").bind(new Date(Date.now() - 1000).toISOString(), id).run();
    const [delivery] = await deliveriesOf(org);
    expect((await replay(org, delivery!.id)).status).toBe(202);
    await webhooks.deliver();
    const last = (await received(path))[2]!;
    expect(last.headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(() => new Webhook(oldSecret).verify(last.body, last.headers)).toThrow();
    new Webhook(rotated.body.secret).verify(last.body, last.headers);
  });

  it("refuses a second rotation while the previous secret still signs, saying until when", async () => {
    const org = await site("Webhook rotation twice");
    const { url, path } = receiverEndpoint("rotation-twice");
    const { id, secret: first } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    const rotate = () => call("POST", `${webhooksPath(org.live.id)}/${id}/rotate-secret`, { key: org.adminKey });
    const second = await rotate();
    expect(second.status).toBe(200);
    const refused = await rotate();
    expect(refused.status).toBe(409);
    const { previousExpiresAt } = (await env.DB.prepare("SELECT previous_secret_expires_at AS previousExpiresAt FROM webhook_subscriptions WHERE id = ?")
      .bind(id)
      .first<{ previousExpiresAt: string }>())!;
    expect(refused.body.message).toContain(`signs until ${previousExpiresAt}`);
    // The first secret still signs next to the second.
    await decide(org, { userIdentifier: "rotated-twice@example.com" });
    await webhooks.deliver();
    const [request] = await received(path);
    new Webhook(first).verify(request!.body, request!.headers);
    new Webhook(second.body.secret).verify(request!.body, request!.headers);
    // Once it has stopped signing, rotating is allowed again.
    await env.DB.prepare("UPDATE webhook_subscriptions SET previous_secret_expires_at = ? WHERE id = ?").bind(new Date(Date.now() - 1000).toISOString(), id).run();
    expect((await rotate()).status).toBe(200);
    expect((await call("POST", `${webhooksPath(org.live.id)}/wh_missing/rotate-secret`, { key: org.adminKey })).status).toBe(404);
  });

  it("marks dead only the deliveries of the queue batches that failed", async () => {
    const org = await site("Webhook partial queue");
    const { url } = receiverEndpoint("partial");
    const { id } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    const queue = env.WEBHOOKS as Queue;
    vi.spyOn(queue, "sendBatch")
      .mockImplementationOnce(async () => ({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } }))
      .mockRejectedValueOnce(new Error("queue unavailable"));
    const events = Array.from({ length: 101 }, (_, index) => ({ type: "user.added" as const, id: `msg_partial_${index}_${crypto.randomUUID()}`, data: { index } }));
    await expect(publish({ DB: env.DB, WEBHOOKS: queue }, { id: org.live.id, organizationId: org.id }, events, [{ id, eventTypes: ["*"], thresholds: [] }])).rejects.toThrow(
      /queue unavailable/,
    );
    const counts = await env.DB.prepare("SELECT status, COUNT(*) AS n FROM webhook_deliveries WHERE subscription_id = ? GROUP BY status ORDER BY status")
      .bind(id)
      .all<{ status: string; n: number }>();
    expect(counts.results).toEqual([
      { status: "dead", n: 1 },
      { status: "pending", n: 100 },
    ]);
  });
});

describe("replay", () => {
  it("sends a delivery left pending for 15 minutes (lost before it was queued), not a fresh one", async () => {
    const org = await site("Webhook stale pending");
    const { url, path } = receiverEndpoint("stale-pending");
    const { id } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    const fresh = await insertDelivery(org, id, "pending", new Date().toISOString());
    const stale = await insertDelivery(org, id, "pending", new Date(Date.now() - 16 * 60 * 1000).toISOString());
    const refused = await replay(org, fresh);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/15 minutes/);
    const replayed = await replay(org, stale);
    expect(replayed.status).toBe(202);
    expect(replayed.body.status).toBe("pending");
    await webhooks.deliver();
    expect(await received(path)).toHaveLength(1);
    expect((await call("GET", `${webhooksPath(org.live.id)}/deliveries/${stale}`, { key: org.adminKey })).body.status).toBe("delivered");
  });

  it("sends a dropped delivery once its subscription is enabled again; refuses while it is disabled or deleted", async () => {
    const org = await site("Webhook dropped replay");
    const { url, path } = receiverEndpoint("dropped-replay");
    const { id } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    await decide(org, { userIdentifier: "dropped-replay@example.com" });
    await call("PATCH", `${webhooksPath(org.live.id)}/${id}`, { key: org.adminKey, body: { enabled: false } });
    await webhooks.deliver();
    const [dropped] = await deliveriesOf(org);
    expect(dropped!.status).toBe("dropped");

    const whileDisabled = await replay(org, dropped!.id);
    expect(whileDisabled.status).toBe(409);
    expect(whileDisabled.body.message).toMatch(/is disabled \(enable it, then replay\)/);
    await call("PATCH", `${webhooksPath(org.live.id)}/${id}`, { key: org.adminKey, body: { enabled: true } });
    expect((await replay(org, dropped!.id)).status).toBe(202);
    await webhooks.deliver();
    expect(await received(path)).toHaveLength(1);
    expect((await deliveriesOf(org))[0]).toMatchObject({ status: "delivered", attempts: 1 });

    expect((await call("DELETE", `${webhooksPath(org.live.id)}/${id}`, { key: org.adminKey })).status).toBe(200);
    const afterDelete = await replay(org, dropped!.id);
    expect(afterDelete.status).toBe(409);
    expect(afterDelete.body.message).toMatch(/was deleted/);
    expect(webhooks.sent).toHaveLength(2);
  });

  it("a replay the queue refuses leaves the delivery as it was, saying why", async () => {
    const org = await site("Webhook replay refused");
    const { url } = receiverEndpoint("replay-refused");
    const { id } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    const dead = await insertDelivery(org, id, "dead", new Date().toISOString());
    vi.spyOn(env.WEBHOOKS as Queue, "sendBatch").mockRejectedValueOnce(new Error("queue unavailable"));
    expectConsoleError(/could not be queued \(Error: queue unavailable\)/);
    const refused = await replay(org, dead);
    expect(refused.status).toBe(502);
    const row = (await call("GET", `${webhooksPath(org.live.id)}/deliveries/${dead}`, { key: org.adminKey })).body;
    expect(row).toMatchObject({ status: "dead", nextAttemptAt: null });
    expect(row.lastError).toMatch(/^replay not queued: .*queue unavailable/);
  });
});

describe("the subscriptions cache", () => {
  const failingDb = (): D1Database => ({ prepare: () => ({ bind: () => ({ all: () => Promise.reject(new Error("D1 unavailable")) }) }) }) as unknown as D1Database;

  it("caches a failed lookup as no subscriptions, with a warning, instead of asking D1 on every decision", async () => {
    const environmentId = `env_cache_failure_${crypto.randomUUID()}`;
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const db = failingDb();
    const prepare = vi.spyOn(db, "prepare");
    expect(await activeSubscriptions(db, environmentId)).toEqual([]);
    expect(await activeSubscriptions(db, environmentId)).toEqual([]);
    expect(await webhooksTrackUsers(db, environmentId, true)).toBe(false);
    expect(prepare).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls.map(([line]) => String(line))).toContainEqual(expect.stringContaining("webhook_subscriptions_unavailable"));
  });

  it("answers an expired entry at once while it is read again in the background", async () => {
    const org = await site("Webhook stale cache");
    const { url } = receiverEndpoint("stale-cache");
    const { id } = await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    expect((await activeSubscriptions(env.DB, org.live.id)).map((subscription) => subscription.id)).toEqual([id]);
    // 11 s later, D1 answers only when the test says.
    const start = performance.now();
    vi.spyOn(performance, "now").mockImplementation(() => start + 11_000);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slowDb = {
      prepare: (sql: string) => {
        const statement = env.DB.prepare(sql);
        return { bind: (...values: unknown[]) => ({ all: async () => (await gate, statement.bind(...values).all()) }) };
      },
    } as unknown as D1Database;
    await env.DB.prepare("UPDATE webhook_subscriptions SET enabled = 0 WHERE id = ?").bind(id).run();
    const answer = await Promise.race([activeSubscriptions(slowDb, org.live.id), new Promise((resolve) => setTimeout(() => resolve("waited on D1"), 200))]);
    expect(answer).toEqual([expect.objectContaining({ id })]);
    release();
    await vi.waitFor(async () => expect(await activeSubscriptions(slowDb, org.live.id)).toEqual([]));
  });
});

describe("thresholds", () => {
  it("crosses 7% of 100 units at the 7th unit (integers, not floating point)", () => {
    const reading = { counterId: "c", consumedUnits: 7, totalUnits: 100, consumedInRequest: true, consumedUnitsInRequest: 1 } as MeterReading;
    const request = { counterId: "c", limit: 100 } as MeterRequest;
    expect(crossedThresholds(reading, request, [7])).toEqual([7]);
    expect(crossedThresholds({ ...reading, consumedUnits: 6 }, request, [7])).toEqual([]);
    expect(crossedThresholds({ ...reading, consumedUnits: 29, totalUnits: 100 }, request, [29])).toEqual([29]);
  });
});

describe("subscription settings", () => {
  it("authenticatedOnly: no events of anonymous visitors, and their decisions do not track them for it", async () => {
    const org = await site("Webhook authenticated only");
    const { url, path } = receiverEndpoint("authenticated-only");
    const created = await call("POST", webhooksPath(org.live.id), {
      key: org.adminKey,
      body: { url, eventTypes: ["user.added", "counter.threshold_reached", "counter.limit_reached"], authenticatedOnly: true },
    });
    expect(created.status).toBe(201);
    expect(created.body.authenticatedOnly).toBe(true);
    expect(await webhooksTrackUsers(env.DB, org.live.id, false)).toBe(false);
    expect(await webhooksTrackUsers(env.DB, org.live.id, true)).toBe(true);
    const visitor = { anonymousIdentifier: `visitor-${crypto.randomUUID()}` };
    for (let decision = 0; decision < 5; decision += 1) await decide(org, visitor);
    await decide(org, { userIdentifier: "member@example.com" });
    await webhooks.deliver();
    const bodies = (await received(path)).map((request) => JSON.parse(request.body));
    expect(bodies.map((body) => [body.type, body.data.identifier])).toEqual([["user.added", "member@example.com"]]);

    const patched = await call("PATCH", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey, body: { authenticatedOnly: false } });
    expect(patched.body.authenticatedOnly).toBe(false);
    expect(await webhooksTrackUsers(env.DB, org.live.id, false)).toBe(true);
  });

  it(`at most ${MAX_SUBSCRIPTIONS_PER_ENVIRONMENT} subscriptions per environment`, async () => {
    const org = await createOrganization("Webhook cap");
    const now = new Date().toISOString();
    await env.DB.batch(
      Array.from({ length: MAX_SUBSCRIPTIONS_PER_ENVIRONMENT }, (_, index) =>
        env.DB.prepare(
          `INSERT INTO webhook_subscriptions (id, organization_id, environment_id, url, event_types, secret, created_at, updated_at) VALUES (?, ?, ?, 'https://hooks.example.com/x', '["*"]', 'v1:x', ?, ?)`,
        ).bind(`wh_cap_${index}_${crypto.randomUUID().slice(0, 8)}`, org.id, org.live.id, now, now),
      ),
    );
    const refused = await call("POST", webhooksPath(org.live.id), { key: org.adminKey, body: { url: "https://hooks.example.com/y", eventTypes: ["*"] } });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/20 webhook subscriptions/);
    // Another environment has its own allowance.
    expect((await call("POST", webhooksPath(org.preview.id), { key: org.adminKey, body: { url: "https://hooks.example.com/y", eventTypes: ["*"] } })).status).toBe(201);
  });

  it("concurrent creates cannot pass the cap together: one of four takes the last place", async () => {
    const org = await createOrganization("Webhook cap race");
    const now = new Date().toISOString();
    await env.DB.batch(
      Array.from({ length: MAX_SUBSCRIPTIONS_PER_ENVIRONMENT - 1 }, (_, index) =>
        env.DB.prepare(
          `INSERT INTO webhook_subscriptions (id, organization_id, environment_id, url, event_types, secret, created_at, updated_at) VALUES (?, ?, ?, 'https://hooks.example.com/x', '["*"]', 'v1:x', ?, ?)`,
        ).bind(`wh_race_${index}_${crypto.randomUUID().slice(0, 8)}`, org.id, org.live.id, now, now),
      ),
    );
    const answers = await Promise.all(
      Array.from({ length: 4 }, (_, index) => call("POST", webhooksPath(org.live.id), { key: org.adminKey, body: { url: `https://hooks.example.com/race-${index}`, eventTypes: ["*"] } })),
    );
    expect(answers.map((answer) => answer.status).sort()).toEqual([201, 409, 409, 409]);
    const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM webhook_subscriptions WHERE environment_id = ?").bind(org.live.id).first<{ n: number }>();
    expect(count!.n).toBe(MAX_SUBSCRIPTIONS_PER_ENVIRONMENT);
  });

  it("webhook.test is no subscribable event type; a forged deliveries cursor is refused", async () => {
    const org = await createOrganization("Webhook nits");
    const refused = await call("POST", webhooksPath(org.live.id), { key: org.adminKey, body: { url: "https://hooks.example.com/x", eventTypes: ["webhook.test"] } });
    expect(refused.status).toBe(400);
    const forged = await call("GET", `${webhooksPath(org.live.id)}/deliveries?cursor=${encodeURIComponent("x' OR 1=1|")}`, { key: org.adminKey });
    expect(forged.status).toBe(400);
    expect(forged.body.code).toBe("validation_failed");
    const valid = await call("GET", `${webhooksPath(org.live.id)}/deliveries?cursor=${encodeURIComponent("2026-01-01T00:00:00.000Z|whd_abc")}`, { key: org.adminKey });
    expect(valid.status).toBe(200);
  });
});
