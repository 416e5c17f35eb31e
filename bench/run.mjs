#!/usr/bin/env node
/**
 * `npm run bench`: builds the Worker, serves it with miniflare on 127.0.0.1, seeds tenants through the admin API,
 * drives every scenario with autocannon (interleaved rounds, medians), runs the engine micro-benchmarks in Node, then
 * prints one table and writes bench/results.json. See bench/README.md.
 *
 * Environment: BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 2), BENCH_CONNECTIONS (32), BENCH_ROUNDS (3),
 * BENCH_ONLY (comma list of scenario ids, e.g. "floor,a,c"), BENCH_REF (build a git revision instead of the working
 * tree, e.g. HEAD), BENCH_SEED (scenario g's draws, 17), BENCH_G_WARM (identities scenario g touches first, 10000),
 * BENCH_SKIP_ENGINE=1, BENCH_SKIP_HTTP=1.
 *
 * Beside the ratios it prices a million decisions of each scenario at Cloudflare's published prices (bench/prices.json,
 * lib/cost.mjs), and it keeps the run before as bench/results.previous.json, printing the change against it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { calibrateRows, cpuSecondsOf, costPerMillion, loadPrices, recordedUsage, usagePerDecision, workerdProcesses } from "./lib/cost.mjs";
import { drive } from "./lib/load.mjs";
import { api, helloWorldDocument, jwtFixture, largeDocument, seedTenant, unmeteredDocument, workflowDocument } from "./lib/seed.mjs";
import { buildWorker, sourceTree, startServer } from "./lib/server.mjs";
import { seededRandom, zipfSampler } from "./lib/zipf.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = process.env;
const config = {
  durationSeconds: Number(env.BENCH_DURATION ?? 10),
  warmupSeconds: Number(env.BENCH_WARMUP ?? 2),
  connections: Number(env.BENCH_CONNECTIONS ?? 32),
  rounds: Number(env.BENCH_ROUNDS ?? 3),
  only: env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(",").map((s) => s.trim())) : null,
  ref: env.BENCH_REF || null,
  seed: Number(env.BENCH_SEED ?? 17),
  returningWarm: Number(env.BENCH_G_WARM ?? 10_000),
};
const log = (...args) => console.log(...args);

const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (!sorted.length) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function post(path, key, body) {
  return { method: "POST", path, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) };
}

/** `features.<feature>.properties.<property>` of a decision response, or undefined. */
function propertyOf(json, feature, property) {
  return json?.features?.[feature]?.properties?.[property];
}

async function probe(url, request) {
  const response = await fetch(url + request.path, { method: request.method, headers: request.headers, body: request.body });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: response.status, json, snippet: text.slice(0, 300), serverTiming: response.headers.get("server-timing") };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

