#!/usr/bin/env node
/**
 * `npm start`: the whole product on this machine, no account and no network.
 * 1. creates .dev.vars with a random operator token and secrets key if it is missing,
 * 2. applies the D1 migrations to the local database,
 * 3. builds the console and the API reference's assets (`npm run build:console`),
 * 4. starts `wrangler dev`,
 * 5. on first run, creates a demo organization from examples/news-site.yaml, versions it and deploys it to
 *    preview and live (with the organization's admin key); its keys — the admin organization key and each
 *    environment's keys — are kept in .wrangler/demo.json so later starts can print them again.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const port = Number(process.env.PORT ?? 8787);
const base = `http://127.0.0.1:${port}`;
const devVarsPath = join(root, ".dev.vars");
const demoPath = join(root, ".wrangler", "demo.json");
const wrangler = join(root, "node_modules", ".bin", "wrangler");

function readDevVars() {
  if (!existsSync(devVarsPath)) {
    const vars = `OPERATOR_TOKEN=op_${randomBytes(24).toString("hex")}\nSECRETS_KEY=${randomBytes(32).toString("base64")}\nWEBHOOKS_ALLOW_INSECURE_LOCALHOST=true\nWEB_BOT_AUTH_ALLOW_LOOPBACK=true\nX402_ALLOW_LOOPBACK_FACILITATOR=true\n`;
    writeFileSync(devVarsPath, vars, { mode: 0o600 });
    console.log("Created .dev.vars with a random operator token and secrets key.");
  }
  return Object.fromEntries(
    readFileSync(devVarsPath, "utf8")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")).trim(), line.slice(line.indexOf("=") + 1).trim()]),
  );
}

const vars = readDevVars();
const quietEnv = { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" };

const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "DB", "--local"], { cwd: root, env: quietEnv, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
if (migrate.status !== 0) {
  console.error(migrate.stdout, migrate.stderr);
  process.exit(migrate.status ?? 1);
}
console.log("Local D1 migrations applied.");

const buildConsole = spawnSync(process.execPath, [join(root, "scripts", "build-console.mjs")], { cwd: root, stdio: "inherit" });
if (buildConsole.status !== 0) process.exit(buildConsole.status ?? 1);

const server = spawn(wrangler, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false"], {
  cwd: root,
  env: quietEnv,
  stdio: ["ignore", "inherit", "inherit"],
});
const stop = () => server.kill("SIGINT");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
server.on("exit", (code) => process.exit(code ?? 0));

async function api(method, path, { key = vars.OPERATOR_TOKEN, body, contentType = "application/json", headers = {} } = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...headers, ...(body !== undefined ? { "content-type": contentType } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

async function waitForServer() {
  for (let attempt = 0; attempt < 600; attempt++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error("wrangler dev did not start within 120 s");
}

async function ensureDemo() {
  const { organizations } = await api("GET", "/api/v1/admin/organizations");
  if (existsSync(demoPath)) {
    const demo = JSON.parse(readFileSync(demoPath, "utf8"));
    if (organizations.some((organization) => organization.id === demo.organizationId)) {
      // A demo made before organization keys existed: give it its admin key now.
      if (!demo.adminKey) {
        const created = await api("POST", "/api/v1/admin/organization/keys", { headers: { "x-organization-id": demo.organizationId }, body: { name: "Demo admin key", role: "admin" } });
        demo.adminKey = created.key;
        writeFileSync(demoPath, JSON.stringify(demo, null, 2), { mode: 0o600 });
      }
      return demo;
    }
  }
  if (organizations.length > 0 && !existsSync(demoPath)) {
    console.log("Organizations exist already; not creating a demo organization.");
    return null;
  }
  const created = await api("POST", "/api/v1/admin/organizations", { body: { name: "Demo news site" } });
  const keyFor = (slug, type) => {
    const environment = created.environments.find((candidate) => candidate.slug === slug);
    return { environmentId: environment.id, key: created.keys.find((key) => key.environmentId === environment.id && key.type === type).key };
  };
  const live = keyFor("live", "secret");
  const preview = keyFor("preview", "secret");
  // The configuration and deploys to both environments are organization-wide work: the admin organization key's.
  const adminKey = created.organizationKeys.find((key) => key.role === "admin").key;
  await api("PUT", "/api/v1/admin/config", { key: adminKey, body: readFileSync(join(root, "examples", "news-site.yaml"), "utf8"), contentType: "application/yaml" });
  const version = await api("POST", "/api/v1/admin/versions", { key: adminKey, body: { description: "examples/news-site.yaml" } });
  for (const environmentId of [preview.environmentId, live.environmentId]) {
    await api("POST", `/api/v1/admin/environments/${environmentId}/deployments`, { key: adminKey, body: { versionId: version.id } });
  }
  const demo = {
    organizationId: created.organization.id,
    adminKey,
    live: { environmentId: live.environmentId, secretKey: live.key, publishableKey: keyFor("live", "publishable").key },
    preview: { environmentId: preview.environmentId, secretKey: preview.key, publishableKey: keyFor("preview", "publishable").key },
  };
  mkdirSync(dirname(demoPath), { recursive: true });
  writeFileSync(demoPath, JSON.stringify(demo, null, 2), { mode: 0o600 });
  console.log("Created the demo organization from examples/news-site.yaml and deployed it to preview and live.");
  return demo;
}

try {
  await waitForServer();
  const demo = await ensureDemo();
  const lines = [
    "",
    "────────────────────────────────────────────────────────────────────────",
    ` Platform running at ${base}`,
    ` Console:            ${base}/console/   (sign in with the admin key below, or the operator token)`,
    ` API reference:      ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
    ` Operator token:     ${vars.OPERATOR_TOKEN}   (from .dev.vars)`,
  ];
  if (demo) {
    lines.push(
      ` Demo organization:  ${demo.organizationId}`,
      ` Admin key:              ${demo.adminKey}   (organization key: configuration, versions, deploys, keys)`,
      ` Live secret key:        ${demo.live.secretKey}`,
      ` Live publishable key:   ${demo.live.publishableKey}`,
      ` Preview secret key:     ${demo.preview.secretKey}`,
      "",
      " Try it:",
      `   curl -s ${base}/api/v1/surface-decisions \\`,
      `     -H "Authorization: Bearer ${demo.live.publishableKey}" -H "Content-Type: application/json" \\`,
      `     -d '{"surfaceSlug":"article-page","identity":{"anonymousIdentifier":"reader-1"},"resource":{"id":"article-42"}}'`,
    );
  }
  lines.push("────────────────────────────────────────────────────────────────────────", "");
  console.log(lines.join("\n"));
} catch (error) {
  console.error(error);
  stop();
  process.exit(1);
}
