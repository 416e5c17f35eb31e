/**
 * The live tail: an environment's decisions as server-sent events, from its live tail object. Decisions reach open
 * tails from the flush of the records; an environment nobody tails sends its object nothing.
 */
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { liveTailStub } from "../../../durable-objects/live-tail/client";
import { MAX_UNREAD_BYTES, type DecisionSummary } from "../../../durable-objects/live-tail/LiveTailObject";
import { flushEvents } from "../../../workers/services/events";
import { decisionSummary, MAX_SUMMARY_DENIALS } from "../../../workers/services/liveTail";
import { environmentCacheClock } from "../../../workers/services/tenantCache";
import { call, createOrganization, fetchWorker, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { eventually } from "../../support/eventually";
import { helloWorld } from "../../support/examples";

interface TailEvent {
  event: string;
  data: any;
}

interface Tail {
  status: number;
  body: any;
  /** The next event (comments such as `: ping` are skipped). */
  next(): Promise<TailEvent>;
  close(): Promise<void>;
}

const openTails: Tail[] = [];

/** Opens a tail of `environmentId` with `key`; a refused one carries its error body. */
async function openTail(key: string, environmentId: string): Promise<Tail> {
  const response = await fetchWorker(new Request(`http://platform.test/api/v1/admin/environments/${environmentId}/tail`, { headers: { authorization: `Bearer ${key}` } }));
  if (response.status !== 200) {
    const body = await response.json();
    return { status: response.status, body, next: () => Promise.reject(new Error("no stream")), close: async () => {} };
  }
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const queued: TailEvent[] = [];
  const tail: Tail = {
    status: 200,
    body: null,
    async next() {
      while (queued.length === 0) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the tail ended");
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = message.split("\n").filter((line) => !line.startsWith(":"));
          if (lines.length === 0) continue;
          const event = lines.find((line) => line.startsWith("event: "))?.slice(7) ?? "message";
          const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
          queued.push({ event, data: JSON.parse(data) });
        }
      }
      return queued.shift()!;
    },
    async close() {
      await reader.cancel().catch(() => {});
    },
  };
  openTails.push(tail);
  return tail;
}

afterEach(async () => {
  await Promise.all(openTails.splice(0).map((tail) => tail.close()));
});

const objectOf = (org: TestOrganization, environmentId: string) => liveTailStub(env.LIVE_TAIL, org.id, environmentId);
const publishedBatches = (org: TestOrganization, environmentId: string) => runInDurableObject(objectOf(org, environmentId), (object) => object.publishedBatches);
const openTailsOf = (org: TestOrganization, environmentId: string) => runInDurableObject(objectOf(org, environmentId), (object) => object.openTails);

let org: TestOrganization;
let versionId: string;
beforeAll(async () => {
  org = await createOrganization("Live tail");
  versionId = await publish(org.adminKey, helloWorld(), [org.preview.id, org.live.id]);
});

const decide = (key: string, identifier: string) =>
  call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: identifier } } });

