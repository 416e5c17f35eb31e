#!/usr/bin/env node
/**
 * The seed tutorial end to end against a running server (`npm start` in another terminal):
 * hello-world config + JWT auth method + provisioning workflow through the admin API (with the organization's admin
 * key), a version deployed to live, then anonymous → userIdentifier → userJwt decisions. Exits non-zero on the first wrong answer.
 *   BASE=http://127.0.0.1:8787 npm run e2e
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const base = process.env.BASE ?? "http://127.0.0.1:8787";
const operator = (process.env.OPERATOR_TOKEN ?? readFileSync(join(root, ".dev.vars"), "utf8").match(/^OPERATOR_TOKEN=(.*)$/m)?.[1] ?? "").trim();

async function api(method, path, key, body, contentType = "application/json") {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": contentType }) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = await response.json();
  return { status: response.status, json };
}

function check(condition, message, detail) {
  if (!condition) {
    console.error(`✗ ${message}`, detail === undefined ? "" : JSON.stringify(detail, null, 2));
    process.exit(1);
  }
  console.log(`✓ ${message}`);
}

const created = await api("POST", "/api/v1/admin/organizations", operator, { name: `Tutorial ${new Date().toISOString()}` });
check(created.status === 201, "operator creates an organization", created.json);
const live = created.json.environments.find((environment) => environment.slug === "live");
const keyOf = (type) => created.json.keys.find((key) => key.environmentId === live.id && key.type === type).key;
const sk = keyOf("secret");
const pk = keyOf("publishable");
// Configuration and deploys are organization-wide: the organization's admin key, not an environment's key.
const admin = created.json.organizationKeys.find((key) => key.role === "admin").key;

const helloWorldYaml = readFileSync(join(root, "examples", "hello-world.yaml"), "utf8");
const refused = await api("PUT", "/api/v1/admin/config", sk, helloWorldYaml, "application/yaml");
check(refused.status === 403, "an environment's secret key cannot write the configuration", refused.json);
const applied = await api("PUT", "/api/v1/admin/config", admin, helloWorldYaml, "application/yaml");
check(applied.status === 200, "examples/hello-world.yaml applies", applied.json);
const keys = await generateKeyPair("RS256", { extractable: true });
const method = await api("POST", "/api/v1/admin/auth-methods", admin, { slug: "test-jwt", publicKey: await exportSPKI(keys.publicKey), identifierClaim: "email" });
check(method.status === 201, "the JWT authentication method is added", method.json);
const source = readFileSync(join(root, "examples", "workflows", "premium-provisioning.ts"), "utf8");
const workflow = await api("POST", "/api/v1/admin/workflows", admin, { slug: "premium-provisioning", type: "provisioning", source });
check(workflow.status === 201, "the provisioning workflow is uploaded", workflow.json);
const version = await api("POST", "/api/v1/admin/versions", admin, { description: "tutorial" });
check(version.status === 201, "a version is created", version.json);
const deployed = await api("POST", `/api/v1/admin/environments/${live.id}/deployments`, admin, { versionId: version.json.id });
check(deployed.status === 201, "the version is deployed to live", deployed.json);

const decide = (key, identity) => api("POST", "/api/v1/surface-decisions", key, { surfaceSlug: "hello-world", identity });
const widget = (response) => response.json.features?.widget?.properties;

const anonymous = [];
for (let i = 0; i < 4; i++) anonymous.push(await decide(pk, { anonymousIdentifier: "e2e-visitor" }));
check(
  anonymous.map((r) => widget(r).enabled.hasAccess).join() === "true,true,true,false" && widget(anonymous[3]).enabled.remainingUnits === 0,
  "an anonymous visitor gets 3 widgets, then hasAccess false with remainingUnits 0",
  anonymous.map((r) => widget(r)?.enabled),
);

const provided = await decide(sk, { userIdentifier: "test@example.com" });
check(provided.json.identity?.authType === "provided" && widget(provided).enabled.consumedUnits === 1, "userIdentifier identifies a registered user", provided.json);

const claims = { sub: "1234567890", name: "John Doe", email: "test@example.com", premium: true, iat: 1760714314 };
const jwt = await new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(keys.privateKey);
const premium = await decide(pk, { userJwt: jwt });
check(
  premium.json.identity?.authType === "jwt" &&
    premium.json.identity.identifier === "test@example.com" &&
    premium.json.identity.jwtClaims.premium === true &&
    widget(premium).enabled.hasAccess === true &&
    widget(premium).premium.value === true,
  "a JWT with premium: true gets the Premium plan through the workflow",
  premium.json,
);
console.log("Tutorial flow passed.");
