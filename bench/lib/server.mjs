/**
 * Builds the Worker with wrangler (offline: `deploy --dry-run` only bundles) and serves the bundle with miniflare's
 * API directly on 127.0.0.1 — no `wrangler dev` proxy in front of it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);

/**
 * The source tree to build: the working tree, or (BENCH_REF=HEAD, a commit, a branch) that revision exported with
 * `git archive` into a temp dir, so a benchmark can measure a committed state while others edit the checkout.
 */
export function sourceTree(root, ref) {
  if (!ref) return { dir: root, ref: null, dispose() {} };
  const dir = mkdtempSync(join(tmpdir(), "bench-src-"));
  const archive = spawnSync("git", ["archive", "--format=tar", ref], { cwd: root, maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${ref} failed: ${archive.stderr}`);
  const untar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  const commit = spawnSync("git", ["rev-parse", "--short", ref], { cwd: root, encoding: "utf8" }).stdout.trim();
  return { dir, ref: `${ref} (${commit})`, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export function buildWorker(root, srcDir = root) {
  const outdir = join(root, "bench/.build");
  rmSync(outdir, { recursive: true, force: true });
  // Bundling needs wrangler.toml's [assets] directory to exist; the bench serves the Worker alone, without the console.
  const assets = /^directory\s*=\s*"([^"]+)"/m.exec(readFileSync(join(srcDir, "wrangler.toml"), "utf8"))?.[1];
  if (assets) mkdirSync(join(srcDir, assets), { recursive: true });
  const wrangler = join(root, "node_modules/wrangler/bin/wrangler.js");
  const result = spawnSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir], {
    cwd: srcDir,
    encoding: "utf8",
    // Bundling needs no account; keep wrangler from phoning home (metrics, update check).
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", NO_UPDATE_NOTIFIER: "1" },
  });
  if (result.status !== 0) {
    throw new Error(`wrangler deploy --dry-run failed (exit ${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
  return join(outdir, "index.js");
}

/** The few wrangler.toml values the bench needs (a flat reader is enough for this file's shape). */
export function readWranglerToml(root) {
  const text = readFileSync(join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(text)?.[1];
  const flagsLine = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(text)?.[1] ?? "";
  const flags = [...flagsLine.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  const deadline = /^METER_DEADLINE_MS\s*=\s*"([^"]+)"/m.exec(text)?.[1] ?? "200";
  return { compatibilityDate: date, compatibilityFlags: flags, meterDeadlineMs: deadline };
}

/** Splits a migration into statements: `;` outside quotes and comments, and not inside a trigger's BEGIN … END. */
export function splitSql(sql) {
  const statements = [];
  let current = "";
  let quote = null;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (quote) {
      current += ch;
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n") i++;
      current += "\n";
      continue;
    }
    if (ch === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 1;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === "`") quote = ch;
    if (ch === ";") {
      const inTrigger = /^\s*CREATE\s+(TEMP\w*\s+)?TRIGGER\b/i.test(current) && !/\bEND\s*$/i.test(current.trim());
      if (!inTrigger) {
        if (current.trim()) statements.push(current.trim());
        current = "";
        continue;
      }
    }
    current += ch;
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

export async function startServer(root, scriptPath, { log = console.log, inspectorPort } = {}) {
  const { Miniflare } = await import("miniflare");
  const toml = readWranglerToml(root);

  // miniflare 4 ships its own workerd; a compatibility date newer than that runtime supports is refused, so clamp
  // it to the runtime's newest date and say so.
  let runtimeDate = toml.compatibilityDate;
  let runtimeVersion = "unknown";
  try {
    const workerdMain = require.resolve("workerd", { paths: [require.resolve("miniflare", { paths: [root] })] });
    const workerd = await import(pathToFileURL(workerdMain).href);
    runtimeVersion = workerd.version;
    if (workerd.compatibilityDate && workerd.compatibilityDate < toml.compatibilityDate) runtimeDate = workerd.compatibilityDate;
  } catch {
    /* keep wrangler.toml's date */
  }
  const notes = [];
  if (runtimeDate !== toml.compatibilityDate) {
    notes.push(`compatibility date ${toml.compatibilityDate} clamped to ${runtimeDate} (newest supported by workerd ${runtimeVersion})`);
  }

  const persistDir = mkdtempSync(join(tmpdir(), "bench-mf-"));
  const secrets = {
    OPERATOR_TOKEN: `op_${randomBytes(24).toString("hex")}`,
    SECRETS_KEY: randomBytes(32).toString("base64"),
  };
  const options = {
    host: "127.0.0.1",
    port: 0,
    modules: true,
    scriptPath,
    compatibilityDate: runtimeDate,
    compatibilityFlags: toml.compatibilityFlags,
    bindings: { ...secrets, METER_DEADLINE_MS: toml.meterDeadlineMs },
    // BENCH_SCRATCH is the bench's own (the Worker never reads it): lib/cost.mjs replays statements there to measure
    // the rows the runtime counts for them.
    d1Databases: { DB: "bench-db", BENCH_SCRATCH: "bench-scratch" },
    durableObjects: { METER: { className: "MeterObject", useSQLite: true } },
    workerLoaders: { LOADER: {} },
    d1Persist: join(persistDir, "d1"),
    durableObjectsPersist: join(persistDir, "do"),
    cachePersist: false,
  };
  // bench/profile.mjs: workerd's own inspector, for a CPU profile through the DevTools protocol.
  if (inspectorPort !== undefined) options.inspectorPort = inspectorPort;
  if (process.env.BENCH_EVENT_SINK === "cloudflare") {
    // The production event sink (workers/services/eventStore.ts) for an A/B of its hot-path cost: locally the
    // Analytics Engine dataset and the Pipelines stream accept and drop what they get, so nothing is written to D1 —
    // and the cost table, which reads the records from D1, has nothing to price (use the D1 run's).
    Object.assign(options.bindings, {
      EVENT_SINK: "cloudflare",
      CF_ACCOUNT_ID: "bench",
      EVENTS_API_TOKEN: "bench",
      DECISION_METRICS_DATASET: "decision_events",
      DECISION_LOG_BUCKET: "bench-events",
      DECISION_LOG_TABLE: "decisions.log",
    });
    options.analyticsEngineDatasets = { DECISION_METRICS: { dataset: "decision_events" } };
    options.pipelines = { DECISION_LOG: "decision-log" };
    options.queueProducers = { DECISION_LOG_QUEUE: "edge-monetization-decision-log" };
    notes.push("event sink: cloudflare (BENCH_EVENT_SINK) — records and metrics leave nothing in D1; no cost figures");
  }
  let miniflareOptions = options;
  if (process.env.BENCH_METER_ISOLATE !== "shared") {
    // The meter objects in a Worker of their own, so in an isolate of their own, as on Cloudflare, where an object
    // never runs in the isolate of the Worker calling it. Sharing one (BENCH_METER_ISOLATE=shared, what `wrangler dev`
    // does) puts every meter call behind the Worker's own requests on the isolate's lock: (a)'s p99 went from ≤ 2× the
    // floor's to 2.7–4.3× (docs/scale.md, "What bounds the ratios and the tails").
    const { host, port, d1Persist, durableObjectsPersist, cachePersist, inspectorPort: inspector, ...platform } = options;
    const runtime = { modules: true, scriptPath, compatibilityDate: runtimeDate, compatibilityFlags: toml.compatibilityFlags };
    miniflareOptions = {
      host,
      port,
      d1Persist,
      durableObjectsPersist,
      cachePersist,
      ...(inspector === undefined ? {} : { inspectorPort: inspector }),
      workers: [
        { ...platform, name: "platform", durableObjects: { METER: { className: "MeterObject", scriptName: "meters", useSQLite: true } } },
        { ...runtime, name: "meters", bindings: { ...secrets }, durableObjects: { METER: { className: "MeterObject", useSQLite: true } } },
      ],
    };
    notes.push("meter objects in a Worker (an isolate) of their own (BENCH_METER_ISOLATE=shared to share the Worker's)");
  }
  let mf;
  try {
    mf = new Miniflare(miniflareOptions);
    await mf.ready;
  } catch (error) {
    // Older runtimes without Worker Loader support: run without it and report the scenario that needs it.
    if (mf) await mf.dispose().catch(() => {});
    delete options.workerLoaders;
    notes.push(`Worker Loader binding unavailable (${String(error?.message ?? error).split("\n")[0]}); LOADER not bound`);
    mf = new Miniflare(miniflareOptions === options ? options : { ...miniflareOptions, workers: miniflareOptions.workers.map(({ workerLoaders: _, ...worker }) => worker) });
    await mf.ready;
  }
  const url = (await mf.ready).toString().replace(/\/$/, "");

  const db = await mf.getD1Database("DB");
  const scratch = await mf.getD1Database("BENCH_SCRATCH");
  const migrations = readdirSync(join(root, "schema"))
    .filter((name) => /^\d+.*\.sql$/.test(name))
    .sort();
  for (const name of migrations) {
    const statements = splitSql(readFileSync(join(root, "schema", name), "utf8"));
    await db.batch(statements.map((statement) => db.prepare(statement)));
  }
  log(`  miniflare ${url} (workerd ${runtimeVersion}, compat ${runtimeDate}); migrations: ${migrations.join(", ")}`);

  return {
    url,
    secrets,
    notes,
    runtime: { workerd: runtimeVersion, compatibilityDate: runtimeDate, migrations },
    // For the cost figures (lib/cost.mjs): D1 as the Worker sees it, and where the objects' SQLite files are.
    db,
    scratch,
    durableObjectsDir: options.durableObjectsPersist,
    async dispose() {
      await mf.dispose();
      rmSync(persistDir, { recursive: true, force: true });
    },
  };
}