async function defineScenarios(server, srcDir) {
  const runId = randomBytes(4).toString("hex");
  const jwt = await jwtFixture(100);

  const hello = helloWorldDocument(srcDir);
  hello.authMethods = { ...(hello.authMethods ?? {}), bench: jwt.authMethod };
  const tenant = await seedTenant(server, "bench hello-world", hello);
  const large = await seedTenant(server, "bench 200 features", largeDocument(200, 20));
  const unmetered = await seedTenant(server, "bench unmetered", unmeteredDocument(srcDir));
  let workflowTenant = null;
  let workflowSeedError = null;
  try {
    workflowTenant = await seedTenant(server, "bench provisioning workflow", workflowDocument(srcDir));
  } catch (error) {
    workflowSeedError = error.message.split("\n")[0].slice(0, 200);
  }

  const pool = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${runId}-${i}`);
  const anonymousPool = pool("bench-b", 10_000);
  const workflowPool = pool("bench-e", 10_000);
  const unmeteredPool = pool("bench-u", 10_000);
  const pick = (list) => list[(Math.random() * list.length) | 0];
  const varyBody = (make) => (req) => ({ ...req, body: JSON.stringify(make()) });

  // Scenario (g): 100,000 returning identities drawn Zipf-like (s = 1), plus 5 % identifiers never seen before.
  const returningCount = 100_000;
  const random = seededRandom(config.seed);
  const zipf = zipfSampler(returningCount, 1.0, random);
  const returning = (rank) => `bench-g-${runId}-${rank}`;
  let newcomers = 0;
  const drawIdentity = () => (random() < 0.05 ? `bench-g-new-${runId}-${newcomers++}` : returning(zipf.draw()));
  // "Returning" means seen before: the most popular ranks (BENCH_G_WARM) are touched once before the rounds.
  const hotSet = Math.min(config.returningWarm, returningCount);

  const contended = `bench-c-${runId}`;
  const contention = { grants: 0, denials: 0, unparsed: 0, errors: 0 };

  const scenarios = [
    { id: "floor", label: "floor  GET /bench/floor", request: { method: "GET", path: "/bench/floor" } },
    {
      id: "a",
      label: "(a) access check, anonymous, hello-world",
      request: post("/api/v1/access-checks", tenant.publishable, { identity: { anonymousIdentifier: "bench-a" } }),
      target: { ratio: 0.7, p99Ratio: 2, text: "≥0.70, p99 ≤2× floor" },
      cost: { environmentId: tenant.environmentId },
    },
    {
      // (a) spread over many identities: the same decision, its meter reads going to 10,000 objects instead of one
      // (which serializes every read of (a) — its tail). Tracked: the A/B of where (a)'s p99 comes from.
      id: "h",
      label: "(h) access check, anonymous, 10k ids",
      request: {
        ...post("/api/v1/access-checks", tenant.publishable, {}),
        setupRequest: varyBody(() => ({ identity: { anonymousIdentifier: pick(anonymousPool) } })),
      },
      target: { text: "(no target; tracked)" },
      cost: { environmentId: tenant.environmentId },
    },
    {
      id: "b",
      label: "(b) surface decision, metered, 10k ids",
      request: {
        ...post("/api/v1/surface-decisions", tenant.publishable, {}),
        setupRequest: varyBody(() => ({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: pick(anonymousPool) } })),
      },
      target: { ratio: 0.45, text: "≥0.45" },
      cost: { environmentId: tenant.environmentId, maxPerMillion: 1.5, stands: "metered" },
    },
    {
      id: "c",
      label: "(c) surface decision, ONE id (contention)",
      request: post("/api/v1/surface-decisions", tenant.publishable, { surfaceSlug: "hello-world", identity: { anonymousIdentifier: contended } }),
      probeRequest: post("/api/v1/access-checks", tenant.publishable, { identity: { anonymousIdentifier: contended } }),
      onResponse(status, body) {
        if (status < 200 || status >= 300) return void contention.errors++;
        try {
          const enabled = propertyOf(JSON.parse(body), "widget", "enabled");
          if (enabled?.hasAccess === true) contention.grants++;
          else if (enabled?.hasAccess === false) contention.denials++;
          else contention.unparsed++;
        } catch {
          contention.unparsed++;
        }
      },
      async check() {
        const after = await api(server.url, "POST", "/api/v1/access-checks", {
          token: tenant.publishable,
          body: { identity: { anonymousIdentifier: contended } },
        });
        const enabled = propertyOf(after.json, "widget", "enabled");
        const consumedUnits = enabled?.consumedUnits ?? null;
        const ok = after.status === 200 && contention.grants === 3 && contention.errors === 0 && contention.unparsed === 0 && consumedUnits === 3;
        return { ok, ...contention, accessCheckStatus: after.status, consumedUnits, expected: { grants: 3, consumedUnits: 3, errors: 0 } };
      },
      target: { exact: true, text: "exactly 3 grants, 0 errors, consumedUnits 3" },
      cost: { environmentId: tenant.environmentId },
    },
    {
      id: "d",
      label: "(d) access check, userJwt RS256 (100 tokens)",
      request: {
        ...post("/api/v1/access-checks", tenant.secret, {}),
        setupRequest: varyBody(() => ({ identity: { userJwt: pick(jwt.tokens) } })),
      },
      target: { ratio: 0.5, text: "≥0.50" },
      cost: { environmentId: tenant.environmentId },
    },
    {
      id: "e",
      label: "(e) surface decision + provisioning workflow",
      request: workflowTenant
        ? {
            ...post("/api/v1/surface-decisions", workflowTenant.publishable, {}),
            setupRequest: varyBody(() => ({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: pick(workflowPool) } })),
          }
        : null,
      // Available only when the workflow demonstrably ran: its Premium grant shows as widget.premium = true.
      async availability(result) {
        if (!workflowTenant) return `config with a provisioning workflow was refused: ${workflowSeedError}`;
        if (result.status !== 200) return `workflow runtime not available yet (probe HTTP ${result.status})`;
        if (propertyOf(result.json, "widget", "premium")?.value !== true) {
          return "workflow runtime not available yet (the provisioning workflow's Premium plan did not apply)";
        }
        return null;
      },
      target: { ratio: 0.35, text: "≥0.35" },
      cost: workflowTenant ? { environmentId: workflowTenant.environmentId } : undefined,
    },
    {
      id: "f",
      label: "(f) access check, 200 features / 20 plans",
      request: post("/api/v1/access-checks", large.publishable, { identity: { anonymousIdentifier: "bench-f" } }),
      target: { text: "(no target; tracked)" },
      cost: { environmentId: large.environmentId },
    },
    {
      id: "g",
      label: "(g) surface decision, 100k Zipf ids + 5% new",
      request: {
        ...post("/api/v1/surface-decisions", tenant.publishable, {}),
        setupRequest: varyBody(() => ({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: drawIdentity() } })),
      },
      async prepare() {
        if (hotSet <= 0) return "no identity touched first (BENCH_G_WARM=0)";
        const ranks = Array.from({ length: hotSet }, (_, rank) => rank);
        let failed = 0;
        const touch = async () => {
          for (let rank = ranks.pop(); rank !== undefined; rank = ranks.pop()) {
            const touched = await api(server.url, "POST", "/api/v1/surface-decisions", {
              token: tenant.publishable,
              body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: returning(rank) } },
            });
            if (touched.status !== 200) failed++;
          }
        };
        await Promise.all(Array.from({ length: 16 }, touch));
        return (
          `touched the ${hotSet} most popular of ${returningCount} identities once (${(zipf.shareOfTop(hotSet) * 100).toFixed(0)} % of returning draws)` +
          (failed ? `; ${failed} of those requests failed` : "")
        );
      },
      target: { ratio: 0.45, text: "≥0.45" },
      cost: { environmentId: tenant.environmentId, maxPerMillion: 1.5, stands: "metered" },
    },
    {
      id: "u",
      label: "(u) surface decision, unmetered, 10k ids",
      request: {
        ...post("/api/v1/surface-decisions", unmetered.publishable, {}),
        setupRequest: varyBody(() => ({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: pick(unmeteredPool) } })),
      },
      target: { text: "(no target; tracked)" },
      cost: { environmentId: unmetered.environmentId, maxPerMillion: 0.4, stands: "unmetered" },
    },
  ];
  return scenarios.filter((s) => !config.only || config.only.has(s.id) || s.id === "floor");
}

// ---------------------------------------------------------------------------------------------------------------
// Driving

async function runHttp(src) {
  let server;
  try {
    log(`Building the Worker${src.ref ? ` from ${src.ref}` : " from the working tree"} (wrangler deploy --dry-run)…`);
    const scriptPath = buildWorker(root, src.dir);
    server = await startServer(src.dir, scriptPath, { log });
    for (const note of server.notes) log(`  note: ${note}`);
    log("Seeding tenants through the admin API…");
    const scenarios = await defineScenarios(server, src.dir);

    const rows = new Map(scenarios.map((s) => [s.id, { scenario: s, rounds: [], skipped: null, probe: null }]));
    for (const row of rows.values()) {
      const s = row.scenario;
      if (!s.request) {
        row.skipped = (await s.availability?.({ status: 0 })) ?? "no request";
        continue;
      }
      const { setupRequest, ...plain } = s.probeRequest ?? s.request;
      const request = setupRequest ? setupRequest({ ...plain }) : plain;
      const result = await probe(server.url, request);
      row.probe = { status: result.status, serverTiming: result.serverTiming, body: result.status >= 300 ? result.snippet : undefined };
      if (s.availability) row.skipped = await s.availability(result);
    }

    const active = [...rows.values()].filter((row) => !row.skipped);
    for (const row of active) {
      if (!row.scenario.prepare) continue;
      row.prepared = await row.scenario.prepare();
      log(`  (${row.scenario.id}) ${row.prepared}`);
    }
    const workerd = workerdProcesses();
    if (!workerd.length) server.notes.push("no workerd process found under this one: Worker CPU not measured");
    const perRun = config.warmupSeconds + config.durationSeconds;
    log(
      `Running ${active.length} scenarios × ${config.rounds} rounds × (${config.warmupSeconds}s warm-up + ${config.durationSeconds}s) ` +
        `at ${config.connections} connections ≈ ${Math.round((active.length * config.rounds * perRun) / 60)} min`,
    );
    for (let round = 0; round < config.rounds; round++) {
      for (const row of active) {
        const s = row.scenario;
        const common = { url: server.url, request: s.request, connections: config.connections, onResponse: s.onResponse };
        if (config.warmupSeconds > 0) await drive({ ...common, durationSeconds: config.warmupSeconds });
        const cpuBefore = cpuSecondsOf(workerd);
        const from = new Date().toISOString();
        const measured = await drive({ ...common, durationSeconds: config.durationSeconds });
        const to = new Date().toISOString();
        const cpuAfter = cpuSecondsOf(workerd);
        if (s.cost) measured.window = { from, to, cpuSeconds: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore };
        row.rounds.push(measured);
        log(
          `  round ${round + 1} ${s.id.padEnd(5)} ${measured.requestsPerSecond.toFixed(0).padStart(7)} req/s  p99 ${measured.p99} ms` +
            (measured.errors || measured.non2xx ? `  errors ${measured.errors} non-2xx ${measured.non2xx} ${JSON.stringify(measured.statusCodes)}` : ""),
        );
      }
    }
    for (const row of active) if (row.scenario.check) row.check = await row.scenario.check();
    const costBasis = await measureUsage(server, active);
    return { rows: [...rows.values()], server, costBasis };
  } finally {
    await server?.dispose().catch(() => {});
  }
}

/**
 * Per-decision usage of every measured window (lib/cost.mjs): the decision records of the window's environment and
 * time range in D1 (after their batches are flushed), workerd's CPU over the window, and the rows the runtime counts
 * for each kind of write, measured once by replaying the statements in a scratch database.
 */
async function measureUsage(server, active) {
  await new Promise((resolve) => setTimeout(resolve, 1_000)); // decision records are flushed within 250 ms
  const rows = await calibrateRows({ db: server.db, scratch: server.scratch, durableObjectsDir: server.durableObjectsDir });
  for (const row of active) {
    const cost = row.scenario.cost;
    if (!cost) continue;
    for (const round of row.rounds) {
      if (!round.window) continue;
      const recorded = await recordedUsage(server.db, { environmentId: cost.environmentId, from: round.window.from, to: round.window.to });
      round.window.recorded = recorded;
      round.usage = usagePerDecision({ requests: round.total, seconds: config.durationSeconds, cpuSeconds: round.window.cpuSeconds, recorded, rows });
    }
  }
  return { rows };
}

/** The median of each per-decision figure over rounds (null where no round has it). */
function medianUsage(usages) {
  if (!usages.length) return null;
  return Object.fromEntries(Object.keys(usages[0]).map((key) => [key, median(usages.map((usage) => usage[key]).filter((value) => value !== null))]));
}

function summarize(rows, prices) {
  const floor = rows.find((row) => row.scenario.id === "floor");
  const floorByRound = floor?.rounds ?? [];
  return rows.map((row) => {
    const s = row.scenario;
    const base = { id: s.id, scenario: s.label, target: s.target?.text ?? "—", probe: row.probe };
    if (row.skipped) return { ...base, skipped: row.skipped, verdict: "SKIP" };
    const rps = median(row.rounds.map((r) => r.requestsPerSecond));
    // Ratios per round against the floor of the same round (interleaved), then the median.
    const ratio = s.id === "floor" ? 1 : median(row.rounds.map((r, i) => (floorByRound[i] ? r.requestsPerSecond / floorByRound[i].requestsPerSecond : NaN)));
    const p99Ratio = s.id === "floor" ? 1 : median(row.rounds.map((r, i) => (floorByRound[i]?.p99 ? r.p99 / floorByRound[i].p99 : NaN)));
    const errors = row.rounds.reduce((n, r) => n + r.errors, 0);
    const non2xx = row.rounds.reduce((n, r) => n + r.non2xx, 0);
    const statusCodes = {};
    for (const r of row.rounds) for (const [code, count] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + count;
    const usage = medianUsage(row.rounds.map((r) => r.usage).filter(Boolean));
    const cost = costPerMillion(usage, prices);
    // The targets are for a deployment at scale: with the production event sink (the run itself used D1's).
    const productionSink = costPerMillion(usage, prices, { sink: "cloudflare" });
    const costTarget = s.cost?.maxPerMillion;
    const costVerdict = costTarget === undefined || !productionSink ? "—" : productionSink.incomplete ? "INCOMPLETE" : productionSink.total <= costTarget ? "PASS" : "MISS";
    let verdict = "—";
    const t = s.target;
    if (t?.exact) verdict = row.check?.ok ? "PASS" : "MISS";
    else if (t?.ratio !== undefined) {
      const ok = ratio !== null && ratio >= t.ratio && (t.p99Ratio === undefined || (p99Ratio !== null && p99Ratio <= t.p99Ratio)) && errors === 0 && non2xx === 0;
      verdict = ok ? "PASS" : "MISS";
    } else if (errors || non2xx) verdict = "ERRORS";
    return {
      ...base,
      requestsPerSecond: rps,
      p50: median(row.rounds.map((r) => r.p50)),
      p90: median(row.rounds.map((r) => r.p90)),
      p99: median(row.rounds.map((r) => r.p99)),
      errors,
      non2xx,
      statusCodes,
      ratio,
      p99Ratio,
      verdict,
      check: row.check,
      prepared: row.prepared,
      cost: cost && {
        ...cost,
        productionSink: productionSink && { total: productionSink.total, lines: productionSink.lines, dominant: productionSink.dominant },
        stands: s.cost?.stands ?? null,
        target: costTarget ?? null,
        verdict: costVerdict,
      },
      rounds: row.rounds,
    };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Engine micro-benchmarks (a child Node process with --expose-gc)

function runEngine(srcDir) {
  const out = join(root, "bench/.build/engine-results.json");
  const child = spawnSync(process.execPath, ["--expose-gc", join(root, "bench/engine.mjs"), "--src", srcDir, "--out", out], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    env: process.env,
  });
  try {
    return JSON.parse(readFileSync(out, "utf8"));
  } catch {
    return { skipped: `engine benchmark exited with ${child.status} and wrote no results` };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const fmt = (value, digits = 0) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));

function printTable(summary) {
  const header = ["scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "non-2xx", "ratio", "p99 ratio", "target", "result"];
  const lines = summary.map((row) =>
    row.skipped
      ? [row.scenario, "—", "—", "—", "—", "—", "—", "—", "—", row.target, `SKIP: ${row.skipped}`]
      : [
          row.scenario,
          fmt(row.requestsPerSecond),
          fmt(row.p50),
          fmt(row.p90),
          fmt(row.p99),
          String(row.errors),
          String(row.non2xx),
          fmt(row.ratio, 2),
          fmt(row.p99Ratio, 2),
          row.target,
          row.verdict,
        ],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const render = (cells) => "| " + cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
  log("");
  log(render(header));
  log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const l of lines) log(render(l));
  for (const row of summary) {
    if (row.check) log(`  (${row.id}) check: ${JSON.stringify(row.check)}`);
    if (!row.skipped && (row.errors || row.non2xx) && row.probe) {
      log(`  (${row.id}) status codes ${JSON.stringify(row.statusCodes)}; probe HTTP ${row.probe.status}${row.probe.body ? `: ${row.probe.body}` : ""}`);
    }
  }
}

const dollars = (value) => (value === null || value === undefined ? "—" : `$${value.toFixed(value < 0.1 ? 3 : 2)}`);

function renderTable(header, lines) {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const render = (cells) => "| " + cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
  log(render(header));
  log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const l of lines) log(render(l));
}

function printCost(summary, prices) {
  const priced = summary.filter((row) => row.cost);
  if (!priced.length) return;
  log("");
  log(`Cost per million decisions (bench/prices.json, checked ${prices.checked}; Worker CPU is an upper bound, DO duration an estimate — see bench/README.md):`);
  log("(first $/M: the run's embedded D1 event sink; second: the production sink, EVENT_SINK = \"cloudflare\" — what the target is judged on)");
  const header = ["scenario", "stands for", "$/M, D1 sink", "$/M, production sink", "dominant line (production)", "CPU ms/req", "DO req", "meter ms", "DO rows written", "D1 rows written", "record bytes", "logged bytes", "target", "result"];
  const share = (dominant) => (dominant ? `${dominant.line} ${dollars(dominant.dollars)} (${fmt(dominant.share * 100)} %)` : "—");
  const lines = priced.map((row) => {
    const { usage } = row.cost;
    return [
      row.scenario,
      row.cost.stands ?? "—",
      dollars(row.cost.total),
      dollars(row.cost.productionSink?.total),
      share(row.cost.productionSink?.dominant),
      fmt(usage.workerCpuMs, 2),
      fmt(usage.durableObjectRequests, 2),
      fmt(usage.meterMs, 2),
      fmt(usage.durableObjectRowsWritten, 2),
      fmt(usage.d1RowsWritten, 2),
      fmt(usage.recordBytes),
      fmt(usage.loggedBytes),
      row.cost.target === null ? "—" : `≤ ${dollars(row.cost.target)}`,
      row.cost.verdict,
    ];
  });
  renderTable(header, lines);
}

/** The change against the previous run (bench/results.previous.json), scenario by scenario. */
function printPrevious(summary, previous) {
  const before = new Map((previous?.scenarios ?? []).map((row) => [row.id, row]));
  const rows = summary.filter((row) => !row.skipped && row.id !== "floor" && before.has(row.id));
  if (!rows.length) return;
  log("");
  log(`Against the previous run (${previous.date}, ${previous.source}${previous.commit ? ` at ${previous.commit}` : ""}; settings ${JSON.stringify(previous.settings)}):`);
  const signed = (value, digits) => (value === null ? "—" : `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`);
  const lines = rows.map((row) => {
    const old = before.get(row.id);
    const ratioDelta = row.ratio !== null && typeof old.ratio === "number" ? row.ratio - old.ratio : null;
    const oldCost = old.cost?.total ?? null;
    const costDelta = row.cost && oldCost !== null ? row.cost.total - oldCost : null;
    return [row.scenario, fmt(old.ratio, 2), fmt(row.ratio, 2), signed(ratioDelta, 2), dollars(oldCost), dollars(row.cost?.total), costDelta === null ? "—" : signed(costDelta, 3)];
  });
  renderTable(["scenario", "previous ratio", "ratio", "Δ ratio", "previous $/M", "$/M", "Δ $/M"], lines);
}

function printEngine(engine) {
  log("");
  if (!engine || engine.skipped) {
    log(`Engine micro-benchmarks: SKIP${engine?.skipped ? `: ${engine.skipped}` : ""}`);
    return;
  }
  log("Engine micro-benchmarks (Node, one core):");
  for (const row of engine.decisions) {
    log(`  ${String(row.features).padStart(5)} features: ${fmt(row.decisionsPerSecond).padStart(9)} decisions/s  (${fmt(row.microsPerDecision, 2)} µs/decision, ±${fmt(row.rme, 1)}%)`);
  }
  for (const check of engine.checks) log(`  ${check.verdict.padEnd(4)} ${check.name}: ${check.value} (target ${check.target})`);
  for (const row of engine.memory) log(`  ${String(row.snapshots).padStart(5)} news-site snapshots: ${fmt(row.heapMB, 1)} MB heap (${fmt(row.bytesPerSnapshot / 1024, 1)} KiB each)`);
}

async function main() {
  const startedAt = new Date();
  const prices = loadPrices(root);
  const resultsPath = join(root, "bench/results.json");
  const previousPath = join(root, "bench/results.previous.json");
  const src = sourceTree(root, config.ref);
  let http = null;
  let engine = null;
  try {
    if (!env.BENCH_SKIP_HTTP) {
      const { rows, server, costBasis } = await runHttp(src);
      http = { summary: summarize(rows, prices), runtime: server.runtime, notes: server.notes, costBasis };
    }
    if (!env.BENCH_SKIP_ENGINE) engine = runEngine(src.dir);
  } finally {
    src.dispose();
  }

  let previous = null;
  try {
    previous = existsSync(resultsPath) ? JSON.parse(readFileSync(resultsPath, "utf8")) : null;
  } catch {
    /* unreadable: nothing to compare with */
  }
  if (http) {
    for (const note of http.notes) log(`note: ${note}`);
    printTable(http.summary);
    printCost(http.summary, prices);
    printPrevious(http.summary, previous);
  }
  printEngine(engine);

  const cpus = os.cpus();
  const results = {
    date: startedAt.toISOString(),
    command: "npm run bench",
    source: config.ref ?? "working tree",
    commit: spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).stdout.trim(),
    settings: { durationSeconds: config.durationSeconds, warmupSeconds: config.warmupSeconds, connections: config.connections, rounds: config.rounds },
    machine: {
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpuCount: cpus.length,
      cpuModel: cpus[0]?.model,
      cpuSpeedMHz: cpus[0]?.speed,
      cpus: cpus.map(({ model, speed }) => ({ model, speed })),
      totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
      node: process.version,
    },
    runtime: http?.runtime ?? null,
    notes: http?.notes ?? [],
    scenarios: http?.summary ?? [],
    cost: http
      ? {
          prices: { checked: prices.checked, file: "bench/prices.json", perMillion: Object.fromEntries(Object.entries(prices.prices).map(([key, price]) => [key, price.perMillion])), assumptions: prices.assumptions },
          basis: http.costBasis,
        }
      : null,
    engine,
  };
  // The run before stays beside this one, so a regression shows in the diff and in the table above.
  if (previous) renameSync(resultsPath, previousPath);
  writeFileSync(resultsPath, JSON.stringify(results, null, 2) + "\n");
  log(`\nWrote bench/results.json${previous ? " (the run before: bench/results.previous.json)" : ""} (${results.machine.cpuCount}× ${results.machine.cpuModel}, Node ${process.version}).`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
