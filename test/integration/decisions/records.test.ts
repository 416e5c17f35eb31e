/**
 * One tenant's data never costs another tenant its records: a record is bounded in size (truncated with a marker),
 * and a batch D1 refuses is written in parts, so only the record D1 refuses on its own is lost — and logged.
 */
import { describe, expect, it } from "vitest";
import { boundedRecordJson, flushEvents, MAX_RECORD_BYTES, recordEvent, type EventInput } from "../../../workers/services/events";
import { call, createOrganization, publish } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";

/**
 * A D1 stand-in whose batches fail as a whole when any statement carries a refused id, like D1's transactions. It
 * counts the records' inserts (a batch also carries the records' metric rollups, and a flush may prune old ones).
 */
function fakeDatabase(refusedIds: ReadonlySet<string>) {
  const written: string[] = [];
  const batches: number[] = [];
  const db = {
    prepare: (sql: string) => ({ bind: (...values: unknown[]) => ({ id: values[0] as string, sql, run: async () => ({}) }) }),
    batch: async (all: { id: string; sql: string }[]) => {
      const statements = all.filter((statement) => statement.sql.includes("INTO events"));
      batches.push(statements.length);
      if (statements.some((statement) => refusedIds.has(statement.id))) throw new Error("D1_ERROR: string or blob too big: SQLITE_TOOBIG");
      written.push(...statements.map((statement) => statement.id));
      return [];
    },
  } as unknown as D1Database;
  return { db, written, batches };
}

const event = (id: string, organizationId = "org_a"): EventInput & { id: string } => ({ id, organizationId, environmentId: "env_a", kind: "access_check", record: {} });

describe("decision records", () => {
  it("a batch D1 refuses is written in parts: every other tenant's record is kept, the refused one logged", async () => {
    // Files share this isolate's record buffer (vitest isolate: false): what earlier files left in it goes to D1 first.
    await flushEvents();
    const { db, written, batches } = fakeDatabase(new Set(["evt_bad"]));
    const ctx = { waitUntil: () => {} };
    for (const id of ["evt_1", "evt_2", "evt_bad", "evt_4", "evt_5"]) recordEvent(ctx, db, event(id, id === "evt_bad" ? "org_noisy" : "org_other"));
    const logged = expectConsoleError("decision_record_not_written");
    await flushEvents();
    expect(written.sort()).toEqual(["evt_1", "evt_2", "evt_4", "evt_5"]);
    expect(batches[0]).toBe(5);
    expect(logged.lines).toHaveLength(1);
    expect(JSON.parse(logged.lines[0]!).records).toEqual([{ id: "evt_bad", organizationId: "org_noisy", kind: "access_check" }]);
  });

  it("when D1 itself fails, a flush makes a bounded number of calls and logs every record it could not write", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `evt_down_${i}`);
    await flushEvents();
    const { db, written, batches } = fakeDatabase(new Set(ids));
    // The 50th record fills the batch: recordEvent flushes it itself, in the work it hands to waitUntil.
    const background: Promise<unknown>[] = [];
    const ctx = { waitUntil: (work: Promise<unknown>) => void background.push(work) };
    const logged = expectConsoleError("decision_record_not_written");
    for (const id of ids) recordEvent(ctx, db, event(id));
    await Promise.all(background);
    await flushEvents();
    expect(written).toEqual([]);
    expect(batches.length).toBeLessThanOrEqual(24);
    expect(JSON.parse(logged.lines[0]!).records.map((record: { id: string }) => record.id).sort()).toEqual([...ids].sort());
  });

  it("a record over the size limit keeps its small fields and says what was left out", () => {
    const record = { outcome: "granted", plans: ["free"], features: { huge: "x".repeat(MAX_RECORD_BYTES) } };
    const stored = JSON.parse(boundedRecordJson(record));
    expect(stored).toEqual({ outcome: "granted", plans: ["free"], truncated: { bytes: expect.any(Number), limit: MAX_RECORD_BYTES, fields: ["features"] } });
    // The workflow runs, when they had to go, stay as a summary.
    const runs = Array.from({ length: 3 }, (_, i) => ({ slug: `w${i}`, type: "feature", ok: false, kind: "bad_result", error: "x".repeat(MAX_RECORD_BYTES) }));
    expect(JSON.parse(boundedRecordJson({ workflows: runs })).workflows).toEqual(runs.map(({ slug, type, ok, kind }) => ({ slug, type, ok, kind })));
    expect(stored.truncated.bytes).toBeGreaterThan(MAX_RECORD_BYTES);
    expect(boundedRecordJson({ small: true })).toBe('{"small":true}');
  });

  it("a feature workflow that sets thousands of unknown properties leaves one bounded refusal on its record", async () => {
    const org = await createOrganization("Noisy workflow");
    const document = helloWorld();
    document.workflows = {
      noisy: { type: "feature", feature: "widget", source: `export default () => Object.fromEntries(Array.from({ length: 20000 }, (_, i) => ["k" + i, 1]));` },
    };
    await publish(org.adminKey, document, [org.live.id]);
    const result = await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: "n" } } });
    expect(result.status).toBe(200);
    const [recorded] = await eventsFor(org.live.secretKey, `identifier=n&kind=surface_decision`);
    const refusals = recorded.record.workflows.filter((run: { slug: string; ok: boolean }) => run.slug === "noisy" && !run.ok);
    expect(refusals).toHaveLength(1);
    expect(refusals[0].error).toMatch(/^cannot set k0 to 1, k1 to 1, .* \(and 19990 more\)$/);
  });
});
