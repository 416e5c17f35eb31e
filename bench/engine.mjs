#!/usr/bin/env node
/**
 * Engine micro-benchmarks, in Node (not workerd): the pure decision engine bundled with esbuild.
 *   - decisions/s on one core for configs of 10 / 100 / 1,000 features (tinybench);
 *   - heap used by N prepared snapshots of examples/news-site.yaml (N = 100, 1,000), measured after gc.
 * Run by bench/run.mjs as `node --expose-gc bench/engine.mjs --src <dir> --out <file>`; standalone:
 *   node --expose-gc bench/engine.mjs
 * Skips (and says why) while workers/engine/index.ts does not exist or lacks the functions it measures.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parse } from "yaml";
import { largeDocument } from "./lib/seed.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, fallback) => {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : fallback;
};
const srcDir = arg("--src", root);
const outFile = arg("--out", join(root, "bench/.build/engine-results.json"));
const benchTimeMs = Number(process.env.BENCH_ENGINE_TIME_MS ?? 1500);

const TARGET_DECISIONS_100 = 50_000;
const TARGET_MB_1000 = 64;
/** "No worse than linear": 10× the features may cost at most this many times the time per decision. */
const LINEAR_SLACK = 12;

function finish(result) {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(result, null, 2));
  if (result.skipped) console.log(`Engine micro-benchmarks skipped: ${result.skipped}`);
  process.exit(0);
}

async function bundle() {
  const entry = join(srcDir, "workers/engine/index.ts");
  if (!existsSync(entry)) finish({ skipped: "workers/engine/index.ts does not exist yet" });
  const require = createRequire(join(root, "package.json"));
  const esbuild = await import(pathToFileURL(require.resolve("esbuild")).href);
  const outfile = join(root, "bench/.build/engine-bundle.mjs");
  try {
    await esbuild.build({
      stdin: {
        contents: [
          'export * as engine from "./workers/engine/index.ts";',
          'export { compileSnapshot } from "./workers/config/compile.ts";',
          'export { ConfigDocument } from "./schema/config.ts";',
        ].join("\n"),
        resolveDir: srcDir,
        loader: "ts",
        sourcefile: "bench-engine-entry.ts",
      },
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node22",
      outfile,
      logLevel: "silent",
      // The engine must not import Workers-only modules; leave them external so a mistake fails loudly at import.
      external: ["cloudflare:*"],
    });
  } catch (error) {
    finish({ skipped: `esbuild could not bundle the engine: ${String(error.message).split("\n").slice(0, 3).join(" ")}` });
  }
  return import(pathToFileURL(outfile).href + `?t=${Date.now()}`);
}

let idCounter = 0;
/** Gives every feature an id (what the admin API does on save) and validates the document. */
function withIds(ConfigDocument, document) {
  const parsed = ConfigDocument.parse(document);
  for (const feature of Object.values(parsed.features)) {
    feature.id ??= `feat_${(idCounter++).toString(36).padStart(10, "0")}`;
  }
  return parsed;
}

const identity = { authType: "anonymous", identifier: "bench-anon-1", isAuthenticated: false, jwtClaims: {}, testGroup100: 42 };

/** A meter reading for every request, as the meter object would answer (all within limit). */
function readingsFor(meterRequests) {
  const readings = new Map();
  for (const request of meterRequests) {
    readings.set(request.counterId, {
      counterId: request.counterId,
      hasAccess: true,
      consumedUnits: 1,
      remainingUnits: request.limit - 1,
      totalUnits: request.limit,
      periodStart: "2026-11-01T00:00:00.000Z",
      uniqueResources: request.uniqueResources,
      resourceIdUsed: false,
      consumedInRequest: request.consume,
      consumedUnitsInRequest: request.consume ? 1 : 0,
      excessUnitsInRequest: 0,
    });
  }
  return readings;
}

