/**
 * Outbound webhooks (workers/webhooks): subscriptions per environment, events a decision publishes (plan.changed,
 * user.added, counter thresholds), deliveries signed per Standard Webhooks to a local receiver, retries with backoff,
 * dead deliveries, replay, and who may see them.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import wranglerToml from "../../../wrangler.toml?raw";
import {
  signedHeaders,
  WEBHOOK_DEAD_LETTER_QUEUE,
  WEBHOOK_MAX_RETRIES,
  WEBHOOK_QUEUE,
  webhookRetryDelaySeconds,
} from "../../../workers/webhooks/delivery";
import { checkEndpointUrl } from "../../../workers/webhooks/subscriptions";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { type CapturedWebhooks, captureWebhooks, deliverWebhookMessages, failNext, received, receiverEndpoint, subscribe, webhooksPath } from "./helpers";

let webhooks: CapturedWebhooks;
beforeEach(() => {
  webhooks = captureWebhooks();
});
afterEach(() => webhooks.restore());

/** Hello World with a widget limit of 5 (80% is the 4th unit) and a Premium plan linked to a Stripe product. */
async function site(name: string, workflows?: Record<string, unknown>): Promise<TestOrganization> {
  const org = await createOrganization(name);
  const document = helloWorld();
  if (workflows) document.workflows = workflows;
  document.plans.anonymous.features.widget.enabled = { metered: { limit: 5, period: "lifetime" } };
  document.plans.premium.stripeProductIds = ["prod_premium"];
  await publish(org.adminKey, document, [org.live.id]);
  return org;
}

const decide = (org: TestOrganization, identity: Record<string, unknown>) =>
  call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity } });

const deliveries = async (org: TestOrganization, query = "") =>
  (await call("GET", `${webhooksPath(org.live.id)}/deliveries${query}`, { key: org.adminKey })).body.deliveries as Record<string, any>[];

