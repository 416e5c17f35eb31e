/**
 * A fake of the two Cloudflare query APIs the production event sink reads (workers/services/eventStore.ts), and of
 * the two places its data goes in, for tests: nothing in the test suite may call Cloudflare.
 *
 * - `POST /client/v4/accounts/{account}/analytics_engine/sql` — Workers Analytics Engine's SQL API: the query as the
 *   body, a bearer token, `FORMAT JSON` answers `{meta, data, rows}` (64-bit integers quoted, as ClickHouse's JSON
 *   does). The dataset is a table with Analytics Engine's columns (timestamp, _sample_interval, index1, blob1…20,
 *   double1…20). The query runs on SQLite (node:sqlite) after the few dialect words the platform uses are mapped:
 *   intDiv, toUInt32, toDateTime (unix seconds or 'YYYY-MM-DD hh:mm:ss'), if, quantileExactWeighted(q)(x, w). Anything else is SQLite's own —
 *   a query that only SQLite understood would pass here and fail on Cloudflare, so the platform keeps to the
 *   documented functions.
 * - `POST /r2sql/accounts/{account}/r2-sql/query/{bucket}` — R2 SQL: `{warehouse, query}`, answering
 *   `{success, result: {schema, rows, metrics}, errors, messages}`; the pipeline's table `namespace.table` with the
 *   columns the decision log sends plus `__ingest_ts` (ISO text).
 * - `POST /__ingest/analytics` `{dataset, points: [{indexes, blobs, doubles, sampleInterval?, timestamp?}]}` and
 *   `POST /__ingest/pipeline` `{table, records}`: what the tests' stand-ins of the Analytics Engine and Pipelines
 *   bindings deliver (test/support/cloudflareSink.ts).
 * - `POST /__control/fail` `{path, status}`: the next request whose path starts with `path` fails once with `status`.
 *
 * State is in memory, one database for the run; tests stay apart by their own organizations and environments.
 * Run on its own with `node test/fake-cloudflare-events/server.mjs [port]`.
 */
import { createServer } from "node:http";
import { DatabaseSync } from "node:sqlite";

export const FAKE_TOKEN = "test-events-api-token";
const BLOBS = Array.from({ length: 20 }, (_, i) => `blob${i + 1}`);
const DOUBLES = Array.from({ length: 20 }, (_, i) => `double${i + 1}`);
const LOG_COLUMNS = ["id", "organization_id", "environment_id", "kind", "created_at", "identifier", "surface_slug", "outcome", "record", "__ingest_ts"];
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function openDatabase() {
  const db = new DatabaseSync(":memory:");
  db.function("intDiv", (a, b) => Math.floor(Number(a) / Number(b)));
  db.function("toUInt32", (value) => Math.floor(Number(value)));
  // toDateTime takes unix seconds or 'YYYY-MM-DD hh:mm:ss' (UTC); the dataset stores timestamps as unix seconds.
  db.function("toDateTime", (value) => (typeof value === "string" && !/^\d+$/.test(value) ? Math.floor(Date.parse(`${value.replace(" ", "T")}Z`) / 1000) : Math.floor(Number(value))));
  // ClickHouse's quantileExactWeighted: the smallest value whose cumulative weight reaches q of the total.
  db.aggregate("quantile_exact_weighted", {
    start: () => [],
    step: (pairs, q, value, weight) => {
      pairs.push([Number(q), Number(value), Number(weight)]);
      return pairs;
    },
    result: (pairs) => {
      const weighted = pairs.filter(([, , weight]) => weight > 0).sort((a, b) => a[1] - b[1]);
      const total = weighted.reduce((sum, [, , weight]) => sum + weight, 0);
      if (total === 0) return 0;
      const q = pairs[0][0];
      let seen = 0;
      for (const [, value, weight] of weighted) {
        seen += weight;
        if (seen >= q * total) return value;
      }
      return weighted.at(-1)[1];
    },
  });
  return db;
}

