/**
 * vitest globalSetup of the browser tests (Node): the whole product as `npm start` runs it — `wrangler dev` with the
 * built console as its static assets — on a free port, with a throw-away local database and its own operator token,
 * so the tests neither touch nor depend on the developer's `.wrangler` state. Tests reach it through `inject`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { freePort } from "./ports";

declare module "vitest" {
  interface ProvidedContext {
    baseUrl: string;
    operatorToken: string;
  }
}

const root = join(import.meta.dirname, "..", "..");
const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const quietEnv = { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false", NO_UPDATE_NOTIFIER: "1" };

async function waitForHealth(baseUrl: string, server: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`wrangler dev exited (${server.exitCode}):\n${output()}`);
    try {
      if ((await fetch(`${baseUrl}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`wrangler dev did not answer /health within 120 s:\n${output()}`);
}

export default async function startPlatform(project: TestProject): Promise<() => Promise<void>> {
  if (!existsSync(join(root, "console", "dist", "console", "index.html"))) {
    throw new Error("The console is not built: run `npm run build:console` (npm run test:browser does it first)");
  }
  const persistTo = mkdtempSync(join(tmpdir(), "browser-tests-"));
  const operatorToken = `op_${randomBytes(24).toString("hex")}`;
  const vars = {
    OPERATOR_TOKEN: operatorToken,
    SECRETS_KEY: randomBytes(32).toString("base64"),
    WEBHOOKS_ALLOW_INSECURE_LOCALHOST: "true",
    WEB_BOT_AUTH_ALLOW_LOOPBACK: "true",
    X402_ALLOW_LOOPBACK_FACILITATOR: "true",
  };

  const migrate = spawnSync(process.execPath, [wrangler, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo], {
    cwd: root,
    env: quietEnv,
    encoding: "utf8",
  });
  if (migrate.status !== 0) throw new Error(`applying the migrations failed:\n${migrate.stdout}\n${migrate.stderr}`);

  const [port, inspectorPort] = [await freePort(), await freePort()];
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistTo];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  args.push("--show-interactive-dev-session=false");
  // Its own process group, so teardown stops wrangler and the workerd it started together.
  const server = spawn(process.execPath, [wrangler, ...args], { cwd: root, env: quietEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  server.stdout!.on("data", keep);
  server.stderr!.on("data", keep);

  const stop = async () => {
    if (server.exitCode === null && server.pid) {
      const exited = new Promise((resolve) => server.once("exit", resolve));
      process.kill(-server.pid, "SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (server.exitCode === null) process.kill(-server.pid, "SIGKILL");
    }
    rmSync(persistTo, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(baseUrl, server, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  project.provide("baseUrl", baseUrl);
  project.provide("operatorToken", operatorToken);
  return stop;
}