describe("subscriptions", () => {
  it("are created with a secret shown once, listed, changed, rotated and deleted", async () => {
    const org = await site("Webhook CRUD");
    const { url } = receiverEndpoint("crud");
    const created = await call("POST", webhooksPath(org.live.id), {
      key: org.adminKey,
      body: { url, eventTypes: ["plan.changed", "counter.threshold_reached"], thresholds: [90, 50], description: "CRM" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ url, eventTypes: ["counter.threshold_reached", "plan.changed"], thresholds: [50, 90], enabled: true, description: "CRM" });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    // Stored encrypted, never shown again.
    const stored = await env.DB.prepare("SELECT secret FROM webhook_subscriptions WHERE id = ?").bind(created.body.id).first<{ secret: string }>();
    expect(stored!.secret).toMatch(/^v1:/);
    expect(stored!.secret).not.toContain(created.body.secret.slice(6));
    const listed = await call("GET", webhooksPath(org.live.id), { key: org.adminKey });
    expect(listed.body.subscriptions).toHaveLength(1);
    expect(listed.body.subscriptions[0]).not.toHaveProperty("secret");
    const got = await call("GET", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey });
    expect(got.status).toBe(200);
    expect(got.body).not.toHaveProperty("secret");

    const patched = await call("PATCH", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey, body: { eventTypes: ["*"], enabled: false } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ eventTypes: ["*"], enabled: false, thresholds: [50, 90] });

    const rotated = await call("POST", `${webhooksPath(org.live.id)}/${created.body.id}/rotate-secret`, { key: org.adminKey });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);

    expect((await call("DELETE", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey })).status).toBe(200);
    expect((await call("GET", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey })).status).toBe(404);
    expect((await call("DELETE", `${webhooksPath(org.live.id)}/${created.body.id}`, { key: org.adminKey })).status).toBe(404);
  });

  it.each([
    ["plain http to a public host", { url: "http://hooks.example.com/x", eventTypes: ["*"] }, /https/],
    ["a private address", { url: "https://10.0.0.7/x", eventTypes: ["*"] }, /private/],
    ["a link-local address", { url: "https://169.254.169.254/latest", eventTypes: ["*"] }, /private/],
    ["an IPv6 loopback over https", { url: "https://[::1]/x", eventTypes: ["*"] }, /private/],
    ["localhost with a trailing dot", { url: "https://localhost./x", eventTypes: ["*"] }, /private/],
    ["a .localhost name with a trailing dot", { url: "https://foo.localhost./x", eventTypes: ["*"] }, /private/],
    ["an IPv4-compatible IPv6 loopback", { url: "https://[::127.0.0.1]/x", eventTypes: ["*"] }, /private/],
    ["an IPv4-compatible IPv6 address in hex", { url: "https://[::7f00:1]/x", eventTypes: ["*"] }, /private/],
    ["an IPv4-mapped private address", { url: "https://[::ffff:10.0.0.1]/x", eventTypes: ["*"] }, /private/],
    ["NAT64 of a private address", { url: "https://[64:ff9b::10.0.0.1]/x", eventTypes: ["*"] }, /private/],
    ["6to4 of a private address", { url: "https://[2002:c0a8:101::1]/x", eventTypes: ["*"] }, /private/],
    ["a site-local IPv6 address", { url: "https://[fec0::1]/x", eventTypes: ["*"] }, /private/],
    ["an IPv6 multicast address", { url: "https://[ff02::1]/x", eventTypes: ["*"] }, /private/],
    ["a benchmarking address", { url: "https://198.18.0.1/x", eventTypes: ["*"] }, /private/],
    ["a carrier-grade NAT address", { url: "https://100.64.0.1/x", eventTypes: ["*"] }, /private/],
    ["0.0.0.0/8", { url: "https://0.1.2.3/x", eventTypes: ["*"] }, /private/],
    ["a reserved address", { url: "https://240.0.0.1/x", eventTypes: ["*"] }, /private/],
    ["a loopback address in hex", { url: "https://0x7f.1/x", eventTypes: ["*"] }, /private/],
    ["credentials in the URL", { url: "https://user:pw@hooks.example.com/x", eventTypes: ["*"] }, /credentials/],
    ["not a URL", { url: "hooks.example.com", eventTypes: ["*"] }, /absolute URL/],
    ["an unknown event type", { url: "https://hooks.example.com/x", eventTypes: ["plan.exploded"] }, /eventTypes/],
    ["no event type", { url: "https://hooks.example.com/x", eventTypes: [] }, /eventTypes/],
    ["a threshold over 100", { url: "https://hooks.example.com/x", eventTypes: ["*"], thresholds: [120] }, /thresholds/],
  ])("refuses %s", async (_, body, message) => {
    const org = await createOrganization("Webhook validation");
    const refused = await call("POST", webhooksPath(org.live.id), { key: org.adminKey, body });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(message);
    expect((await call("GET", webhooksPath(org.live.id), { key: org.adminKey })).body.subscriptions).toEqual([]);
  });

  it("accept public hosts and addresses on any port", () => {
    for (const url of [
      "https://hooks.example.com:8443/x",
      "https://hooks.example.com./x",
      "https://8.8.8.8/x",
      "https://[2606:4700:4700::1111]/x",
      "https://[64:ff9b::8.8.8.8]/x",
      "https://[2002:808:808::1]/x",
    ]) {
      expect(checkEndpointUrl(url, { allowInsecureLocalhost: false }), url).toBe(new URL(url).toString());
    }
  });

  it("are the environment's: another organization cannot see, change or replay them", async () => {
    const org = await site("Webhook owner");
    const stranger = await createOrganization("Webhook stranger");
    const { url, path } = receiverEndpoint("owned");
    const subscription = await subscribe(org, org.live.id, { url, eventTypes: ["*"] });
    await decide(org, { userIdentifier: "owned@example.com" });
    await webhooks.deliver();
    expect(await received(path)).toHaveLength(1);
    const [delivery] = await deliveries(org);

    for (const [method, suffix] of [
      ["GET", ""],
      ["GET", `/${subscription.id}`],
      ["PATCH", `/${subscription.id}`],
      ["DELETE", `/${subscription.id}`],
      ["GET", "/deliveries"],
      ["GET", `/deliveries/${delivery!.id}`],
      ["POST", `/deliveries/${delivery!.id}/replay`],
    ] as const) {
      const refused = await call(method, `${webhooksPath(org.live.id)}${suffix}`, { key: stranger.adminKey, body: method === "PATCH" ? { enabled: false } : undefined });
      expect(refused.status, `${method} ${suffix}`).toBe(404);
    }
    // Its own environment does not have them either.
    expect((await call("GET", `${webhooksPath(stranger.live.id)}/deliveries/${delivery!.id}`, { key: stranger.adminKey })).status).toBe(404);
    expect((await call("POST", `${webhooksPath(stranger.live.id)}/deliveries/${delivery!.id}/replay`, { key: stranger.adminKey })).status).toBe(404);
    // Another environment's key of the same organization is refused too; the environment's own key may read.
    expect((await call("GET", webhooksPath(org.live.id), { key: org.preview.secretKey })).status).toBe(403);
    expect((await call("GET", webhooksPath(org.live.id), { key: org.live.secretKey })).status).toBe(200);
    expect(webhooks.sent).toHaveLength(1);
    expect(await received(path)).toHaveLength(1);
  });
});

