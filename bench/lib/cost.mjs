/**
 * Cost per million decisions at Cloudflare's published prices (bench/prices.json), from what a measured run used:
 * Worker requests and CPU, Durable Object requests, duration and SQLite rows, D1 rows, analytics data points, queue
 * operations. How each figure is measured or derived, and its limits, is in bench/README.md ("Cost per million").
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export function loadPrices(root) {
  return JSON.parse(readFileSync(join(root, "bench/prices.json"), "utf8"));
}

const clockTicksPerSecond = (() => {
  const ticks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

function statOf(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: the fields that follow start after its last ")".
    const close = text.lastIndexOf(")");
    const name = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // After the name: state(0) ppid(1) … utime(11) stime(12), in clock ticks.
    return { pid, name, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** The workerd processes miniflare started (descendants of this Node process), for their CPU time. Linux only. */
export function workerdProcesses(parentPid = process.pid) {
  let stats;
  try {
    stats = readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .map((pid) => statOf(Number(pid)))
      .filter(Boolean);
  } catch {
    return [];
  }
  const descendants = new Set([parentPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const stat of stats) {
      if (!descendants.has(stat.pid) && descendants.has(stat.ppid)) {
        descendants.add(stat.pid);
        grew = true;
      }
    }
  }
  return stats.filter((stat) => stat.pid !== parentPid && descendants.has(stat.pid) && stat.name.includes("workerd")).map((stat) => stat.pid);
}

/** CPU seconds (user + system) the given processes have used so far; null when /proc cannot be read. */
export function cpuSecondsOf(pids) {
  if (!pids.length) return null;
  let ticks = 0;
  for (const pid of pids) {
    const stat = statOf(pid);
    if (!stat) return null;
    ticks += stat.cpuTicks;
  }
  return ticks / clockTicksPerSecond;
}

const minuteOf = (iso) => new Date(Math.floor(Date.parse(iso) / 60_000) * 60_000).toISOString();

/** Every meter object's SQLite file under miniflare's Durable Object persistence directory (a few levels down). */
function sqliteFiles(dir, depth = 0, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && depth < 3) sqliteFiles(path, depth + 1, found);
    else if (entry.isFile() && entry.name.endsWith(".sqlite")) found.push(path);
  }
  return found;
}

/** The schema statements (tables, then indexes, in creation order) of one written meter object, read from its file. */
async function meterSchemaStatements(durableObjectsDir) {
  const { DatabaseSync } = await import("node:sqlite");
  for (const file of sqliteFiles(durableObjectsDir)) {
    let database;
    try {
      database = new DatabaseSync(file, { readOnly: true });
      const statements = database
        .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
        .all()
        .map((row) => row.sql);
      if (statements.some((sql) => /CREATE TABLE\s+(IF NOT EXISTS\s+)?counters\b/i.test(sql))) return statements;
    } catch {
      /* locked, or not a meter object: try the next */
    } finally {
      database?.close();
    }
  }
  return null;
}

/**
 * Rows the runtime counts for the writes a decision causes, measured rather than assumed: each statement is replayed
 * in a scratch D1 database, whose `meta.rows_written` / `rows_read` come from the same SQLite accounting as a
 * SQLite-backed Durable Object's (an index adds a written row; DDL writes rows too).
 * - `eventInsert`: one decision record (the `events` table with its indexes, copied from the Worker's D1);
 * - `meterSchema`: a new meter object's first write creates its schema (copied from a written object's file);
 * - `counterInsert` / `counterUpdate` / `counterRead`: a consumption upserting its counter row, first and later
 *   (the statement of MeterObject.writeCounter), and the lookup every meter call makes.
 * A figure that cannot be measured (e.g. no meter object was written) is null.
 */
export async function calibrateRows({ db, scratch, durableObjectsDir }) {
  const run = async (sql, ...values) => (await scratch.prepare(sql).bind(...values).run()).meta;
  const written = async (statements) => {
    let rows = 0;
    for (const sql of statements) rows += (await run(sql)).rows_written ?? 0;
    return rows;
  };
  const rows = { eventInsert: null, meterSchema: null, meterSchemaEntries: null, counterInsert: null, counterUpdate: null, counterRead: null };
  try {
    const eventsSchema = await db.prepare("SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL ORDER BY rowid").all();
    await written(eventsSchema.results.map((row) => row.sql));
    const insert = await run(
      "INSERT OR IGNORE INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      "evt_calibration", "org", "env", "surface_decision", new Date().toISOString(), "someone", "hello-world", "granted", "{}",
    );
    rows.eventInsert = insert.rows_written;
  } catch {
    /* leave null */
  }
  try {
    const schema = await meterSchemaStatements(durableObjectsDir);
    if (schema) {
      rows.meterSchemaEntries = schema.length;
      rows.meterSchema = await written(schema);
      const upsert = `INSERT INTO counters (counter_id, period, time_zone, period_start, consumed) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (counter_id) DO UPDATE SET period = excluded.period, time_zone = excluded.time_zone,
          period_start = excluded.period_start, consumed = excluded.consumed`;
      rows.counterInsert = (await run(upsert, "calibration", "lifetime", "UTC", 0, 1)).rows_written;
      rows.counterUpdate = (await run(upsert, "calibration", "lifetime", "UTC", 0, 2)).rows_written;
      rows.counterRead = (await run("SELECT period_start, consumed FROM counters WHERE counter_id = ?", "calibration")).rows_read;
    }
  } catch {
    /* leave null */
  }
  return rows;
}

