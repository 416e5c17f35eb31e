/**
 * Seeds tenants through the public admin API (exactly what an operator would do): organization → config document →
 * version → deployment to `live`.
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { parse, stringify } from "yaml";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export async function api(base, method, path, { token, body, contentType = "application/json" } = {}) {
  const headers = { authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined) {
    headers["content-type"] = contentType;
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(base + path, { method, headers, body: payload });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

async function must(promise, what) {
  const result = await promise;
  if (result.status >= 300) throw new Error(`${what}: HTTP ${result.status} ${result.text.slice(0, 500)}`);
  return result.json;
}

/**
 * Creates an organization, applies `document` (YAML text or an object), creates a version and deploys it to live.
 * Returns the live environment's keys. Throws with the API's error when a step is refused.
 */
export async function seedTenant(server, name, document) {
  const { url, secrets } = server;
  const created = await must(api(url, "POST", "/api/v1/admin/organizations", { token: secrets.OPERATOR_TOKEN, body: { name } }), "create organization");
  const live = created.environments.find((environment) => environment.slug === "live");
  const keyOf = (type) => created.keys.find((key) => key.environmentId === live.id && key.type === type)?.key;
  const tenant = { organizationId: created.organization.id, environmentId: live.id, publishable: keyOf("publishable"), secret: keyOf("secret") };
  // Configuration and deploys need the organization's admin key; builds from before organization keys (a BENCH_REF
  // baseline) let the environment's secret key do them.
  const admin = created.organizationKeys?.find((key) => key.role === "admin")?.key ?? tenant.secret;
  const yamlText = typeof document === "string" ? document : stringify(document);
  await must(api(url, "PUT", "/api/v1/admin/config", { token: admin, body: yamlText, contentType: "application/yaml" }), `apply config (${name})`);
  const version = await must(api(url, "POST", "/api/v1/admin/versions", { token: admin, body: { description: "bench" } }), `create version (${name})`);
  await must(
    api(url, "POST", `/api/v1/admin/environments/${live.id}/deployments`, { token: admin, body: { versionId: version.id } }),
    `deploy (${name})`,
  );
  return { ...tenant, versionId: version.id };
}

export function helloWorldDocument(srcDir) {
  return parse(readFileSync(join(srcDir, "examples/hello-world.yaml"), "utf8"));
}

/** An RS256 key pair, its auth method entry, and a pool of signed tokens (sub = bench-user-N, 1 hour). */
export async function jwtFixture(count = 100) {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportSPKI(publicKey);
  const now = Math.floor(Date.now() / 1000);
  const tokens = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await new SignJWT({ premium: false })
        .setProtectedHeader({ alg: "RS256" })
        .setSubject(`bench-user-${i}`)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(privateKey),
    );
  }
  return { authMethod: { publicKey: pem, algorithms: ["RS256"], identifierClaim: "sub" }, tokens };
}

/** 200 features f001…f200 (each with a number property `level`) and 20 plans p01…p20; p01 is auto-assigned to anonymous. */
export function largeDocument(featureCount = 200, planCount = 20) {
  const pad = (n, width) => String(n).padStart(width, "0");
  const features = {};
  for (let f = 1; f <= featureCount; f++) {
    features[`f${pad(f, 3)}`] = { name: `Feature ${f}`, properties: { level: { type: "number" } } };
  }
  const plans = {};
  for (let p = 1; p <= planCount; p++) {
    const values = {};
    // Each plan sets a tenth of the features, shifted per plan, so stacking and conflicts have work to do.
    for (let f = p; f <= featureCount; f += 10) {
      values[`f${pad(f, 3)}`] = { enabled: f % 3 === 0 ? { metered: { limit: 100, period: "month" } } : "on", level: p * 10 + (f % 7) };
    }
    plans[`p${pad(p, 2)}`] = { name: `Plan ${p}`, autoAssign: p === 1 ? ["anonymous"] : [], features: values };
  }
  return { version: 1, features, plans, surfaces: { page: { name: "Page", consumes: [] } } };
}

/**
 * hello-world with the anonymous plan's widget simply `on`: a decision that meters nothing, so it never calls a meter
 * object — scenario (u), the unmetered decision of the cost figures.
 */
export function unmeteredDocument(srcDir) {
  const doc = helloWorldDocument(srcDir);
  doc.plans.anonymous.features.widget.enabled = "on";
  return doc;
}

/**
 * hello-world plus a provisioning workflow that grants Premium to everyone (so the effect is visible). Scenario (e)
 * measures the workflow isolate, so nothing under Premium is metered here: in the tutorial's own configuration Premium
 * sits over Anonymous's metered widgets, whose counter keeps counting (and is read) under the unlimited plan — one
 * meter call per decision, a new meter object per new identifier, which scenario (b) measures.
 */
export function workflowDocument(srcDir) {
  const doc = helloWorldDocument(srcDir);
  doc.plans.anonymous.features.widget.enabled = "on";
  doc.workflows = {
    "bench-provisioning": {
      name: "Bench provisioning",
      type: "provisioning",
      source: 'const workflow = async ({ identity }: { identity: { identifier: string } }) => ["premium"];\nexport default workflow;\n',
    },
  };
  return doc;
}