describe("events from decisions", () => {
  it("a new user and a plan change reach the endpoint signed per Standard Webhooks", async () => {
    // No action workflow listens to plans.changed: the subscription alone makes the meter remember the user's plans.
    const org = await site("Webhook plans");
    const { url, path } = receiverEndpoint("plans");
    const { secret } = await subscribe(org, org.live.id, { url, eventTypes: ["plan.changed", "user.added"] });
    const identity = { userIdentifier: "upgrader@example.com" };

    expect((await decide(org, identity)).status).toBe(200);
    const put = await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/upgrader@example.com`, { key: org.adminKey, body: { stripeProductIds: ["prod_premium"] } });
    expect(put.status).toBe(200);
    expect((await decide(org, identity)).status).toBe(200);
    const results = await webhooks.deliver();
    expect(results.retryMessages).toEqual([]);

    const requests = await received(path);
    expect(requests.map((request) => JSON.parse(request.body).type)).toEqual(["user.added", "plan.changed"]);
    const verifier = new Webhook(secret);
    for (const request of requests) {
      expect(request.method).toBe("POST");
      expect(request.headers["content-type"]).toBe("application/json");
      expect(request.headers["webhook-id"]).toMatch(/^msg_/);
      expect(Math.abs(Number(request.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
      // Throws on a bad signature.
      verifier.verify(request.body, request.headers);
    }
    const planChanged = JSON.parse(requests[1]!.body);
    expect(planChanged).toMatchObject({ type: "plan.changed", data: { identifier: "upgrader@example.com", from: ["registered"], to: ["premium", "registered"], reason: "decision" } });
    expect(Date.parse(planChanged.timestamp)).not.toBeNaN();
    // Another secret does not verify it.
    expect(() => new Webhook(`whsec_${btoa("another secret of enough length!")}`).verify(requests[1]!.body, requests[1]!.headers)).toThrow();

    const listed = await deliveries(org);
    expect(listed.map((delivery) => [delivery.eventType, delivery.status, delivery.attempts, delivery.lastStatusCode]).sort()).toEqual([
      ["plan.changed", "delivered", 1, 204],
      ["user.added", "delivered", 1, 204],
    ]);
    expect(listed.map((delivery) => delivery.eventId).sort()).toEqual(requests.map((request) => request.headers["webhook-id"]).sort());
  });

  it("the 80% threshold and the limit are each published once, to the subscriptions that asked", async () => {
    const org = await site("Webhook thresholds");
    const counters = receiverEndpoint("counters");
    const limitOnly = receiverEndpoint("limit-only");
    const plans = receiverEndpoint("plans-only");
    await subscribe(org, org.live.id, { url: counters.url, eventTypes: ["counter.threshold_reached", "counter.limit_reached"] });
    await subscribe(org, org.live.id, { url: limitOnly.url, eventTypes: ["counter.limit_reached"] });
    await subscribe(org, org.live.id, { url: plans.url, eventTypes: ["plan.changed"] });
    const identity = { anonymousIdentifier: `reader-${crypto.randomUUID()}` };
    // Seven decisions: units 1–5 consumed, the last two refused (nothing consumed, nothing crossed).
    for (let decision = 0; decision < 7; decision += 1) expect((await decide(org, identity)).status).toBe(200);
    await webhooks.deliver();

    const bodies = (await received(counters.path)).map((request) => JSON.parse(request.body));
    expect(bodies.map((body) => [body.type, body.data.consumedUnits, body.data.threshold])).toEqual([
      ["counter.threshold_reached", 4, 80],
      ["counter.limit_reached", 5, undefined],
    ]);
    expect(bodies[1].data).toMatchObject({ identifier: identity.anonymousIdentifier, totalUnits: 5, remainingUnits: 0 });
    expect(bodies[1].data.counterId).toMatch(/^default:feat_/);
    expect((await received(limitOnly.path)).map((request) => JSON.parse(request.body).type)).toEqual(["counter.limit_reached"]);
    expect(await received(plans.path)).toEqual([]);
  });

  it("a threshold list of its own: 40% and 100% of 5 units", async () => {
    const org = await site("Webhook own thresholds");
    const { url, path } = receiverEndpoint("own-thresholds");
    await subscribe(org, org.live.id, { url, eventTypes: ["counter.threshold_reached"], thresholds: [40, 100] });
    const identity = { anonymousIdentifier: `reader-${crypto.randomUUID()}` };
    for (let decision = 0; decision < 6; decision += 1) await decide(org, identity);
    await webhooks.deliver();
    const bodies = (await received(path)).map((request) => JSON.parse(request.body));
    expect(bodies.map((body) => [body.type, body.data.threshold, body.data.consumedUnits])).toEqual([
      ["counter.threshold_reached", 40, 2],
      ["counter.threshold_reached", 100, 5],
    ]);
  });

  it("an environment without subscriptions sends nothing", async () => {
    const org = await site("Webhook none");
    for (let decision = 0; decision < 5; decision += 1) await decide(org, { anonymousIdentifier: "quiet" });
    await decide(org, { userIdentifier: "quiet@example.com" });
    await webhooks.deliver();
    expect(webhooks.sent).toEqual([]);
    expect(await deliveries(org)).toEqual([]);
  });
});

describe("delivery", () => {
  it("retries with a growing delay while the receiver fails, then is delivered", async () => {
    const org = await site("Webhook retries");
    const { url, path } = receiverEndpoint("retries");
    await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    await failNext(path, 2, 503);
    await decide(org, { userIdentifier: "retried@example.com" });
    const first = await webhooks.deliver(1);
    expect(first.retryDelays).toEqual([webhookRetryDelaySeconds(1)]);
    let [delivery] = await deliveries(org);
    expect(delivery).toMatchObject({ status: "failed", attempts: 1, lastStatusCode: 503 });
    expect(delivery!.lastError).toMatch(/^HTTP 503/);
    expect(Date.parse(delivery!.nextAttemptAt)).toBeGreaterThan(Date.now());
    // Its own retry is queued: a replay would start a second chain of attempts beside it.
    const refused = await call("POST", `${webhooksPath(org.live.id)}/deliveries/${delivery!.id}/replay`, { key: org.adminKey });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain(`being retried (next attempt at ${delivery!.nextAttemptAt}); replay it once it is dead`);
    expect(webhooks.sent).toHaveLength(1);
    expect((await deliveries(org))[0]).toMatchObject({ status: "failed", attempts: 1, nextAttemptAt: delivery!.nextAttemptAt });

    const [message] = webhooks.sent;
    const second = await deliverWebhookMessages([message!], 2);
    expect(second.retryDelays).toEqual([webhookRetryDelaySeconds(2)]);
    expect((await deliveries(org))[0]).toMatchObject({ status: "failed", attempts: 2 });
    const third = await deliverWebhookMessages([message!], 3);
    expect(third.retryMessages).toEqual([]);
    [delivery] = await deliveries(org);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 3, lastStatusCode: 204, lastError: null, nextAttemptAt: null });
    const requests = await received(path);
    expect(requests.map((request) => request.status)).toEqual([503, 503, 204]);
    // One event: the same webhook-id on every attempt.
    expect(new Set(requests.map((request) => request.headers["webhook-id"])).size).toBe(1);
    expect(webhookRetryDelaySeconds(2)).toBe(2 * webhookRetryDelaySeconds(1));
    expect(webhookRetryDelaySeconds(30)).toBe(3600);
  });

  it("is dead after the last attempt, listed as a dead letter, and a replay sends it again with the same webhook-id", async () => {
    const org = await site("Webhook dead");
    const { url, path } = receiverEndpoint("dead");
    await subscribe(org, org.live.id, { url, eventTypes: ["user.added"] });
    await failNext(path, 1, 500);
    await decide(org, { userIdentifier: "dead@example.com" });
    await webhooks.deliver(WEBHOOK_MAX_RETRIES + 1);

    const dead = await call("GET", `${webhooksPath(org.live.id)}/dead-letters`, { key: org.adminKey });
    expect(dead.status).toBe(200);
    expect(dead.body.deliveries).toHaveLength(1);
    const delivery = dead.body.deliveries[0];
    expect(delivery).toMatchObject({ status: "dead", eventType: "user.added", lastStatusCode: 500, nextAttemptAt: null });
    expect((await deliveries(org, "?status=dead")).map((found) => found.id)).toEqual([delivery.id]);
    expect(await deliveries(org, "?status=delivered")).toEqual([]);

    const replayed = await call("POST", `${webhooksPath(org.live.id)}/deliveries/${delivery.id}/replay`, { key: org.adminKey });
    expect(replayed.status).toBe(202);
    expect(replayed.body.status).toBe("pending");
    // A second replay while it is pending is refused.
    expect((await call("POST", `${webhooksPath(org.live.id)}/deliveries/${delivery.id}/replay`, { key: org.adminKey })).status).toBe(409);
    await webhooks.deliver();
    const requests = await received(path);
    expect(requests.map((request) => request.status)).toEqual([500, 204]);
    expect(requests[1]!.headers["webhook-id"]).toBe(requests[0]!.headers["webhook-id"]);
    expect(requests[1]!.body).toBe(requests[0]!.body);
    expect((await call("GET", `${webhooksPath(org.live.id)}/deliveries/${delivery.id}`, { key: org.adminKey })).body).toMatchObject({ status: "delivered", attempts: 2 });
    expect((await call("GET", `${webhooksPath(org.live.id)}/dead-letters`, { key: org.adminKey })).body.deliveries).toEqual([]);

    // A delivered one can be replayed too, still under the same webhook-id.
    expect((await call("POST", `${webhooksPath(org.live.id)}/deliveries/${delivery.id}/replay`, { key: org.adminKey })).status).toBe(202);
    await webhooks.deliver();
    expect((await received(path)).map((request) => request.headers["webhook-id"])).toEqual(Array(3).fill(requests[0]!.headers["webhook-id"]));
  });

  it("a delivery whose subscription was deleted or disabled meanwhile is dropped", async () => {
    const org = await site("Webhook dropped");
    const deleted = receiverEndpoint("deleted");
    const disabled = receiverEndpoint("disabled");
    const gone = await subscribe(org, org.live.id, { url: deleted.url, eventTypes: ["user.added"] });
    const off = await subscribe(org, org.live.id, { url: disabled.url, eventTypes: ["user.added"] });
    await decide(org, { userIdentifier: "dropped@example.com" });
    expect(await call("DELETE", `${webhooksPath(org.live.id)}/${gone.id}`, { key: org.adminKey })).toMatchObject({ status: 200 });
    expect(await call("PATCH", `${webhooksPath(org.live.id)}/${off.id}`, { key: org.adminKey, body: { enabled: false } })).toMatchObject({ status: 200 });
    const result = await webhooks.deliver();
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(2);
    expect(await received(deleted.path)).toEqual([]);
    expect(await received(disabled.path)).toEqual([]);
    const rows = await deliveries(org);
    expect(rows.map((row) => row.status)).toEqual(["dropped", "dropped"]);
    expect(rows.map((row) => row.lastError).sort()).toEqual(["the subscription is disabled", "the subscription was deleted"]);
  });

  it("a test event reaches the endpoint on request", async () => {
    const org = await site("Webhook test-send");
    const { url, path } = receiverEndpoint("test-send");
    const { id, secret } = await subscribe(org, org.live.id, { url, eventTypes: ["plan.changed"] });
    const sent = await call("POST", `${webhooksPath(org.live.id)}/${id}/test`, { key: org.adminKey });
    expect(sent.status).toBe(202);
    await webhooks.deliver();
    const [request] = await received(path);
    expect(new Webhook(secret).verify(request!.body, request!.headers)).toMatchObject({ type: "webhook.test", data: { subscriptionId: id } });
    expect(request!.headers["webhook-id"]).toBe(sent.body.eventId);
  });
});

describe("signing and settings", () => {
  it("signs as the Standard Webhooks specification's example", () => {
    const headers = signedHeaders("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", '{"test": 2432232314}', new Date(1614265330 * 1000));
    expect(headers).toMatchObject({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });

  it("the consumer's constants are wrangler.toml's: queue names and max_retries", () => {
    const consumers = wranglerToml
      .split(/^\[\[/m)
      .filter((section) => section.startsWith("queues.consumers]]"))
      .map((section) => Object.fromEntries([...section.matchAll(/^(\w+)\s*=\s*"?([^"\n]*)"?\s*$/gm)].map(([, key, value]) => [key, value])));
    expect(wranglerToml).toMatch(new RegExp(`binding = "WEBHOOKS"\\s*\\nqueue = "${WEBHOOK_QUEUE}"`));
    expect(consumers).toContainEqual(expect.objectContaining({ queue: WEBHOOK_QUEUE, max_retries: String(WEBHOOK_MAX_RETRIES), dead_letter_queue: WEBHOOK_DEAD_LETTER_QUEUE }));
    expect(consumers).toContainEqual(expect.objectContaining({ queue: WEBHOOK_DEAD_LETTER_QUEUE }));
    // Plain http to localhost is a development setting only.
    expect(wranglerToml).not.toMatch(/WEBHOOKS_ALLOW_INSECURE_LOCALHOST/);
  });
});