/**
 * What the decisions recorded in [from, to) of one environment used, from their decision records in D1: how many
 * there were, how many called the meter object, the meter stage's wall time, how many units they consumed, and how
 * many of those were an object's first write (a consumption that brought a counter to 1).
 */
export async function recordedUsage(db, { environmentId, from, to }) {
  const window = [environmentId, from, to];
  const decisions = await db
    .prepare(
      `SELECT COUNT(*) AS decisions,
              COALESCE(SUM(CASE WHEN json_extract(record, '$.meter.status') IN ('ok', 'fallback') THEN 1 ELSE 0 END), 0) AS meterCalls,
              COALESCE(SUM(COALESCE(json_extract(record, '$.timings.meter'), 0)), 0) AS meterMs,
              -- What the decision log sends per record (services/decisionLog.ts LoggedRecord: the columns and the record's JSON).
              COALESCE(AVG(length(CAST(record AS BLOB)) + length(id) + length(organization_id) + length(environment_id) + length(kind) + length(created_at)
                + COALESCE(length(identifier), 0) + COALESCE(length(surface_slug), 0) + COALESCE(length(outcome), 0) + 120), 0) AS recordBytes
         FROM events
        WHERE environment_id = ? AND created_at >= ? AND created_at < ? AND kind IN ('access_check', 'surface_decision')`,
    )
    .bind(...window)
    .first();
  const consumption = await db
    .prepare(
      `SELECT COUNT(*) AS consumptions,
              COALESCE(SUM(CASE WHEN json_extract(p.value, '$.consumedUnits') = 1 THEN 1 ELSE 0 END), 0) AS firstUnits
         FROM events AS e, json_each(e.record, '$.features') AS f, json_each(f.value, '$.properties') AS p
        WHERE e.environment_id = ? AND e.created_at >= ? AND e.created_at < ? AND e.kind IN ('access_check', 'surface_decision')
          AND json_extract(p.value, '$.consumedInRequest') = 1`,
    )
    .bind(...window)
    .first();
  // What the decision log sends per record: records above 4 KB go gzip-compressed and base64-encoded
  // (workers/services/decisionLog.ts packRecordText); node:zlib's gzip stands in for the runtime's CompressionStream.
  const sample = await db
    .prepare(
      `SELECT record, length(id) + length(organization_id) + length(environment_id) + length(kind) + length(created_at)
              + COALESCE(length(identifier), 0) + COALESCE(length(surface_slug), 0) + COALESCE(length(outcome), 0) + 120 AS columns
         FROM events WHERE environment_id = ? AND created_at >= ? AND created_at < ? AND kind IN ('access_check', 'surface_decision') LIMIT 200`,
    )
    .bind(...window)
    .all();
  const loggedBytes = sample.results.length
    ? sample.results.reduce((sum, row) => {
        const bytes = Buffer.byteLength(row.record);
        return sum + row.columns + (bytes <= 4096 ? bytes : 3 + Math.ceil(gzipSync(row.record).length / 3) * 4);
      }, 0) / sample.results.length
    : 0;
  const rollups = await db
    .prepare("SELECT COUNT(*) AS n FROM metric_rollups WHERE environment_id = ? AND minute >= ? AND minute <= ?")
    .bind(environmentId, minuteOf(from), minuteOf(to))
    .first()
    .catch(() => ({ n: 0 }));
  return {
    decisions: Number(decisions?.decisions ?? 0),
    meterCalls: Number(decisions?.meterCalls ?? 0),
    meterMs: Number(decisions?.meterMs ?? 0),
    recordBytes: Number(decisions?.recordBytes ?? 0),
    loggedBytes,
    consumptions: Number(consumption?.consumptions ?? 0),
    firstUnits: Number(consumption?.firstUnits ?? 0),
    rollupRowsTouched: Number(rollups?.n ?? 0),
  };
}

// Rollups are summed per isolate and written every 10 s (workers/services/metrics.ts ROLLUP_WRITE_INTERVAL_MS).
const ROLLUP_WRITE_INTERVAL_S = 10;

/**
 * Per-decision usage of one measured window. `requests`: responses autocannon counted; `seconds`: the window's
 * length; `cpuSeconds`: workerd's CPU over it; `recorded`: recordedUsage(); `rows`: calibrateRows().
 */
