/**
 * The client in Bun and Deno (both installed from npm as dev dependencies): the client bundled as it would be
 * published (its one dependency, openapi-fetch, inlined), run by each runtime as an ES module against `wrangler dev`
 * (started by test/browser/global-setup.ts) with only web-standard APIs — a decision with a secret key, an access
 * check with a publishable key, and an unreachable platform under both failure modes.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl } from "../../../test/browser/support";
import { liveTenant } from "./live";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "../../..");
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

/** What each runtime runs: prints one JSON line the test reads. */
const SCRIPT = `
import { createClient } from "./client.js";
const { BASE, SK, PK } = JSON.parse(${"globalThis.Deno ? Deno.env.get('MOS_TEST') : process.env.MOS_TEST"});
const backend = createClient({ baseUrl: BASE, apiKey: SK, failureMode: "closed" });
const decision = await backend.surfaceDecision({ identity: { anonymousIdentifier: "runtime-reader" }, surfaceSlug: "article-page" });
const browserLike = createClient({ baseUrl: BASE, apiKey: PK, failureMode: "open" });
const check = await browserLike.accessCheck({ identity: { anonymousIdentifier: "runtime-reader" } });
const modes = {};
for (const failureMode of ["open", "closed"]) {
  const unreachable = createClient({ baseUrl: "http://127.0.0.1:9", apiKey: PK, failureMode, retries: 1, retryBaseDelayMs: 0 });
  const result = await unreachable.accessCheck({ identity: { anonymousIdentifier: "nobody" } });
  modes[failureMode] = { ok: result.ok, kind: result.ok ? null : result.error.kind, attempts: result.attempts, hasAccess: unreachable.hasAccess(result, "articles.enabled") };
}
console.log(JSON.stringify({
  decision: { ok: decision.ok, requestId: decision.ok ? decision.requestId : null, enabled: backend.property(decision, "articles.enabled") },
  check: { ok: check.ok, consumedUnits: browserLike.property(check, "articles.enabled")?.consumedUnits },
  modes,
}));
`;

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "client-runtimes-"));
  await build({
    entryPoints: [path.join(root, "packages/client/src/index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    outfile: path.join(dir, "client.js"),
    logLevel: "warning",
  });
  writeFileSync(path.join(dir, "main.mjs"), SCRIPT);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RUNTIMES = {
  bun: (script: string) => [bin("bun"), ["run", script]] as const,
  // Network to the platform and the unreachable port, the one variable the script reads; nothing else.
  deno: (script: string) => [bin("deno"), ["run", "--no-prompt", "--allow-net=127.0.0.1", "--allow-env=MOS_TEST", script]] as const,
};

describe.each(Object.keys(RUNTIMES) as (keyof typeof RUNTIMES)[])("the client in %s", (runtime) => {
  it("decides with secret and publishable keys and fails open or closed as told", async () => {
    const org = await liveTenant("Client package (runtimes)");
    const [command, args] = RUNTIMES[runtime](path.join(dir, "main.mjs"));
    const { stdout } = await run(command, [...args], {
      cwd: dir,
      env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", MOS_TEST: JSON.stringify({ BASE: baseUrl, SK: org.preview.secretKey, PK: org.preview.publishableKey }) },
      timeout: 60_000,
    });
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
    expect(report.decision).toMatchObject({ ok: true, enabled: { type: "meterable", hasAccess: true, consumedUnits: 1, remainingUnits: 2 } });
    expect(report.decision.requestId).toMatch(/^req_/);
    expect(report.check).toEqual({ ok: true, consumedUnits: 1 });
    expect(report.modes).toEqual({
      open: { ok: false, kind: "network", attempts: 2, hasAccess: true },
      closed: { ok: false, kind: "network", attempts: 2, hasAccess: false },
    });
  });
});