async function main() {
  const { engine, compileSnapshot, ConfigDocument } = await bundle();
  const missing = ["prepareSnapshot", "decide", "renderFeatures"].filter((name) => typeof engine[name] !== "function");
  if (missing.length) finish({ skipped: `workers/engine/index.ts does not export ${missing.join(", ")} yet` });
  const { Bench } = await import("tinybench");

  // One decision = plans (auto-assigned anonymous plan + 4 workflow-provisioned plans stacked) → feature state →
  // meter readings applied → rendered features: everything the Worker does per access check except I/O.
  const decisionOf = (prepared) => () => {
    const decision = engine.decide({
      prepared,
      identity,
      bot: undefined,
      category: "anonymous",
      stripeProductIds: [],
      workflowPlanSlugs: ["p02", "p03", "p04", "p05"],
      // A store the platform uses (services/tenancy.ts storeOf: "default" or "preview"), whose counter ids the
      // prepared snapshot has ready-made.
      storeId: "default",
      surfaceSlug: undefined,
    });
    const readings = readingsFor(decision.meterRequests);
    return engine.finish ? engine.finish(decision, readings) : engine.renderFeatures(decision.base, "default", readings, undefined);
  };

  const decisions = [];
  const bench = new Bench({ time: benchTimeMs, warmupTime: 300 });
  for (const features of [10, 100, 1000]) {
    const document = withIds(ConfigDocument, largeDocument(features, 20));
    const snapshot = await compileSnapshot(document, { versionId: `ver_bench_${features}`, organizationId: "org_bench" });
    const prepared = engine.prepareSnapshot(snapshot);
    const run = decisionOf(prepared);
    const sample = run();
    const rendered = Object.keys(sample).length;
    if (rendered !== features) throw new Error(`expected ${features} rendered features, got ${rendered}`);
    bench.add(`${features} features`, run);
    decisions.push({ features, plans: 20, stackedPlans: 5 });
  }
  await bench.run();
  bench.tasks.forEach((task, i) => {
    const result = task.result;
    if (result.state !== "completed") throw new Error(`${task.name}: ${result.state} ${result.error?.message ?? ""}`);
    decisions[i].microsPerDecision = result.period * 1000;
    decisions[i].decisionsPerSecond = 1000 / result.period;
    decisions[i].rme = result.latency.rme;
    decisions[i].samples = result.latency.samplesCount ?? result.latency.samples?.length;
  });

  // Memory of N cached tenants: each snapshot is parsed from JSON (as loaded from D1) and prepared, as in an isolate.
  const news = withIds(ConfigDocument, parse(readFileSync(join(srcDir, "examples/news-site.yaml"), "utf8")));
  const newsJson = JSON.stringify(await compileSnapshot(news, { versionId: "ver_TEMPLATE", organizationId: "org_TEMPLATE" }));
  const memory = [];
  for (const n of [100, 1000]) {
    const held = [];
    globalThis.gc?.();
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      const text = newsJson.replaceAll("ver_TEMPLATE", `ver_${n}_${i}`).replaceAll("org_TEMPLATE", `org_${n}_${i}`);
      held.push(engine.prepareSnapshot(JSON.parse(text)));
    }
    globalThis.gc?.();
    globalThis.gc?.();
    const after = process.memoryUsage().heapUsed;
    memory.push({ snapshots: n, heapMB: (after - before) / 2 ** 20, bytesPerSnapshot: (after - before) / n, held: held.length, gcExposed: !!globalThis.gc });
    held.length = 0;
  }

  const at = (features) => decisions.find((d) => d.features === features);
  const growth = (from, to) => at(to).microsPerDecision / at(from).microsPerDecision;
  const mem1000 = memory.find((m) => m.snapshots === 1000).heapMB;
  const checks = [
    {
      name: "decisions/s/core at 100 features",
      value: Math.round(at(100).decisionsPerSecond),
      target: `≥ ${TARGET_DECISIONS_100}`,
      verdict: at(100).decisionsPerSecond >= TARGET_DECISIONS_100 ? "PASS" : "MISS",
    },
    {
      name: "cost growth 10→100 and 100→1,000 features (× time per decision)",
      value: `${growth(10, 100).toFixed(1)}× / ${growth(100, 1000).toFixed(1)}×`,
      target: `≤ ${LINEAR_SLACK}× per 10× features (linear)`,
      verdict: growth(10, 100) <= LINEAR_SLACK && growth(100, 1000) <= LINEAR_SLACK ? "PASS" : "MISS",
    },
    {
      name: "heap of 1,000 news-site snapshots",
      value: `${mem1000.toFixed(1)} MB`,
      target: `< ${TARGET_MB_1000} MB`,
      verdict: mem1000 < TARGET_MB_1000 ? "PASS" : "MISS",
    },
  ];
  finish({ node: process.version, benchTimeMs, decisions, memory, checks });
}

main().catch((error) => finish({ skipped: `engine benchmark failed: ${error.stack?.split("\n").slice(0, 3).join(" ") ?? error}` }));