export function usagePerDecision({ requests, seconds, cpuSeconds, recorded, rows }) {
  if (!requests || !recorded?.decisions) return null;
  const per = (value) => value / recorded.decisions;
  const known = (...values) => values.every((value) => value !== null && value !== undefined);
  const rollupWrites = recorded.rollupRowsTouched * Math.max(1, Math.ceil(seconds / ROLLUP_WRITE_INTERVAL_S));
  const laterUnits = recorded.consumptions - recorded.firstUnits;
  // A consumption that brings a counter to 1 is taken as the object's first write (exact for one-counter configs
  // such as hello-world): schema, then the counter row. Reads: the counter lookup of every call, plus the schema
  // check (sqlite_master) of each object started — counted for new objects only, so it is a lower bound; at
  // $0.001 per million rows it never shows in the total.
  const objectRowsWritten =
    recorded.consumptions === 0
      ? 0
      : known(rows.meterSchema, rows.counterInsert, rows.counterUpdate)
        ? per(recorded.firstUnits * (rows.meterSchema + rows.counterInsert) + laterUnits * rows.counterUpdate)
        : null;
  const objectRowsRead = recorded.meterCalls === 0 ? 0 : known(rows.counterRead, rows.meterSchemaEntries) ? per(recorded.meterCalls * rows.counterRead + recorded.firstUnits * rows.meterSchemaEntries) : null;
  return {
    recordedShare: recorded.decisions / requests,
    workerRequests: 1,
    workerCpuMs: cpuSeconds === null ? null : (cpuSeconds * 1000) / requests,
    durableObjectRequests: per(recorded.meterCalls),
    meterMs: per(recorded.meterMs),
    newObjects: per(recorded.firstUnits),
    durableObjectRowsRead: objectRowsRead,
    durableObjectRowsWritten: objectRowsWritten,
    // The hot path reads D1 only through per-isolate caches (keys, environments, snapshots, subscriptions): a few
    // reads per cache expiry, not per decision. Not measured; counted as 0.
    d1RowsRead: 0,
    d1RowsWritten: rows.eventInsert === null ? null : per(recorded.decisions * rows.eventInsert + rollupWrites),
    analyticsDataPoints: 0,
    queueOperations: 0,
    pipelinesSinkBytes: 0,
    // For the production sink (costPerMillion's `sink: "cloudflare"`): the same rollup rows as Analytics Engine points,
    // and the record's bytes as the decision log's stream takes them.
    rollupRowsWritten: per(rollupWrites),
    recordBytes: recorded.recordBytes,
    loggedBytes: recorded.loggedBytes ?? recorded.recordBytes,
  };
}

const LINES = [
  ["workerRequests", "Worker requests"],
  ["workerCpuMs", "Worker CPU"],
  ["durableObjectRequests", "DO requests"],
  ["durableObjectGbSeconds", "DO duration"],
  ["durableObjectRowsRead", "DO rows read"],
  ["durableObjectRowsWritten", "DO rows written"],
  ["d1RowsRead", "D1 rows read"],
  ["d1RowsWritten", "D1 rows written"],
  ["analyticsDataPoints", "analytics data points"],
  ["queueOperations", "queue operations"],
  ["pipelinesSinkBytes", "Pipelines sink"],
];

/**
 * The usage of the same decisions with the production event sink (EVENT_SINK = "cloudflare", workers/services/
 * eventStore.ts): no D1 row per record or rollup; the rollup rows as Analytics Engine data points; every record's
 * bytes through the Pipelines stream's Iceberg sink; no queue operation in the steady state (the queue carries only
 * what the stream refused).
 */
function withProductionSink(usage) {
  return { ...usage, d1RowsWritten: 0, analyticsDataPoints: usage.rollupRowsWritten ?? 0, pipelinesSinkBytes: usage.loggedBytes ?? usage.recordBytes ?? 0, queueOperations: 0 };
}

/**
 * $ per million decisions, per line and in total, with the dominant line: with the embedded D1 sink the run used, or
 * (`sink: "cloudflare"`) with the production sink.
 */
export function costPerMillion(measured, prices, { sink = "d1" } = {}) {
  if (!measured) return null;
  const usage = sink === "cloudflare" ? withProductionSink(measured) : measured;
  const memoryGb = prices.assumptions?.durableObjectMemoryGb ?? 0.125;
  // Duration: the meter stage's wall time as the Worker saw it (call, object's work, return) × the object's memory.
  const filled = { ...usage, durableObjectGbSeconds: (usage.meterMs / 1000) * memoryGb };
  const lines = {};
  let total = 0;
  let incomplete = false;
  for (const [key, label] of LINES) {
    const quantity = filled[key];
    const price = prices.prices[key]?.perMillion;
    if (quantity === null || quantity === undefined || price === undefined) {
      incomplete = true;
      lines[label] = null;
      continue;
    }
    // quantity per decision × 1e6 decisions × price per 1e6 units = quantity × price.
    const dollars = quantity * price;
    lines[label] = dollars;
    total += dollars;
  }
  const dominant = Object.entries(lines)
    .filter(([, dollars]) => dollars !== null)
    .sort((a, b) => b[1] - a[1])[0];
  return { total, lines, dominant: dominant ? { line: dominant[0], dollars: dominant[1], share: total ? dominant[1] / total : 0 } : null, incomplete, usage: filled };
}
