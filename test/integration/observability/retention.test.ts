/**
 * Retention of the embedded event store: the hourly cron deletes events older than EVENT_RETENTION_DAYS (every
 * environment, through the environment/time index, in bounded statements) and metric rollups past theirs; recent
 * events stay, "0" keeps everything, and a run that spends its budget says so and leaves the rest for the next.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventRetentionDays, pruneExpiredEvents } from "../../../workers/services/retention";
import worker from "../../../workers/index";

const DAY = 24 * 60 * 60 * 1000;
// The real clock: the D1 database is shared with other test files, whose fresh events must never look expired.
const NOW = Date.now();

/** Events of a made-up environment, `ageDays` old each (the table is shared: each test uses its own ids). */
async function seed(environmentId: string, ageDays: number[]): Promise<void> {
  await env.DB.batch(
    ageDays.map((age, index) =>
      env.DB.prepare("INSERT INTO events (id, organization_id, environment_id, kind, created_at, record) VALUES (?, 'org_retention', ?, 'access_check', ?, '{}')").bind(
        `evt_${environmentId}_${index}`,
        environmentId,
        new Date(NOW - age * DAY).toISOString(),
      ),
    ),
  );
}

const left = async (environmentId: string) =>
  (await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE environment_id = ?").bind(environmentId).first<{ n: number }>())!.n;

describe("event retention", () => {
  it("reads EVENT_RETENTION_DAYS: days, 0 for forever, the default for anything else", () => {
    expect(eventRetentionDays("7")).toBe(7);
    expect(eventRetentionDays("0")).toBeNull();
    for (const odd of [undefined, "", "-1", "1.5", "soon"]) expect(eventRetentionDays(odd)).toBe(30);
  });

  it("deletes every environment's events past the retention and keeps the recent ones", async () => {
    const [first, second] = [`env_ret_a_${crypto.randomUUID()}`, `env_ret_b_${crypto.randomUUID()}`];
    await seed(first, [1, 29, 31, 400]);
    await seed(second, [45, 2]);
    const report = await pruneExpiredEvents(env.DB, NOW, 30);
    expect(report.incomplete).toBe(false);
    expect(report.deleted).toBeGreaterThanOrEqual(3);
    expect(await left(first)).toBe(2);
    expect(await left(second)).toBe(1);
  });

  it("keeps everything with retention 0, and stops at its statement budget", async () => {
    const environments = [`env_ret_c_${crypto.randomUUID()}`, `env_ret_d_${crypto.randomUUID()}`];
    for (const environmentId of environments) await seed(environmentId, [60, 61]);
    expect(await pruneExpiredEvents(env.DB, NOW, null)).toEqual({ deleted: 0, environments: 0, incomplete: false });
    for (const environmentId of environments) expect(await left(environmentId)).toBe(2);
    // A budget of one statement cannot reach both environments.
    const capped = await pruneExpiredEvents(env.DB, NOW, 30, 1);
    expect(capped.incomplete).toBe(true);
    await pruneExpiredEvents(env.DB, NOW, 30);
    for (const environmentId of environments) expect(await left(environmentId)).toBe(0);
  });

  it("runs from the Worker's scheduled handler with the configured retention", async () => {
    const environmentId = `env_ret_e_${crypto.randomUUID()}`;
    await seed(environmentId, [0, 31]);
    const controller = { scheduledTime: NOW + 0, cron: "17 * * * *", noRetry: () => undefined } as ScheduledController;
    await worker.scheduled!(controller, { ...env, EVENT_RETENTION_DAYS: "30" });
    // The 0-day-old one is from NOW, the handler's clock: it stays.
    expect(await left(environmentId)).toBe(1);
  });
});