describe("live tail", () => {
  it("streams the environment's decisions made after it opened, and no other environment's", async () => {
    const tail = await openTail(org.adminKey, org.live.id);
    expect(tail.status).toBe(200);
    expect(await tail.next()).toEqual({ event: "ready", data: { environmentId: org.live.id } });

    const elsewhere = await decide(org.preview.secretKey, "tail-elsewhere");
    const tailed = await decide(org.live.secretKey, "tail-visitor");
    expect([elsewhere.status, tailed.status]).toEqual([200, 200]);
    await waitForBackgroundWork();

    const { event, data } = await tail.next();
    expect(event).toBe("decision");
    expect(data).toEqual({
      id: tailed.body.eventId,
      kind: "surface_decision",
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      environmentId: org.live.id,
      identifier: "tail-visitor",
      surfaceSlug: "hello-world",
      outcome: "granted",
      plans: ["anonymous"],
      denials: [],
      durationMs: expect.any(Number),
      versionId,
    });
    expect(data.durationMs).toBeGreaterThanOrEqual(0);

    // A denied decision carries its denials.
    for (let use = 0; use < 3; use++) await decide(org.live.secretKey, "tail-heavy");
    const denied = await decide(org.live.secretKey, "tail-heavy");
    await waitForBackgroundWork();
    const seen: any[] = [];
    while (!seen.some((summary) => summary.id === denied.body.eventId)) seen.push((await tail.next()).data);
    const summary = seen.at(-1);
    expect(summary).toMatchObject({ identifier: "tail-heavy", outcome: "denied", environmentId: org.live.id });
    expect(summary.denials).toEqual([{ featureSlug: "widget", property: "enabled", reason: "limit_reached" }]);
    expect(seen.every((each) => each.environmentId === org.live.id)).toBe(true);
  });

  it("refuses an environment's 11th open tail (429) and takes a new one once a tail has closed", async () => {
    const tails: Tail[] = [];
    for (let i = 0; i < 10; i++) {
      const tail = await openTail(org.adminKey, org.preview.id);
      expect(tail.status).toBe(200);
      await tail.next();
      tails.push(tail);
    }
    const refused = await openTail(org.adminKey, org.preview.id);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ status: "error", statusCode: 429, code: "too_many_requests" });
    expect(refused.body.message).toContain("10 open live tails");
    // Another environment's tails are counted apart.
    expect((await openTail(org.adminKey, org.live.id)).status).toBe(200);

    await tails[0]!.close();
    expect(await eventually(() => openTailsOf(org, org.preview.id), (open) => open === 9)).toBe(9);
    expect((await openTail(org.adminKey, org.preview.id)).status).toBe(200);
  });

  it("is open to every credential that reads the environment's events, and to no other", async () => {
    const reader = await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "tail reader", role: "read-only" } });
    expect(reader.status).toBe(201);
    expect((await openTail(reader.body.key, org.live.id)).status).toBe(200);
    expect((await openTail(org.live.secretKey, org.live.id)).status).toBe(200);

    const otherEnvironmentKey = await openTail(org.preview.secretKey, org.live.id);
    expect(otherEnvironmentKey.status).toBe(403);
    expect(otherEnvironmentKey.body.code).toBe("forbidden");
    expect((await openTail(org.live.publishableKey, org.live.id)).status).toBe(403);

    const stranger = await createOrganization("Live tail stranger");
    const foreign = await openTail(stranger.adminKey, org.live.id);
    expect(foreign.status).toBe(404);
    expect(foreign.body.code).toBe("not_found");
    expect((await openTail("ok_not_a_key", org.live.id)).status).toBe(401);
  });

  it("streams the playground's decisions too", async () => {
    // An organization whose environment no decision call has looked up yet: the playground alone must make the
    // isolate see the tail.
    const played = await createOrganization("Tailed playground");
    await publish(played.adminKey, helloWorld(), [played.live.id]);
    const tail = await openTail(played.adminKey, played.live.id);
    expect((await tail.next()).event).toBe("ready");
    const result = await call("POST", `/api/v1/admin/environments/${played.live.id}/playground`, {
      key: played.adminKey,
      body: { kind: "access_check", request: { identity: { anonymousIdentifier: "played" } } },
    });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    await waitForBackgroundWork();
    await flushEvents();
    expect(await publishedBatches(played, played.live.id)).toBe(1);
    const { event, data } = await tail.next();
    expect(event).toBe("decision");
    expect(data).toMatchObject({ id: result.body.response.eventId, kind: "access_check", identifier: "played", environmentId: played.live.id });
  });

  it("streams a decision whose environment's cache entry aged past its TTL before the flush", async () => {
    const aged = await createOrganization("Tailed, aged entry");
    await publish(aged.adminKey, helloWorld(), [aged.live.id]);
    const tail = await openTail(aged.adminKey, aged.live.id);
    expect((await tail.next()).event).toBe("ready");
    const realNow = environmentCacheClock.now;
    try {
      const decided = await decide(aged.live.secretKey, "aged-entry");
      expect(decided.status).toBe(200);
      // The entry the decision looked up is now stale (its lease, a wall-clock time, still holds).
      environmentCacheClock.now = () => realNow() + 60_000;
      await flushEvents();
      await waitForBackgroundWork();
      expect(await publishedBatches(aged, aged.live.id)).toBe(1);
      expect((await tail.next()).data).toMatchObject({ id: decided.body.eventId, identifier: "aged-entry" });
    } finally {
      environmentCacheClock.now = realNow;
    }
  });

  it("ends a tail after its lifetime with an `end` event; reopening it takes a credential that is still good", async () => {
    const owner = await createOrganization("Tail lifetime");
    const reader = await call("POST", "/api/v1/admin/organization/keys", { key: owner.adminKey, body: { name: "expiring reader", role: "read-only" } });
    const tail = await openTail(reader.body.key, owner.live.id);
    expect((await tail.next()).event).toBe("ready");
    const object = objectOf(owner, owner.live.id);
    // As if its lifetime had passed: the next ping ends it.
    await runInDurableObject(object, (instance) => {
      instance.tailLifetimeMs = 0;
    });
    expect(await runDurableObjectAlarm(object)).toBe(true);
    expect(await tail.next()).toEqual({ event: "end", data: { reason: "expired" } });
    await expect(tail.next()).rejects.toThrow("the tail ended");
    expect(await openTailsOf(owner, owner.live.id)).toBe(0);

    // The client reopens it: refused once the credential is revoked.
    expect((await call("DELETE", `/api/v1/admin/organization/keys/${reader.body.id}`, { key: owner.adminKey })).status).toBeLessThan(300);
    expect((await openTail(reader.body.key, owner.live.id)).status).toBe(401);
  });

  it("drops a client that leaves more than MAX_UNREAD_BYTES unread, and keeps serving the others", async () => {
    const owner = await createOrganization("Tail slow reader");
    const stalled = await openTail(owner.adminKey, owner.live.id); // never read
    const reading = await openTail(owner.adminKey, owner.live.id);
    expect((await reading.next()).event).toBe("ready");
    const object = objectOf(owner, owner.live.id);
    // Few, large chunks (~256 KiB each): far fewer chunks than any count-based bound, more bytes than the byte bound.
    const summary = (index: number): DecisionSummary => ({
      id: `evt_big_${index}`,
      kind: "access_check",
      createdAt: new Date().toISOString(),
      environmentId: owner.live.id,
      identifier: "x".repeat(64 * 1024),
      surfaceSlug: null,
      outcome: "granted",
      plans: [],
      denials: [],
      durationMs: null,
      versionId: null,
    });
    const batches = Math.ceil((8 * MAX_UNREAD_BYTES) / (256 * 1024));
    for (let batch = 0; batch < batches && (await openTailsOf(owner, owner.live.id)) === 2; batch++) {
      await object.publish([0, 1, 2, 3].map((index) => summary(batch * 4 + index)));
      // The reader keeps up.
      for (let index = 0; index < 4; index++) expect((await reading.next()).data.id).toBe(`evt_big_${batch * 4 + index}`);
    }
    expect(await openTailsOf(owner, owner.live.id)).toBe(1);
    await object.publish([{ ...summary(-1), identifier: "after" }]);
    expect((await reading.next()).data.identifier).toBe("after");
    void stalled;
  });

  it("lists at most MAX_SUMMARY_DENIALS denials in a summary, and counts the rest", () => {
    const denials = Array.from({ length: MAX_SUMMARY_DENIALS + 5 }, (_, index) => ({ featureSlug: "f", property: `p${index}`, reason: "off" }));
    const summary = decisionSummary({ id: "evt_1", organizationId: "org", environmentId: "env", kind: "access_check", createdAt: new Date().toISOString(), record: { denials } });
    expect(summary.denials).toEqual(denials.slice(0, MAX_SUMMARY_DENIALS));
    expect(summary.moreDenials).toBe(5);
    expect(decisionSummary({ id: "evt_2", organizationId: "org", environmentId: "env", kind: "access_check", createdAt: "", record: { denials: denials.slice(0, 2) } })).not.toHaveProperty("moreDenials");
  });

  it("costs an environment nobody tails no publication; a tail's lease ends with its last client", async () => {
    const quiet = await createOrganization("Untailed");
    await publish(quiet.adminKey, helloWorld(), [quiet.live.id]);
    for (const identifier of ["quiet-1", "quiet-2"]) expect((await decide(quiet.live.secretKey, identifier)).status).toBe(200);
    await waitForBackgroundWork();
    await flushEvents();
    expect(await publishedBatches(quiet, quiet.live.id)).toBe(0);

    // The same environment once tailed: its decisions are published (one call per flush).
    const tail = await openTail(quiet.adminKey, quiet.live.id);
    await tail.next();
    const lease = () => env.DB.prepare("SELECT tail_lease_until FROM environments WHERE id = ?").bind(quiet.live.id).first<number | null>("tail_lease_until");
    expect(await lease()).toBeGreaterThan(Date.now());
    await decide(quiet.live.secretKey, "quiet-3");
    await waitForBackgroundWork();
    expect((await tail.next()).data.identifier).toBe("quiet-3");
    expect(await publishedBatches(quiet, quiet.live.id)).toBe(1);

    await tail.close();
    expect(await eventually(lease, (until) => until === null)).toBeNull();
  });
});