/** Analytics Engine SQL → SQLite, for the functions the platform uses. */
function analyticsToSqlite(query) {
  return query
    .replace(/\s+FORMAT\s+JSON\s*$/i, "")
    .replace(/quantileExactWeighted\(\s*([0-9.]+)\s*\)\(/g, "quantile_exact_weighted($1, ")
    .replace(/\bif\(/g, "iif(");
}

export function createFakeCloudflareEvents() {
  const db = openDatabase();
  const datasets = new Set();
  const tables = new Set();
  /** Every query each API received, newest last. */
  const queries = { analytics: [], r2sql: [] };
  const faults = [];

  function ensureDataset(name) {
    if (!PLAIN_NAME.test(name)) throw new Error(`bad dataset ${name}`);
    if (datasets.has(name)) return;
    db.exec(
      `CREATE TABLE "${name}" (dataset TEXT, timestamp INTEGER, _sample_interval INTEGER, index1 TEXT, ${BLOBS.map((b) => `${b} TEXT DEFAULT ''`).join(", ")}, ${DOUBLES.map((d) => `${d} REAL DEFAULT 0`).join(", ")})`,
    );
    datasets.add(name);
  }

  function ensureTable(name) {
    const [namespace, table] = name.split(".");
    if (!PLAIN_NAME.test(namespace ?? "") || !PLAIN_NAME.test(table ?? "")) throw new Error(`bad table ${name}`);
    const local = `${namespace}__${table}`;
    if (!tables.has(local)) {
      db.exec(`CREATE TABLE "${local}" (${LOG_COLUMNS.map((column) => `${column} TEXT`).join(", ")})`);
      tables.add(local);
    }
    return local;
  }

  function ingestPoints({ dataset, points }) {
    ensureDataset(dataset);
    const insert = db.prepare(
      `INSERT INTO "${dataset}" (dataset, timestamp, _sample_interval, index1, ${BLOBS.join(", ")}, ${DOUBLES.join(", ")}) VALUES (${Array(44).fill("?").join(", ")})`,
    );
    for (const point of points) {
      const blobs = BLOBS.map((_, i) => String(point.blobs?.[i] ?? ""));
      const doubles = DOUBLES.map((_, i) => Number(point.doubles?.[i] ?? 0));
      insert.run(dataset, Math.floor((point.timestamp ?? Date.now()) / 1000), point.sampleInterval ?? 1, String(point.indexes?.[0] ?? ""), ...blobs, ...doubles);
    }
  }

  function ingestRecords({ table, records }) {
    const local = ensureTable(table);
    const insert = db.prepare(`INSERT INTO "${local}" (${LOG_COLUMNS.join(", ")}) VALUES (${LOG_COLUMNS.map(() => "?").join(", ")})`);
    const ingestedAt = new Date().toISOString();
    for (const record of records) insert.run(...LOG_COLUMNS.map((column) => (column === "__ingest_ts" ? ingestedAt : record[column] ?? null)));
  }

  function analyticsQuery(sql) {
    queries.analytics.push(sql);
    const rows = db.prepare(analyticsToSqlite(sql)).all();
    const data = rows.map((row) => Object.fromEntries(Object.entries(row).map(([name, value]) => [name, Number.isInteger(value) ? String(value) : value])));
    const meta = Object.keys(rows[0] ?? {}).map((name) => ({ name, type: "String" }));
    return { meta, data, rows: data.length };
  }

  function r2SqlQuery(sql) {
    queries.r2sql.push(sql);
    if (!/^\s*SELECT\b/i.test(sql)) throw Object.assign(new Error("only read-only queries are allowed"), { code: 40004 });
    const limit = /\bLIMIT\s+(\d+)\s*;?\s*$/i.exec(sql);
    if (limit && Number(limit[1]) > 10_000) throw Object.assign(new Error("maximum LIMIT is 10000"), { code: 40004 });
    const local = sql.replace(/\bFROM\s+([A-Za-z_]\w*)\.([A-Za-z_]\w*)/i, (_, namespace, table) => {
      ensureTable(`${namespace}.${table}`);
      return `FROM "${namespace}__${table}"`;
    });
    const rows = db.prepare(local).all().map((row) => ({ ...row }));
    return { schema: Object.keys(rows[0] ?? {}).map((name) => ({ name, type: "Utf8" })), rows, metrics: { r2_requests_count: 1, files_scanned: 1, bytes_scanned: 0 } };
  }

  const readBody = (request) =>
    new Promise((resolve, reject) => {
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      request.on("error", reject);
    });

  const server = createServer(async (request, response) => {
    const send = (status, body) => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    try {
      const path = new URL(request.url ?? "/", "http://fake").pathname;
      const body = await readBody(request);
      if (path === "/__control/fail") {
        faults.push(JSON.parse(body));
        return send(200, { ok: true });
      }
      if (path === "/__ingest/analytics") {
        ingestPoints(JSON.parse(body));
        return send(200, { ok: true });
      }
      if (path === "/__ingest/pipeline") {
        ingestRecords(JSON.parse(body));
        return send(200, { ok: true });
      }
      const fault = faults.findIndex((candidate) => path.startsWith(candidate.path));
      if (fault !== -1) {
        const [{ status }] = faults.splice(fault, 1);
        return send(status, { success: false, errors: [{ code: 10000, message: "injected failure" }] });
      }
      const authorized = request.headers.authorization === `Bearer ${FAKE_TOKEN}`;
      if (/^\/client\/v4\/accounts\/[^/]+\/analytics_engine\/sql$/.test(path) && request.method === "POST") {
        if (!authorized) return send(401, { success: false, errors: [{ code: 10000, message: "Authentication error" }] });
        try {
          return send(200, analyticsQuery(body));
        } catch (error) {
          response.writeHead(422, { "content-type": "text/plain" });
          return response.end(`Query failed: ${error.message}`);
        }
      }
      if (/^\/r2sql\/accounts\/[^/]+\/r2-sql\/query\/[^/]+$/.test(path) && request.method === "POST") {
        if (!authorized) return send(403, { success: false, errors: [{ code: 10000, message: "Authentication error" }] });
        try {
          const { query } = JSON.parse(body);
          return send(200, { success: true, result: r2SqlQuery(String(query)), errors: [], messages: [] });
        } catch (error) {
          return send(400, { success: false, result: null, errors: [{ code: error.code ?? 40003, message: error.message }], messages: [] });
        }
      }
      send(404, { success: false, errors: [{ code: 7003, message: `No route for ${path}` }] });
    } catch (error) {
      send(500, { success: false, errors: [{ code: 10000, message: String(error) }] });
    }
  });

  return {
    server,
    queries,
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve) => server.listen(port, host, () => resolve(`http://${host}:${server.address().port}`)));
    },
    close() {
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fake = createFakeCloudflareEvents();
  fake.listen(Number(process.argv[2] ?? 0)).then((base) => console.log(`fake Cloudflare events APIs on ${base}`));
}
