/**
 * Failed action workflows and dead letters: every failed run is an `action_failed` event of its environment (with
 * the attempt and whether the message is retried or dead-lettered); a message still failing on the queue's last
 * attempt is kept as a dead letter — by the consumer itself, or, when it could not write it, by the dead-letter
 * queue's consumer — and the admin API lists, retries and deletes dead letters. The queue handler is driven as the
 * queue would (test/support/triggers.ts), with the attempts the queue counts.
 */
import { PAYMENT_MAX_RETRIES, PAYMENT_QUEUE } from "../../../workers/workflows/paymentEvents";
import { WEBHOOK_DEAD_LETTER_QUEUE, WEBHOOK_MAX_RETRIES, WEBHOOK_QUEUE } from "../../../workers/webhooks/delivery";
import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import wranglerToml from "../../../wrangler.toml?raw";
import { meterStub } from "../../../durable-objects/meter/client";
import worker from "../../../workers/index";
import { storeDeadLetter } from "../../../workers/services/deadLetters";
import { DEAD_LETTER_MAX_RETRIES, DEAD_LETTER_QUEUE, TRIGGER_MAX_RETRIES, TRIGGER_QUEUE } from "../../../workers/workflows/actions";
import type { TriggerMessage } from "../../../workers/workflows/triggers";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { trackedExecutionContext } from "../../support/background";
import { expectConsoleError } from "../../support/console";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";
import { captureTriggers, deliverMessages, queuedTrigger, type QueuedTrigger } from "../../support/triggers";

const LAST_ATTEMPT = TRIGGER_MAX_RETRIES + 1;

const FAILING = `export default () => { throw new Error("downstream is down"); };`;
const FIXED = `export default async ({ payload, utils }: any) => { await utils.customData.set("flaky", { fixed: true, payload }); };`;

function documentWith(flakySource: string) {
  const document = helloWorld();
  document.triggers = { "flaky.thing": {}, "long.error": {}, "user.signed-up": {}, "flaky.pair": {}, "chain.start": {} };
  document.workflows = {
    "always-fails": { type: "action", triggers: ["flaky.thing"], source: flakySource },
    "fails-at-length": { type: "action", triggers: ["long.error"], source: `export default () => { throw new Error("x".repeat(3_000)); };` },
    "remember-signup": {
      type: "action",
      triggers: ["user.signed-up"],
      source: `export default async ({ utils }: any) => { await utils.customData.set("signup", true); };`,
    },
    "pair-a": { type: "action", triggers: ["flaky.pair"], source: `export default () => { throw new Error("a is down"); };` },
    "pair-b": { type: "action", triggers: ["flaky.pair"], source: `export default () => { throw new Error("b is down"); };` },
    chained: { type: "action", triggers: ["chain.start"], source: `export default async ({ utils }: any) => { await utils.triggers.fire("user.signed-up", {}); };` },
  };
  return document;
}

interface Setup {
  org: TestOrganization;
  versionId: string;
  trigger(name: string, identifier: string, payload?: unknown): TriggerMessage;
}

async function setup(name: string): Promise<Setup> {
  const org = await createOrganization(name);
  const versionId = await publish(org.adminKey, documentWith(FAILING), [org.live.id]);
  return {
    org,
    versionId,
    trigger: (trigger, identifier, payload = { n: 1 }) => ({
      organizationId: org.id,
      environmentId: org.live.id,
      versionId,
      identifier,
      authenticated: true,
      trigger,
      payload,
      firedAt: new Date().toISOString(),
    }),
  };
}

/** The same queue message on its `attempts`-th delivery. */
const attempt = (message: QueuedTrigger, attempts: number): QueuedTrigger => ({ ...message, attempts });

async function actionFailures(org: TestOrganization) {
  const events = await eventsFor(org.live.secretKey, `environmentId=${org.live.id}&limit=500`, 0);
  return events.filter((event) => event.kind === "action_failed").sort((a, b) => a.record.attempt - b.record.attempt);
}

async function deadLetters(org: TestOrganization, key = org.live.secretKey, query = "") {
  return call("GET", `/api/v1/admin/environments/${org.live.id}/dead-letters${query}`, { key });
}

