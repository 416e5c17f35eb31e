#!/usr/bin/env node
/**
 * `node bench/profile.mjs [scenario] [seconds]`: a CPU profile of the Worker under one benchmark scenario's load,
 * taken through workerd's inspector (the DevTools protocol's Profiler domain), and where its time goes: self time by
 * function and by source file of the built Worker, and the share spent outside JavaScript (idle or in the runtime).
 *
 * Scenarios: `u` (unmetered surface decision), `a` (anonymous access check), `f` (access check, 200 features), `floor`. The server, the build and the
 * tenants are the benchmark's (lib/server.mjs, lib/seed.mjs); the load is autocannon at 32 connections. The profile is
 * written to bench/.build/<scenario>.cpuprofile (open it in Chrome DevTools → Performance) and summarized on stdout.
 */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { drive } from "./lib/load.mjs";
import { helloWorldDocument, largeDocument, seedTenant, unmeteredDocument } from "./lib/seed.mjs";
import { buildWorker, startServer } from "./lib/server.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const scenario = process.argv[2] ?? "u";
const seconds = Number(process.argv[3] ?? 8);
const INSPECTOR_PORT = 9230 + Math.floor(Math.random() * 500);

const scriptPath = buildWorker(root);
const server = await startServer(root, scriptPath, { inspectorPort: INSPECTOR_PORT });
try {
  const document = scenario === "u" ? unmeteredDocument(root) : scenario === "f" ? largeDocument() : helloWorldDocument(root);
  const tenant = await seedTenant(server, `profile ${scenario}`, document);
  let n = 0;
  const bodies = {
    u: () => ({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: `p-${n++ % 10_000}` } }),
    a: () => ({ identity: { anonymousIdentifier: "bench-a" } }),
    f: () => ({ identity: { anonymousIdentifier: "bench-f" } }),
  };
  const request =
    scenario === "floor"
      ? { method: "GET", path: "/bench/floor" }
      : {
          method: "POST",
          path: scenario === "u" ? "/api/v1/surface-decisions" : "/api/v1/access-checks",
          headers: { authorization: `Bearer ${tenant.publishable}`, "content-type": "application/json" },
          setupRequest: (req) => ({ ...req, body: JSON.stringify(bodies[scenario]()) }),
        };
  // Warm the isolate (caches, JIT) before profiling.
  await drive({ url: server.url, request, connections: 32, durationSeconds: 2 });

  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json`)).json();
  const target = targets.find((candidate) => /core:user:/.test(candidate.title ?? "") && !/bench/.test(candidate.title)) ?? targets.find((candidate) => candidate.webSocketDebuggerUrl);
  if (!target) throw new Error(`no inspector target: ${JSON.stringify(targets)}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let nextId = 1;
  const pending = new Map();
  socket.onmessage = (message) => {
    const data = JSON.parse(String(message.data));
    if (data.id && pending.has(data.id)) {
      pending.get(data.id)(data);
      pending.delete(data.id);
    }
  };
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 200 });
  await send("Profiler.start");
  const load = await drive({ url: server.url, request, connections: 32, durationSeconds: seconds });
  const { result } = await send("Profiler.stop");
  socket.close();
  const profile = result.profile;
  writeFileSync(join(root, `bench/.build/${scenario}.cpuprofile`), JSON.stringify(profile));
  summarize(profile, load);
} finally {
  await server.dispose();
}

function summarize(profile, load) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map();
  profile.samples.forEach((nodeId, index) => selfMicros.set(nodeId, (selfMicros.get(nodeId) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  const total = [...selfMicros.values()].reduce((sum, micros) => sum + micros, 0);
  const byFunction = new Map();
  const byFile = new Map();
  for (const [nodeId, micros] of selfMicros) {
    const { functionName, url, lineNumber } = byId.get(nodeId).callFrame;
    const name = functionName || (url ? "(anonymous)" : "(runtime)");
    const file = url ? url.split("/").slice(-1)[0] : name;
    const key = `${name} ${file}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
    byFile.set(file, (byFile.get(file) ?? 0) + micros);
  }
  const share = (micros) => `${((micros / total) * 100).toFixed(1).padStart(5)} %`;
  console.log(`\n${scenario}: ${Math.round(load.requestsPerSecond)} req/s over ${seconds} s; ${(total / 1e6).toFixed(2)} s of samples`);
  console.log("\nSelf time by entry (top 25):");
  for (const [key, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${share(micros)}  ${key}`);
  console.log("\nSelf time by file:");
  for (const [file, micros] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${share(micros)}  ${file}`);
}