/** A D1 whose statements matching `pattern` fail, as a D1 outage would: the rest of the Worker's bindings unchanged. */
function envWithFailingWrites(pattern: RegExp): Env {
  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          if (pattern.test(sql)) throw new Error("D1_ERROR: injected outage");
          return target.prepare(sql);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...env, DB: db };
}

const customData = (org: TestOrganization, identifier: string, key: string) => meterStub(env.METER, `${org.id}:default:u`, identifier).customDataGet(key);

describe("failed action runs", () => {
  it("are events on every attempt — retrying, then dead_lettered on the last — and the last attempt keeps a dead letter", async () => {
    const { org, versionId, trigger } = await setup("Failed actions");
    const message = queuedTrigger(trigger("flaky.thing", "ada@example.com"));
    for (let attempts = 1; attempts < LAST_ATTEMPT; attempts++) {
      const result = await deliverMessages([attempt(message, attempts)]);
      expect(result.retryMessages).toEqual([{ msgId: message.id }]);
      expect(result.explicitAcks).toEqual([]);
    }
    // Kept as a dead letter, so the queue has nothing left to do with it.
    const last = await deliverMessages([attempt(message, LAST_ATTEMPT)]);
    expect(last.explicitAcks).toEqual([message.id]);
    expect(last.retryMessages).toEqual([]);

    const failures = await actionFailures(org);
    expect(failures.map((event) => [event.record.attempt, event.record.state])).toEqual([
      [1, "retrying"],
      [2, "retrying"],
      [3, "retrying"],
      [4, "dead_lettered"],
    ]);
    for (const event of failures) {
      expect(event).toMatchObject({ environmentId: org.live.id, identifier: "ada@example.com", outcome: "failed" });
      expect(event.record).toMatchObject({
        workflows: [{ slug: "always-fails", type: "action", ok: false, kind: "threw", error: "downstream is down" }],
        trigger: "flaky.thing",
        maxAttempts: LAST_ATTEMPT,
        queueMessageId: message.id,
        versionId,
      });
    }

    const summary = {
      id: failures[3].record.deadLetterId,
      environmentId: org.live.id,
      trigger: "flaky.thing",
      identifier: "ada@example.com",
      messageTruncated: false,
      workflows: ["always-fails"],
      lastError: "always-fails (threw): downstream is down",
      attempts: LAST_ATTEMPT,
      state: "dead",
      createdAt: expect.any(String),
      retriedAt: null,
    };
    // Listed without the message it keeps (up to a queue message's size each); read one to get it.
    const listed = await deadLetters(org);
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ deadLetters: [summary], nextCursor: null });
    const one = await call("GET", `/api/v1/admin/environments/${org.live.id}/dead-letters/${summary.id}`, { key: org.live.secretKey });
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ ...summary, message: message.body });
    expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/dead-letters/${summary.id}`, { key: org.adminKey })).status).toBe(404);
  });

  it("of one attempt are written in one batch: all of them or none", async () => {
    const { org, trigger } = await setup("Failed actions in one batch");
    expectConsoleError("action_failure_not_recorded");
    // The second event's statement fails: written one by one, the first would be on record and then again on the retry.
    let eventStatements = 0;
    const db = new Proxy(env.DB, {
      get(target, property) {
        if (property === "prepare") {
          return (sql: string) => {
            if (/INTO events/.test(sql) && ++eventStatements === 2) throw new Error("D1_ERROR: injected failure");
            return target.prepare(sql);
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const message = queuedTrigger(trigger("flaky.pair", "pair@example.com"));
    expect((await deliverMessages([message], { env: { ...env, DB: db } })).retryMessages).toEqual([{ msgId: message.id }]);
    expect(eventStatements).toBe(2);
    expect(await actionFailures(org)).toEqual([]);

    await deliverMessages([attempt(message, 2)]);
    const failures = await actionFailures(org);
    expect(failures.map((event) => event.record.workflows[0].slug).sort()).toEqual(["pair-a", "pair-b"]);
    expect(failures.every((event) => event.record.attempt === 2 && event.record.failedRuns === 2)).toBe(true);
  });

  it("are retried after a delay that grows with the attempts", async () => {
    const { trigger } = await setup("Retry backoff");
    const delays: unknown[] = [];
    for (let attempts = 1; attempts < LAST_ATTEMPT; attempts++) {
      const batch = createMessageBatch<TriggerMessage>(TRIGGER_QUEUE, [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts, body: trigger("flaky.thing", "slow@example.com") }]);
      const retry = vi.spyOn(batch.messages[0]!, "retry");
      await worker.queue(batch, env, trackedExecutionContext());
      expect(retry).toHaveBeenCalledTimes(1);
      delays.push(retry.mock.calls[0]![0]);
    }
    expect(delays).toEqual([{ delaySeconds: 5 }, { delaySeconds: 10 }, { delaySeconds: 20 }]);
  });

  it("an action whose fired triggers the queue refuses fails its message: retried, then a dead letter that says why", async () => {
    const { org, trigger } = await setup("Follow-up triggers refused");
    expectConsoleError("triggers_not_enqueued");
    const refused = vi.spyOn(env.TRIGGERS as Queue<TriggerMessage>, "sendBatch").mockRejectedValue(new Error("Queue send failed: queue is overloaded"));
    try {
      const message = queuedTrigger(trigger("chain.start", "chain@example.com"));
      expect((await deliverMessages([message])).retryMessages).toEqual([{ msgId: message.id }]);
      const last = await deliverMessages([attempt(message, LAST_ATTEMPT)]);
      expect(last.explicitAcks).toEqual([message.id]);
      expect(refused).toHaveBeenCalledTimes(2);

      const failures = await actionFailures(org);
      expect(failures.map((event) => [event.record.attempt, event.record.state])).toEqual([
        [1, "retrying"],
        [LAST_ATTEMPT, "dead_lettered"],
      ]);
      expect(failures[0].record).toMatchObject({
        workflows: [{ slug: "chained", type: "action", ok: true }],
        error: expect.stringMatching(/could not be enqueued: user\.signed-up, the queue refused it: .*overloaded/),
      });
      const [deadLetter] = (await deadLetters(org)).body.deadLetters;
      expect(deadLetter).toMatchObject({ id: failures[1].record.deadLetterId, trigger: "chain.start", lastError: expect.stringMatching(/could not be enqueued: user\.signed-up/) });
    } finally {
      refused.mockRestore();
    }
  });

  it("keep their error text and the stored message bounded; a dead letter whose payload could not be kept is not retried", async () => {
    const { org, trigger } = await setup("Bounded failures");
    const long = queuedTrigger(trigger("long.error", "long@example.com"), LAST_ATTEMPT);
    const huge = queuedTrigger(trigger("flaky.thing", "huge@example.com", { blob: "y".repeat(200 * 1024) }), LAST_ATTEMPT);
    const result = await deliverMessages([long, huge]);
    expect(result.explicitAcks.sort()).toEqual([long.id, huge.id].sort());

    const [event] = (await actionFailures(org)).filter((candidate) => candidate.identifier === "long@example.com");
    const error: string = event.record.workflows[0].error;
    expect(error).toHaveLength(2_000);
    expect(error.endsWith("…")).toBe(true);

    const { deadLetters: kept } = (await deadLetters(org)).body;
    const longLetter = kept.find((letter: any) => letter.identifier === "long@example.com");
    expect(longLetter.lastError.length).toBeLessThanOrEqual(2_000);
    expect(longLetter.lastError.startsWith("fails-at-length (threw): xxx")).toBe(true);
    const hugeLetter = kept.find((letter: any) => letter.identifier === "huge@example.com");
    expect(hugeLetter).toMatchObject({ messageTruncated: true });
    const hugeRead = await call("GET", `/api/v1/admin/environments/${org.live.id}/dead-letters/${hugeLetter.id}`, { key: org.live.secretKey });
    expect(hugeRead.body.message).toEqual({ ...huge.body, payload: null });
    const retried = await call("POST", `/api/v1/admin/environments/${org.live.id}/dead-letters/${hugeLetter.id}/retry`, { key: org.live.secretKey });
    expect(retried.status).toBe(409);
    expect(retried.body.message).toMatch(/payload was too large to keep/);
  });
});

describe("dead letters through the admin API", () => {
  it("are listed at most 50 at a time: a larger limit is read as 50", async () => {
    const { org } = await setup("Dead letter page size");
    await Promise.all(
      Array.from({ length: 52 }, (_, n) =>
        storeDeadLetter(env.DB, {
          organizationId: org.id,
          environmentId: org.live.id,
          queueMessageId: `page-size-${n}`,
          trigger: "flaky.thing",
          identifier: null,
          message: {},
          messageTruncated: false,
          workflows: ["always-fails"],
          lastError: "down",
          attempts: 3,
        }),
      ),
    );
    for (const query of ["", "?limit=51", "?limit=1000"]) {
      const page = await deadLetters(org, org.live.secretKey, query);
      expect(page.status).toBe(200);
      expect(page.body.deadLetters).toHaveLength(50);
      expect(page.body.nextCursor).toEqual(expect.any(String));
    }
    expect((await deadLetters(org, org.live.secretKey, "?limit=0")).body.code).toBe("validation_failed");
  });

  it("go with their environment when it is deleted", async () => {
    const org = await createOrganization("Dead letters of a deleted environment");
    const created = await call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: "scratch", type: "preview" } });
    const environmentId: string = created.body.environment.id;
    const kept = async (id: string) => (await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE environment_id = ?").bind(id).first<{ n: number }>())!.n;
    for (const id of [environmentId, org.live.id]) {
      await storeDeadLetter(env.DB, {
        organizationId: org.id,
        environmentId: id,
        queueMessageId: `msg-${crypto.randomUUID()}`,
        trigger: "flaky.thing",
        identifier: "gone@example.com",
        message: {},
        messageTruncated: false,
        workflows: ["always-fails"],
        lastError: "x",
        attempts: LAST_ATTEMPT,
      });
    }
    expect(await kept(environmentId)).toBe(1);
    expect((await call("DELETE", `/api/v1/admin/environments/${environmentId}`, { key: org.adminKey })).status).toBe(200);
    expect(await kept(environmentId)).toBe(0);
    expect(await kept(org.live.id)).toBe(1);
  });

  it("a retry sends the message to the trigger queue once, against the deployed version, and runs the action; delete removes it", async () => {
    const { org, trigger } = await setup("Retry dead letters");
    const message = queuedTrigger(trigger("flaky.thing", "grace@example.com", { order: 7 }), LAST_ATTEMPT);
    expect((await deliverMessages([message])).explicitAcks).toEqual([message.id]);
    const [deadLetter] = (await deadLetters(org)).body.deadLetters;
    expect(deadLetter.state).toBe("dead");

    // The workflow is fixed and deployed; the retry runs the fix.
    const fixedVersionId = await publish(org.adminKey, documentWith(FIXED), [org.live.id]);
    const triggers = captureTriggers();
    try {
      const path = `/api/v1/admin/environments/${org.live.id}/dead-letters/${deadLetter.id}`;
      const retried = await call("POST", `${path}/retry`, { key: org.live.secretKey });
      expect(retried.status).toBe(200);
      expect(retried.body).toMatchObject({ id: deadLetter.id, state: "retried", retriedAt: expect.any(String) });
      expect(triggers.sent).toEqual([{ ...message.body, versionId: fixedVersionId, retryOf: deadLetter.id }]);
      await triggers.deliver();
      expect(await customData(org, "grace@example.com", "flaky")).toEqual({ fixed: true, payload: { order: 7 } });

      // Once: the message is on its way; a second retry would run the actions twice.
      const again = await call("POST", `${path}/retry`, { key: org.live.secretKey });
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({ status: "error", code: "conflict", message: expect.stringMatching(/already retried/) });
      expect(triggers.sent).toHaveLength(1);

      expect((await deadLetters(org, org.live.secretKey, "?state=retried")).body.deadLetters.map((letter: any) => letter.id)).toEqual([deadLetter.id]);
      expect((await deadLetters(org, org.live.secretKey, "?state=dead")).body.deadLetters).toEqual([]);

      expect((await call("DELETE", path, { key: org.live.secretKey })).body).toEqual({ deleted: true });
      expect((await deadLetters(org)).body.deadLetters).toEqual([]);
      expect((await call("DELETE", path, { key: org.live.secretKey })).status).toBe(404);
    } finally {
      await triggers.restore();
    }
  });

  it("are listed a page at a time, newest first", async () => {
    const { org, trigger } = await setup("Dead letter pages");
    for (const identifier of ["p1", "p2", "p3"]) {
      const message = queuedTrigger(trigger("flaky.thing", identifier), LAST_ATTEMPT);
      expect((await deliverMessages([message])).explicitAcks).toEqual([message.id]);
    }
    const first = await deadLetters(org, org.live.secretKey, "?limit=2");
    expect(first.body.deadLetters.map((letter: any) => letter.identifier)).toEqual(["p3", "p2"]);
    const second = await deadLetters(org, org.live.secretKey, `?limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`);
    expect(second.body).toMatchObject({ deadLetters: [{ identifier: "p1" }], nextCursor: null });
  });

  it("another organization's key can neither list, retry nor delete them (404), not even through its own environment", async () => {
    const { org, trigger } = await setup("Dead letter owner");
    const stranger = await createOrganization("Dead letter stranger");
    const message = queuedTrigger(trigger("flaky.thing", "owned@example.com"), LAST_ATTEMPT);
    await deliverMessages([message]);
    const [deadLetter] = (await deadLetters(org)).body.deadLetters;

    const key = stranger.live.secretKey;
    expect((await deadLetters(org, key)).status).toBe(404);
    for (const environmentId of [org.live.id, stranger.live.id]) {
      const path = `/api/v1/admin/environments/${environmentId}/dead-letters/${deadLetter.id}`;
      expect((await call("POST", `${path}/retry`, { key })).status).toBe(404);
      expect((await call("DELETE", path, { key })).status).toBe(404);
    }
    expect((await call("GET", `/api/v1/admin/environments/${stranger.live.id}/dead-letters`, { key })).body.deadLetters).toEqual([]);
    expect((await deadLetters(org)).body.deadLetters).toEqual([expect.objectContaining({ id: deadLetter.id, state: "dead" })]);
  });
});

describe("nothing is lost when D1 fails", () => {
  it("a failure that could not be recorded is never acked, and the dead-letter queue's consumer keeps what the last attempt could not", async () => {
    const { org, trigger } = await setup("D1 outage");
    expectConsoleError("action_failure_not_recorded");
    expectConsoleError("dead_letter_not_stored");
    const eventsDown = envWithFailingWrites(/INTO events/);
    const deadLettersDown = envWithFailingWrites(/INTO dead_letters/);

    const early = queuedTrigger(trigger("flaky.thing", "early@example.com"), 2);
    expect((await deliverMessages([early], { env: eventsDown })).retryMessages).toEqual([{ msgId: early.id }]);

    // The last attempt: its events or its dead letter not written → not acked, so the queue dead-letters it… but a
    // dead letter the consumer could write is kept even when the events were not: it knows what failed and why.
    const unrecorded = queuedTrigger(trigger("flaky.thing", "unrecorded@example.com"), LAST_ATTEMPT);
    const unstored = queuedTrigger(trigger("flaky.thing", "unstored@example.com"), LAST_ATTEMPT);
    const first = await deliverMessages([unrecorded], { env: eventsDown });
    const second = await deliverMessages([unstored], { env: deadLettersDown });
    expect([...first.retryMessages, ...second.retryMessages]).toEqual([{ msgId: unrecorded.id }, { msgId: unstored.id }]);
    expect([...first.explicitAcks, ...second.explicitAcks]).toEqual([]);
    expect((await deadLetters(org)).body.deadLetters).toEqual([
      expect.objectContaining({ identifier: "unrecorded@example.com", workflows: ["always-fails"], lastError: "always-fails (threw): downstream is down" }),
    ]);

    // …and the dead-letter queue's consumer stores it (the same message keeps its dead letter id), without running it.
    const signup = queuedTrigger(trigger("user.signed-up", "dlq-signup@example.com"), 1);
    const dlq = await deliverMessages([unrecorded, unstored, signup].map((message) => attempt(message, 1)), { queue: DEAD_LETTER_QUEUE });
    expect(dlq.explicitAcks.sort()).toEqual([unrecorded.id, unstored.id, signup.id].sort());
    expect(await customData(org, "dlq-signup@example.com", "signup")).toBeNull();

    const kept = (await deadLetters(org)).body.deadLetters;
    expect(kept.map((letter: any) => letter.identifier).sort()).toEqual(["dlq-signup@example.com", "unrecorded@example.com", "unstored@example.com"]);
    for (const letter of kept) {
      const knownWhy = letter.identifier === "unrecorded@example.com";
      expect(letter).toMatchObject({
        workflows: knownWhy ? ["always-fails"] : [],
        lastError: knownWhy ? "always-fails (threw): downstream is down" : expect.stringMatching(/dead-lettered this message/),
        attempts: LAST_ATTEMPT,
        state: "dead",
        messageTruncated: false,
      });
    }
    const unstoredEvent = (await actionFailures(org)).find((event) => event.identifier === "unstored@example.com");
    expect(unstoredEvent.record.state).toBe("dead_lettered");
    expect(kept.find((letter: any) => letter.identifier === "unstored@example.com").id).toBe(unstoredEvent.record.deadLetterId);

    // A redelivery of a dead letter already kept keeps one.
    await deliverMessages([attempt(unstored, 2)], { queue: DEAD_LETTER_QUEUE });
    expect((await deadLetters(org)).body.deadLetters).toHaveLength(3);
  });

  it("the dead-letter queue's consumer retries what D1 refuses", async () => {
    const { org, trigger } = await setup("D1 outage at the dead-letter queue");
    expectConsoleError("dead_letter_not_stored");
    const message = queuedTrigger(trigger("flaky.thing", "later@example.com"), 1);
    const result = await deliverMessages([message], { queue: DEAD_LETTER_QUEUE, env: envWithFailingWrites(/INTO dead_letters/) });
    expect(result.retryMessages).toEqual([{ msgId: message.id }]);
    expect((await deadLetters(org)).body.deadLetters).toEqual([]);
  });
});

describe("the queue settings", () => {
  /** The `[[queues.consumers]]` tables of wrangler.toml, as `key = value` pairs. */
  const consumers = wranglerToml
    .split(/^\[\[/m)
    .filter((section) => section.startsWith("queues.consumers]]"))
    .map((section) => Object.fromEntries([...section.matchAll(/^(\w+)\s*=\s*"?([^"\n]*)"?\s*$/gm)].map(([, key, value]) => [key, value])));

  it("the consumer's constants are wrangler.toml's: queue names and max_retries", () => {
    expect(wranglerToml).toMatch(new RegExp(`binding = "TRIGGERS"\\s*\\nqueue = "${TRIGGER_QUEUE}"`));
    expect(consumers).toEqual([
      expect.objectContaining({ queue: TRIGGER_QUEUE, max_retries: String(TRIGGER_MAX_RETRIES), dead_letter_queue: DEAD_LETTER_QUEUE }),
      expect.objectContaining({ queue: DEAD_LETTER_QUEUE, max_retries: String(DEAD_LETTER_MAX_RETRIES) }),
      expect.objectContaining({ queue: PAYMENT_QUEUE, max_retries: String(PAYMENT_MAX_RETRIES) }),
      expect.objectContaining({ queue: WEBHOOK_QUEUE, max_retries: String(WEBHOOK_MAX_RETRIES), dead_letter_queue: WEBHOOK_DEAD_LETTER_QUEUE }),
      expect.objectContaining({ queue: WEBHOOK_DEAD_LETTER_QUEUE }),
    ]);
    expect(wranglerToml).toMatch(new RegExp(`binding = "PAYMENTS"\\s*\\nqueue = "${PAYMENT_QUEUE}"`));
    expect(consumers[1]).not.toHaveProperty("dead_letter_queue");
  });
});
