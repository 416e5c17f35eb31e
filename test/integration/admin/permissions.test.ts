/**
 * Who may do what on the admin API (workers/middleware/permissions.ts): every admin route × every kind of credential,
 * cell by cell, then the behaviours behind the matrix (revocation, roles, an environment key held to its environment).
 *
 * The resource of environment routes is the live environment of organization A. The credentials: the operator token
 * (X-Organization-Id: A), A's organization keys (admin, deployer, read-only), the secret key of the resource's own
 * environment, the preview environment's secret key (another environment of A), the resource environment's
 * publishable key, and organization B's admin key (another tenant: A's ids are missing to it, 404).
 */
import { exportSPKI, generateKeyPair } from "jose";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { AuthContext } from "../../../workers/context";
import { authorizeEnvironment, RULES } from "../../../workers/middleware/permissions";
import { call, createOrganization, OPERATOR, publish, type CallResult, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";

const CREDENTIALS = ["operator", "admin", "deployer", "readOnly", "ownSecret", "otherSecret", "publishable", "strangerAdmin"] as const;
type Credential = (typeof CREDENTIALS)[number];
/** One expected status per credential, in the order of CREDENTIALS. */
/** A status, or "<status> <code>" where the refusal's code is not the one its status implies (see outcome). */
type Outcome = number | string;
type Row = [operator: Outcome, admin: Outcome, deployer: Outcome, readOnly: Outcome, ownSecret: Outcome, otherSecret: Outcome, publishable: Outcome, strangerAdmin: Outcome];

interface EnvironmentKeys {
  id: string;
  secretKey: string;
  publishableKey: string;
}

interface Cell {
  /** The organization the credential acts on: B for B's admin key, A for every other. */
  org: TestOrganization;
  unique: string;
}

interface Prepared {
  path: string;
  body?: unknown;
  /** The environment whose own keys `ownSecret` and `publishable` are (default: A's live environment). */
  environment?: EnvironmentKeys;
}

interface Route {
  method: string;
  path: string;
  expected: Row;
  prepare: (cell: Cell) => Promise<Prepared> | Prepared;
}

let A: TestOrganization;
let B: TestOrganization;
let deployerKey: string;
let readOnlyKey: string;
let versionOne: string;
let versionTwo: string;
let widgetCounter: string;
let sequence = 0;

const asOperator = (org: TestOrganization) => ({ key: OPERATOR, headers: { "x-organization-id": org.id } });

async function must(result: Promise<CallResult>, status: number): Promise<CallResult> {
  const settled = await result;
  if (settled.status !== status) throw new Error(`setup failed: ${settled.status} ${JSON.stringify(settled.body)}`);
  return settled;
}

const ITEMS: Record<string, Record<string, unknown>> = {
  features: { name: "Cell feature" },
  plans: { name: "Cell plan" },
  surfaces: { name: "Cell surface" },
  "auth-methods": { publicKey: "(a real key, set before the tests)", identifierClaim: "email" },
  workflows: { type: "provisioning", source: "export default async () => []" },
  // A bundle sold by checkout refers to nothing else of the draft.
  offers: {
    presentation: { title: "Cell offer" },
    price: { currency: "usd", bundle: { items: [{ name: "A", stripeProductId: "prod_a", amount: 100 }, { name: "B", stripeProductId: "prod_b", amount: 200 }], multiplier: 0.8 } },
    redemption: { method: "checkout" },
  },
  "offer-groups": { slots: [{ offers: ["cell-offer"] }] },
};
/** What an item of a collection refers to: put first into the acting organization's draft. */
const PREREQUISITES: Record<string, { collection: string; slug: string }> = { "offer-groups": { collection: "offers", slug: "cell-offer" } };
const withPrerequisite = async (collection: string, cell: Cell) => {
  const needed = PREREQUISITES[collection];
  if (needed) await must(call("PUT", `/api/v1/admin/${needed.collection}/${needed.slug}`, { ...asOperator(cell.org), body: ITEMS[needed.collection] }), 200);
};
const itemSlug = (unique: string) => `item-${unique}`;
/** An item of the collection in the acting organization's draft, for the routes that need one. */
const withItem = async (collection: string, cell: Cell) => {
  await withPrerequisite(collection, cell);
  const slug = itemSlug(cell.unique);
  await must(call("PUT", `/api/v1/admin/${collection}/${slug}`, { ...asOperator(cell.org), body: ITEMS[collection] }), 200);
  return slug;
};

const live = () => `/api/v1/admin/environments/${A.live.id}`;
const STRIPE_CONNECTION = { secretKey: "sk_live_51PermissionMatrixCell0000abcd", webhookSecret: "whsec_PermissionMatrixCell0000" };
/** A's live environment connected to Stripe, for the routes that read or remove the connection. */
const withStripeConnection = async () => {
  await must(call("PUT", `${live()}/payments/stripe`, { ...asOperator(A), body: STRIPE_CONNECTION }), 200);
  return { path: `/environments/${A.live.id}/payments/stripe` };
};
async function withWebhook(enabled = true): Promise<string> {
  // At most 20 subscriptions per environment: each cell starts from none.
  await env.DB.prepare("DELETE FROM webhook_subscriptions WHERE environment_id = ?").bind(A.live.id).run();
  const created = await must(call("POST", `${live()}/webhooks`, { ...asOperator(A), body: { url: "https://hooks.example.com/cell", eventTypes: ["*"], enabled } }), 201);
  return created.body.id as string;
}
async function withDelivery(status = "pending", { deleted = false } = {}): Promise<string> {
  const subscriptionId = await withWebhook();
  if (deleted) await must(call("DELETE", `${live()}/webhooks/${subscriptionId}`, asOperator(A)), 200);
  const id = `whd_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
  const now = new Date().toISOString();
  await env.DB.prepare(
    `INSERT INTO webhook_deliveries (id, organization_id, environment_id, subscription_id, event_id, event_type, payload, status, attempts, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, 'webhook.test', '{}', ?, 0, ?, ?)`,
  ).bind(id, A.id, A.live.id, subscriptionId, `msg_${id}`, status, now, now).run();
  return id;
}
const X402_SETTINGS = { facilitatorUrl: "https://x402.example/facilitator", network: "eip155:84532", asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C" };
/** A's live environment with x402 settings, for the routes that read or remove them. */
const withX402Settings = async () => {
  await must(call("PUT", `${live()}/payments/x402`, { ...asOperator(A), body: X402_SETTINGS }), 200);
  return { path: `/environments/${A.live.id}/payments/x402` };
};
const identity = (identifier: string) => `${live()}/identities/${encodeURIComponent(identifier)}`;

// operator, admin, deployer, read-only, own sk, other sk, pk, stranger
const READ_ORGANIZATION: Row = [200, 200, 200, 200, 200, 200, 403, 200];
const READ_ENVIRONMENT: Row = [200, 200, 200, 200, 200, 403, 403, 404];
const WRITE_CONFIGURATION = (status: number): Row => [status, status, status, 403, 403, 403, 403, status];
const WRITE_OWN_ENVIRONMENT = (status: number): Row => [status, status, 403, 403, status, 403, 403, 404];
const ORGANIZATION_ADMIN = (status: number): Row => [status, status, 403, 403, 403, 403, 403, status];
const OPERATOR_ONLY = (status: number): Row => [status, 403, 403, 403, 403, 403, 403, 403];

const collectionRoutes = (collection: string): Route[] => [
  { method: "GET", path: `/${collection}`, expected: READ_ORGANIZATION, prepare: () => ({ path: `/${collection}` }) },
  {
    method: "POST",
    path: `/${collection}`,
    expected: WRITE_CONFIGURATION(201),
    prepare: async (cell) => {
      await withPrerequisite(collection, cell);
      return { path: `/${collection}`, body: { slug: itemSlug(cell.unique), ...ITEMS[collection] } };
    },
  },
  { method: "GET", path: `/${collection}/{slug}`, expected: READ_ORGANIZATION, prepare: async (cell) => ({ path: `/${collection}/${await withItem(collection, cell)}` }) },
  {
    method: "PUT",
    path: `/${collection}/{slug}`,
    expected: WRITE_CONFIGURATION(200),
    prepare: async (cell) => {
      await withPrerequisite(collection, cell);
      return { path: `/${collection}/${itemSlug(cell.unique)}`, body: ITEMS[collection] };
    },
  },
  { method: "DELETE", path: `/${collection}/{slug}`, expected: WRITE_CONFIGURATION(200), prepare: async (cell) => ({ path: `/${collection}/${await withItem(collection, cell)}` }) },
];

/** Every admin route (paths below /api/v1/admin). */
const ROUTES: Route[] = [
  // Organizations
  { method: "POST", path: "/organizations", expected: OPERATOR_ONLY(201), prepare: () => ({ path: "/organizations", body: { name: "Made in a cell" } }) },
  { method: "GET", path: "/organizations", expected: OPERATOR_ONLY(200), prepare: () => ({ path: "/organizations" }) },
  { method: "GET", path: "/organization", expected: READ_ORGANIZATION, prepare: () => ({ path: "/organization" }) },
  { method: "GET", path: "/session", expected: READ_ORGANIZATION, prepare: () => ({ path: "/session" }) },
  { method: "GET", path: "/workflow-types", expected: READ_ORGANIZATION, prepare: () => ({ path: "/workflow-types" }) },
  {
    method: "POST",
    path: "/workflow-checks",
    expected: READ_ORGANIZATION,
    prepare: () => ({ path: "/workflow-checks", body: { type: "provisioning", source: "export default async () => []" } }),
  },
  // Organization keys
  { method: "GET", path: "/organization/keys", expected: ORGANIZATION_ADMIN(200), prepare: () => ({ path: "/organization/keys" }) },
  {
    method: "POST",
    path: "/organization/keys",
    expected: ORGANIZATION_ADMIN(201),
    prepare: () => ({ path: "/organization/keys", body: { name: "From a cell", role: "read-only" } }),
  },
  {
    method: "DELETE",
    path: "/organization/keys/{keyId}",
    expected: [200, 200, 403, 403, 403, 403, 403, 404],
    prepare: async () => {
      const created = await must(call("POST", "/api/v1/admin/organization/keys", { ...asOperator(A), body: { name: "doomed", role: "read-only" } }), 201);
      return { path: `/organization/keys/${created.body.id}` };
    },
  },
  {
    method: "POST",
    path: "/organization/keys/{keyId}/rotate",
    expected: [201, 201, 403, 403, 403, 403, 403, 404],
    prepare: async () => {
      const created = await must(call("POST", "/api/v1/admin/organization/keys", { ...asOperator(A), body: { name: "rotated", role: "deployer" } }), 201);
      return { path: `/organization/keys/${created.body.id}/rotate` };
    },
  },
  // Environments
  { method: "GET", path: "/environments", expected: READ_ORGANIZATION, prepare: () => ({ path: "/environments" }) },
  {
    method: "POST",
    path: "/environments",
    expected: ORGANIZATION_ADMIN(201),
    prepare: ({ unique }) => ({ path: "/environments", body: { slug: `env-${unique}`, type: "preview" } }),
  },
  { method: "GET", path: "/environments/{environmentId}", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}` }) },
  {
    method: "PATCH",
    path: "/environments/{environmentId}",
    expected: [200, 200, 403, 403, 403, 403, 403, 404],
    prepare: () => ({ path: `/environments/${A.live.id}`, body: { name: "Live" } }),
  },
  {
    // A fresh environment each time: its own secret key may not delete it either. A preview one, so the environments
    // it leaves behind never share live's user data store (which would take live's key off its customers and meters).
    method: "DELETE",
    path: "/environments/{environmentId}",
    expected: [200, 200, 403, 403, 403, 403, 403, 404],
    prepare: async ({ unique }) => {
      const created = await must(call("POST", "/api/v1/admin/environments", { ...asOperator(A), body: { slug: `doomed-${unique}`, type: "preview" } }), 201);
      const keyOf = (type: string) => created.body.keys.find((key: { type: string }) => key.type === type).key;
      const environment = { id: created.body.environment.id, secretKey: keyOf("secret"), publishableKey: keyOf("publishable") };
      return { path: `/environments/${environment.id}`, environment };
    },
  },
  { method: "GET", path: "/environments/{environmentId}/keys", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/keys` }) },
  {
    method: "POST",
    path: "/environments/{environmentId}/keys",
    expected: WRITE_OWN_ENVIRONMENT(201),
    prepare: () => ({ path: `/environments/${A.live.id}/keys`, body: { type: "secret", name: "From a cell" } }),
  },
  {
    method: "DELETE",
    path: "/keys/{keyId}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async () => {
      const created = await must(call("POST", `${live()}/keys`, { ...asOperator(A), body: { type: "secret" } }), 201);
      return { path: `/keys/${created.body.id}` };
    },
  },
  {
    method: "POST",
    path: "/keys/{keyId}/rotate",
    expected: WRITE_OWN_ENVIRONMENT(201),
    prepare: async () => {
      const created = await must(call("POST", `${live()}/keys`, { ...asOperator(A), body: { type: "publishable" } }), 201);
      return { path: `/keys/${created.body.id}/rotate` };
    },
  },
  {
    method: "POST",
    path: "/environments/{environmentId}/deployments",
    expected: [201, 201, 201, 403, 201, 403, 403, 404],
    prepare: () => ({ path: `/environments/${A.live.id}/deployments`, body: { versionId: versionOne } }),
  },
  {
    method: "POST",
    path: "/environments/{environmentId}/rollback",
    expected: [201, 201, 201, 403, 201, 403, 403, 404],
    prepare: () => ({ path: `/environments/${A.live.id}/rollback`, body: { versionId: versionOne } }),
  },
  { method: "GET", path: "/environments/{environmentId}/deployments", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/deployments` }) },
  // The configuration document and the draft's collections
  { method: "GET", path: "/config", expected: READ_ORGANIZATION, prepare: () => ({ path: "/config" }) },
  { method: "PUT", path: "/config", expected: WRITE_CONFIGURATION(200), prepare: () => ({ path: "/config", body: helloWorld() }) },
  ...["features", "plans", "surfaces", "auth-methods", "workflows", "offers", "offer-groups"].flatMap(collectionRoutes),
  {
    method: "POST",
    path: "/features/{slug}/rename",
    expected: WRITE_CONFIGURATION(200),
    prepare: async (cell) => ({ path: `/features/${await withItem("features", cell)}/rename`, body: { slug: `renamed-${cell.unique}` } }),
  },
  // Versions
  { method: "POST", path: "/versions", expected: WRITE_CONFIGURATION(201), prepare: () => ({ path: "/versions", body: { description: "from a cell" } }) },
  { method: "GET", path: "/versions", expected: READ_ORGANIZATION, prepare: () => ({ path: "/versions" }) },
  { method: "GET", path: "/versions/{versionId}", expected: [200, 200, 200, 200, 200, 200, 403, 404], prepare: () => ({ path: `/versions/${versionOne}` }) },
  {
    method: "GET",
    path: "/versions/{versionId}/diff",
    expected: [200, 200, 200, 200, 200, 200, 403, 404],
    prepare: () => ({ path: `/versions/${versionTwo}/diff?against=${versionOne}` }),
  },
  // Customers
  { method: "GET", path: "/environments/{environmentId}/customers", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/customers` }) },
  {
    method: "GET",
    path: "/environments/{environmentId}/customers/{identifier}",
    expected: READ_ENVIRONMENT,
    prepare: () => ({ path: `/environments/${A.live.id}/customers/ada@example.com` }),
  },
  {
    method: "PUT",
    path: "/environments/{environmentId}/customers/{identifier}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: ({ unique }) => ({ path: `/environments/${A.live.id}/customers/${unique}@example.com`, body: { stripeProductIds: ["prod_cell"] } }),
  },
  {
    method: "DELETE",
    path: "/environments/{environmentId}/customers/{identifier}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async ({ unique }) => {
      await must(call("PUT", `${live()}/customers/${unique}@example.com`, { ...asOperator(A), body: { stripeProductIds: [] } }), 200);
      return { path: `/environments/${A.live.id}/customers/${unique}@example.com` };
    },
  },
  // Events
  { method: "GET", path: "/events", expected: READ_ORGANIZATION, prepare: () => ({ path: "/events" }) },
  { method: "GET", path: "/events?environmentId={environmentId}", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/events?environmentId=${A.live.id}` }) },
  { method: "GET", path: "/environments/{environmentId}/tail", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/tail` }) },
  { method: "GET", path: "/environments/{environmentId}/metrics", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/metrics` }) },
  // The playground: a real decision in an environment, with its trace (decisions.test)
  {
    method: "POST",
    path: "/environments/{environmentId}/playground",
    expected: [200, 200, 200, 403, 200, 403, 403, 404],
    prepare: ({ unique }) => ({ path: `/environments/${A.live.id}/playground`, body: { kind: "access_check", request: { identity: { anonymousIdentifier: `cell-${unique}` } } } }),
  },
  // Offers: the funnel of an environment
  { method: "GET", path: "/environments/{environmentId}/offers/funnel", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/offers/funnel` }) },
  // Outbound webhooks (environment settings: settings.read / settings.write)
  { method: "GET", path: "/environments/{environmentId}/webhooks", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/webhooks` }) },
  {
    method: "POST",
    path: "/environments/{environmentId}/webhooks",
    expected: WRITE_OWN_ENVIRONMENT(201),
    prepare: () => ({ path: `/environments/${A.live.id}/webhooks`, body: { url: "https://hooks.example.com/cell", eventTypes: ["plan.changed"] } }),
  },
  { method: "GET", path: "/environments/{environmentId}/webhooks/{subscriptionId}", expected: READ_ENVIRONMENT, prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/${await withWebhook()}` }) },
  {
    method: "PATCH",
    path: "/environments/{environmentId}/webhooks/{subscriptionId}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/${await withWebhook()}`, body: { description: "from a cell" } }),
  },
  { method: "DELETE", path: "/environments/{environmentId}/webhooks/{subscriptionId}", expected: WRITE_OWN_ENVIRONMENT(200), prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/${await withWebhook()}` }) },
  {
    method: "POST",
    path: "/environments/{environmentId}/webhooks/{subscriptionId}/rotate-secret",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/${await withWebhook()}/rotate-secret` }),
  },
  // A disabled subscription: the allowed cells get 409 and nothing is queued. (Row must accept the string
  // outcome "409 conflict": outcome() reports codes other than 401/403/404 that way.)
  {
    method: "POST",
    path: "/environments/{environmentId}/webhooks/{subscriptionId}/test",
    expected: ["409 conflict", "409 conflict", 403, 403, "409 conflict", 403, 403, 404],
    prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/${await withWebhook(false)}/test` }),
  },
  { method: "GET", path: "/environments/{environmentId}/webhooks/deliveries", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/webhooks/deliveries` }) },
  { method: "GET", path: "/environments/{environmentId}/webhooks/dead-letters", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/webhooks/dead-letters` }) },
  {
    method: "GET",
    path: "/environments/{environmentId}/webhooks/deliveries/{deliveryId}",
    expected: READ_ENVIRONMENT,
    prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/deliveries/${await withDelivery()}` }),
  },
  // A dead delivery of a deleted subscription: the allowed cells get 409 (nothing to send it to) and nothing is queued.
  {
    method: "POST",
    path: "/environments/{environmentId}/webhooks/deliveries/{deliveryId}/replay",
    expected: ["409 conflict", "409 conflict", 403, 403, "409 conflict", 403, 403, 404],
    prepare: async () => ({ path: `/environments/${A.live.id}/webhooks/deliveries/${await withDelivery("dead", { deleted: true })}/replay` }),
  },
  // Workflow variables, secrets and egress
  { method: "GET", path: "/environments/{environmentId}/variables", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/variables` }) },
  {
    method: "PUT",
    path: "/environments/{environmentId}/variables/{name}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: () => ({ path: `/environments/${A.live.id}/variables/FROM_A_CELL`, body: { value: "x", secret: true } }),
  },
  {
    method: "DELETE",
    path: "/environments/{environmentId}/variables/{name}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async ({ unique }) => {
      const name = `DOOMED_${unique.replace(/\W/g, "_")}`;
      await must(call("PUT", `${live()}/variables/${name}`, { ...asOperator(A), body: { value: "x" } }), 200);
      return { path: `/environments/${A.live.id}/variables/${name}` };
    },
  },
  { method: "GET", path: "/environments/{environmentId}/egress", expected: READ_ENVIRONMENT, prepare: () => ({ path: `/environments/${A.live.id}/egress` }) },
  {
    method: "PUT",
    path: "/environments/{environmentId}/egress",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: () => ({ path: `/environments/${A.live.id}/egress`, body: { hosts: ["api.example.com"] } }),
  },
  // Payments: the live environment's Stripe connection (live-mode keys, as a production environment takes)
  { method: "GET", path: "/environments/{environmentId}/payments/stripe", expected: READ_ENVIRONMENT, prepare: () => withStripeConnection() },
  {
    method: "PUT",
    path: "/environments/{environmentId}/payments/stripe",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: () => ({ path: `/environments/${A.live.id}/payments/stripe`, body: STRIPE_CONNECTION }),
  },
  { method: "DELETE", path: "/environments/{environmentId}/payments/stripe", expected: WRITE_OWN_ENVIRONMENT(204), prepare: () => withStripeConnection() },
  // Payments: the live environment's x402 settings
  { method: "GET", path: "/environments/{environmentId}/payments/x402", expected: READ_ENVIRONMENT, prepare: () => withX402Settings() },
  {
    method: "PUT",
    path: "/environments/{environmentId}/payments/x402",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: () => ({ path: `/environments/${A.live.id}/payments/x402`, body: X402_SETTINGS }),
  },
  { method: "DELETE", path: "/environments/{environmentId}/payments/x402", expected: WRITE_OWN_ENVIRONMENT(204), prepare: () => withX402Settings() },
  {
    method: "POST",
    path: "/environments/{environmentId}/payments/stripe/sync",
    expected: WRITE_OWN_ENVIRONMENT(202),
    prepare: async () => ({ path: `${(await withStripeConnection()).path}/sync`, body: {} }),
  },
  {
    method: "GET",
    path: "/environments/{environmentId}/payments/stripe/sync",
    expected: READ_ENVIRONMENT,
    prepare: async () => {
      const { path } = await withStripeConnection();
      await must(call("POST", `/api/v1/admin${path}/sync`, { ...asOperator(A), body: {} }), 202);
      return { path: `${path}/sync` };
    },
  },
  // Meters
  {
    method: "GET",
    path: "/environments/{environmentId}/identities/{identifier}/counters",
    expected: READ_ENVIRONMENT,
    prepare: () => ({ path: `${identity("reader@example.com").slice("/api/v1/admin".length)}/counters` }),
  },
  {
    method: "DELETE",
    path: "/environments/{environmentId}/identities/{identifier}/counters/{counterId}",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: async ({ unique }) => {
      const identifier = `counted-${unique}`;
      const used = await call("POST", "/api/v1/surface-decisions", { key: A.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: identifier } } });
      expect(used.status).toBe(200);
      return { path: `${identity(identifier).slice("/api/v1/admin".length)}/counters/${encodeURIComponent(widgetCounter)}` };
    },
  },
  {
    method: "GET",
    path: "/environments/{environmentId}/identities/{identifier}/charges",
    expected: READ_ENVIRONMENT,
    prepare: () => ({ path: `${identity("https://crawler.example").slice("/api/v1/admin".length)}/charges?agent=true` }),
  },
  {
    method: "GET",
    path: "/environments/{environmentId}/identities/{identifier}/credits/{creditId}",
    expected: READ_ENVIRONMENT,
    prepare: () => ({ path: `${identity("reader@example.com").slice("/api/v1/admin".length)}/credits/tokens` }),
  },
  {
    method: "POST",
    path: "/environments/{environmentId}/identities/{identifier}/credits/{creditId}/grants",
    expected: WRITE_OWN_ENVIRONMENT(200),
    prepare: () => ({ path: `${identity("reader@example.com").slice("/api/v1/admin".length)}/credits/tokens/grants`, body: { amount: 1, reason: "a cell" } }),
  },
];

function credentialFor(credential: Credential, environment: EnvironmentKeys): { key: string; headers?: Record<string, string> } {
  switch (credential) {
    case "operator":
      return asOperator(A);
    case "admin":
      return { key: A.adminKey };
    case "deployer":
      return { key: deployerKey };
    case "readOnly":
      return { key: readOnlyKey };
    case "ownSecret":
      return { key: environment.secretKey };
    case "otherSecret":
      return { key: A.preview.secretKey };
    case "publishable":
      return { key: environment.publishableKey };
    case "strangerAdmin":
      return { key: B.adminKey };
  }
}

/** The status, with the error code when a refusal carries another code than its status implies. */
function outcome(result: CallResult): number | string {
  if (result.status < 400) return result.status;
  const expectedCode = { 401: "invalid_api_key", 403: "forbidden", 404: "not_found" }[result.status];
  const shaped = result.body?.status === "error" && result.body?.statusCode === result.status;
  return shaped && result.body.code === expectedCode ? result.status : `${result.status} ${result.body?.code ?? JSON.stringify(result.body)}`;
}

beforeAll(async () => {
  ITEMS["auth-methods"]!.publicKey = await exportSPKI((await generateKeyPair("RS256", { extractable: true })).publicKey);
  [A, B] = await Promise.all([createOrganization("Permissions A"), createOrganization("Permissions B")]);
  versionOne = await publish(A.adminKey, helloWorld(), [A.live.id]);
  const changed = helloWorld();
  changed.plans.anonymous.features.widget.enabled = { metered: { limit: 5, period: "lifetime" } };
  versionTwo = await publish(A.adminKey, changed, []);
  await publish(B.adminKey, helloWorld(), [B.live.id]);
  const organizationKey = async (role: string) =>
    (await must(call("POST", "/api/v1/admin/organization/keys", { key: A.adminKey, body: { name: role, role } }), 201)).body.key as string;
  deployerKey = await organizationKey("deployer");
  readOnlyKey = await organizationKey("read-only");
  widgetCounter = `default:${(await call("GET", "/api/v1/admin/features/widget", { key: A.adminKey })).body.id}.enabled`;
  await must(call("PUT", `${live()}/customers/ada@example.com`, { key: A.adminKey, body: { stripeProductIds: ["prod_a"] } }), 200);
});

describe("the permission matrix: every admin route × every credential", () => {
  it("covers every admin route of the OpenAPI document", async () => {
    const document = (await call("GET", "/openapi.json")).body;
    const documented = Object.entries(document.paths as Record<string, object>)
      .filter(([path]) => path.startsWith("/api/v1/admin/"))
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path.slice("/api/v1/admin".length)}`));
    const tested = new Set(ROUTES.map((route) => `${route.method} ${route.path.split("?")[0]}`));
    // Routes another change is adding have their own tests of who may call them.
    expect(documented.filter((route) => !tested.has(route) && !/dead.?letter/i.test(route))).toEqual([]);
  });

  it.each(ROUTES.map((route) => [`${route.method} ${route.path}`, route] as const))("%s", async (_, route) => {
    const actual: Record<string, number | string> = {};
    for (const credential of CREDENTIALS) {
      const cell = { org: credential === "strangerAdmin" ? B : A, unique: `${credential.toLowerCase()}-${++sequence}` };
      const prepared = await route.prepare(cell);
      const { key, headers } = credentialFor(credential, prepared.environment ?? A.live);
      actual[credential] = outcome(await call(route.method, `/api/v1/admin${prepared.path}`, { key, headers, body: prepared.body }));
    }
    expect(actual).toEqual(Object.fromEntries(CREDENTIALS.map((credential, index) => [credential, route.expected[index]])));
  });
});

describe("organization keys", () => {
  it("are created once with the organization and listed without their hash or plain key", async () => {
    const org = await createOrganization("Listed keys");
    const listed = await call("GET", "/api/v1/admin/organization/keys", { key: org.adminKey });
    expect(listed.status).toBe(200);
    expect(listed.body.keys).toEqual([
      { id: expect.stringMatching(/^key_/), organizationId: org.id, role: "admin", name: "Default admin key", prefix: org.adminKey.slice(0, org.adminKey.length - 28), createdAt: expect.any(String), revokedAt: null },
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(org.adminKey);
    expect(JSON.stringify(listed.body)).not.toMatch(/hash/);
    // Refused bodies: a role that does not exist, a missing name.
    expect((await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "x", role: "owner" } })).status).toBe(400);
    expect((await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { role: "admin" } })).status).toBe(400);
  });

  it("stop working once revoked, and a rotated key keeps its role", async () => {
    const org = await createOrganization("Revoked organization key");
    const created = await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "CI", role: "deployer" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ role: "deployer", name: "CI", revokedAt: null, key: expect.stringMatching(new RegExp(`^ok_${org.id}_[a-z0-9]{32}$`)) });
    // Used (and so cached) before its revocation: the revocation still takes effect at once in this isolate.
    expect((await call("GET", "/api/v1/admin/config", { key: created.body.key })).status).toBe(200);
    const revoked = await call("DELETE", `/api/v1/admin/organization/keys/${created.body.id}`, { key: org.adminKey });
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).toEqual(expect.any(String));
    expect(revoked.body.key).toBeUndefined();
    const refused = await call("GET", "/api/v1/admin/config", { key: created.body.key });
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ status: "error", code: "invalid_api_key" });
    expect((await call("POST", `/api/v1/admin/organization/keys/${created.body.id}/rotate`, { key: org.adminKey })).status).toBe(409);

    const rotated = await call("POST", `/api/v1/admin/organization/keys/${(await call("GET", "/api/v1/admin/organization/keys", { key: org.adminKey })).body.keys[0].id}/rotate`, {
      key: org.adminKey,
    });
    expect(rotated.status).toBe(201);
    expect(rotated.body.role).toBe("admin");
    expect((await call("GET", "/api/v1/admin/organization", { key: org.adminKey })).status).toBe(401);
    expect((await call("GET", "/api/v1/admin/organization/keys", { key: rotated.body.key })).status).toBe(200);
  });

  it("a deployer writes the configuration and deploys anywhere, but creates no key and changes no environment", async () => {
    const org = await createOrganization("Deployer");
    const deployer = (await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "CI", role: "deployer" } })).body.key;
    const versionId = await publish(deployer, helloWorld(), [org.preview.id, org.live.id]);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key: deployer })).body.deployedVersionId).toBe(versionId);

    const environmentKey = await call("POST", `/api/v1/admin/environments/${org.live.id}/keys`, { key: deployer, body: { type: "secret" } });
    expect(environmentKey.status).toBe(403);
    expect(environmentKey.body).toMatchObject({ status: "error", code: "forbidden", message: expect.stringMatching(/deployer role may not create, revoke or rotate an environment's keys.*admin role/) });
    const organizationKey = await call("POST", "/api/v1/admin/organization/keys", { key: deployer, body: { name: "escalate", role: "admin" } });
    expect(organizationKey.status).toBe(403);
    expect((await call("PUT", `/api/v1/admin/environments/${org.live.id}/variables/X`, { key: deployer, body: { value: "1" } })).status).toBe(403);
    expect((await call("DELETE", `/api/v1/admin/environments/${org.preview.id}`, { key: deployer })).status).toBe(403);
    expect((await call("GET", "/api/v1/admin/organization/keys", { key: org.adminKey })).body.keys).toHaveLength(2);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.adminKey })).body.keys).toHaveLength(2);
  });

  it("a read-only key reads everything of its organization and changes nothing", async () => {
    const org = await createOrganization("Read-only");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const reader = (await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "dashboard", role: "read-only" } })).body.key;
    expect((await call("GET", "/api/v1/admin/environments", { key: reader })).body.environments).toHaveLength(2);
    expect(Object.keys((await call("GET", "/api/v1/admin/config", { key: reader })).body.features)).toEqual(["widget"]);
    expect((await call("GET", "/api/v1/admin/versions", { key: reader })).body.versions).toHaveLength(1);
    expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/keys`, { key: reader })).body.keys).toHaveLength(2);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/deployments`, { key: reader })).body.deployments).toHaveLength(1);

    const before = await call("GET", "/api/v1/admin/config", { key: reader });
    const write = await call("PUT", "/api/v1/admin/config", { key: reader, body: { features: {} } });
    expect(write.status).toBe(403);
    expect(write.body.message).toMatch(/read-only role may not write the configuration: this needs the admin or deployer role/);
    expect((await call("POST", "/api/v1/admin/versions", { key: reader })).status).toBe(403);
    expect((await call("POST", `/api/v1/admin/environments/${org.live.id}/rollback`, { key: reader })).status).toBe(403);
    const after = await call("GET", "/api/v1/admin/config", { key: reader });
    expect(after.body).toEqual(before.body);
    expect(after.headers.get("x-draft-revision")).toBe(before.headers.get("x-draft-revision"));
  });

  it("are admin credentials only: the decision routes and endpoints refuse them", async () => {
    const org = await createOrganization("Organization key on decisions");
    const document = helloWorld();
    document.workflows = { ping: { type: "endpoint", path: "ping", access: "publishable", source: "export default () => new Response('pong');" } };
    await publish(org.adminKey, document, [org.live.id]);
    const identityBody = { identity: { anonymousIdentifier: "visitor" } };
    for (const [path, body] of [
      ["/api/v1/access-checks", identityBody],
      ["/api/v1/surface-decisions", { ...identityBody, surfaceSlug: "hello-world" }],
      ["/api/v1/counter-updates", { ...identityBody, counterId: "default:feat_0000000000.enabled" }],
      ["/api/v1/identity-links", { identity: { userIdentifier: "u" }, anonymousIdentifier: "visitor" }],
    ] as const) {
      const refused = await call("POST", path, { key: org.adminKey, body });
      expect(refused.status, path).toBe(403);
      expect(refused.body).toMatchObject({ status: "error", statusCode: 403, code: "forbidden", message: expect.stringMatching(/Organization keys .* are admin credentials/) });
    }
    const endpoint = await call("GET", `/api/v1/envs/${org.live.id}/endpoints/ping`, { headers: { "x-mos-key": org.adminKey } });
    expect(endpoint.status).toBe(401);
    expect(endpoint.body).toMatchObject({ status: "error", code: "invalid_api_key" });
    expect((await call("GET", `/api/v1/envs/${org.live.id}/endpoints/ping`, { headers: { "x-mos-key": org.live.publishableKey } })).body).toBe("pong");
  });

  it("are written on the audit record of a meter change as the actor, with the role", async () => {
    const org = await createOrganization("Audited organization key");
    const granted = await call("POST", `/api/v1/admin/environments/${org.live.id}/identities/ada/credits/tokens/grants`, { key: org.adminKey, body: { amount: 5, reason: "welcome" } });
    expect(granted.status).toBe(200);
    const audit = await call("GET", `/api/v1/admin/events?kind=admin&environmentId=${org.live.id}`, { key: org.adminKey });
    const keyId = (await call("GET", "/api/v1/admin/organization/keys", { key: org.adminKey })).body.keys[0].id;
    expect(audit.body.events.map((event: any) => event.record.actor)).toEqual([{ kind: "organizationKey", keyId, role: "admin" }]);
  });
});

describe("an environment's secret key acts on its own environment only", () => {
  it("a preview key cannot deploy to live, revoke live's keys, set live's variables or delete live", async () => {
    const org = await createOrganization("Preview key against live");
    const versionId = await publish(org.adminKey, helloWorld(), [org.preview.id]);
    const liveKeys = (await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.adminKey })).body.keys;
    const key = org.preview.secretKey;
    const attempts = [
      await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key, body: { versionId } }),
      await call("POST", `/api/v1/admin/environments/${org.live.id}/rollback`, { key, body: { versionId } }),
      await call("DELETE", `/api/v1/admin/keys/${liveKeys[0].id}`, { key }),
      await call("POST", `/api/v1/admin/keys/${liveKeys[1].id}/rotate`, { key }),
      await call("POST", `/api/v1/admin/environments/${org.live.id}/keys`, { key, body: { type: "secret" } }),
      await call("PUT", `/api/v1/admin/environments/${org.live.id}/variables/CRM_TOKEN`, { key, body: { value: "stolen", secret: true } }),
      await call("PUT", `/api/v1/admin/environments/${org.live.id}/egress`, { key, body: { hosts: ["attacker.example"] } }),
    ];
    for (const refused of attempts) {
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({
        status: "error",
        code: "forbidden",
        message: expect.stringMatching(new RegExp(`acts on its own environment \\(${org.preview.id}\\) only.*${org.live.id}.*organization key`)),
      });
    }
    const deletion = await call("DELETE", `/api/v1/admin/environments/${org.live.id}`, { key });
    expect(deletion.status).toBe(403);
    expect(deletion.body.message).toMatch(/acts on its own environment only and may not delete environments: use an organization key with the admin role/);

    // Nothing of live moved.
    const liveNow = await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key: org.adminKey });
    expect(liveNow.body.deployedVersionId).toBeNull();
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.adminKey })).body.keys).toEqual(liveKeys);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/variables`, { key: org.adminKey })).body.variables).toEqual([]);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/egress`, { key: org.adminKey })).body.hosts).toEqual([]);
    expect((await call("GET", "/api/v1/admin/organization", { key: org.live.secretKey })).status).toBe(200);
    // Its own environment it still manages: deploys, keys, variables.
    expect((await call("POST", `/api/v1/admin/environments/${org.preview.id}/rollback`, { key, body: { versionId } })).status).toBe(201);
    expect((await call("PUT", `/api/v1/admin/environments/${org.preview.id}/variables/REGION`, { key, body: { value: "eu" } })).status).toBe(200);
  });

  it("reads the shared configuration but never writes it nor creates versions", async () => {
    const org = await createOrganization("Environment key and configuration");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const key = org.live.secretKey;
    expect(Object.keys((await call("GET", "/api/v1/admin/config", { key })).body.features)).toEqual(["widget"]);
    expect((await call("GET", "/api/v1/admin/features/widget", { key })).status).toBe(200);
    expect((await call("GET", "/api/v1/admin/versions", { key })).body.versions).toHaveLength(1);
    const write = await call("PUT", "/api/v1/admin/config", { key, body: { features: {} } });
    expect(write.status).toBe(403);
    expect(write.body.message).toMatch(/may not write the configuration: use an organization key with the admin or deployer role/);
    expect((await call("POST", "/api/v1/admin/features/widget/rename", { key, body: { slug: "gadget" } })).status).toBe(403);
    expect((await call("POST", "/api/v1/admin/versions", { key })).status).toBe(403);
    expect((await call("POST", "/api/v1/admin/environments", { key, body: { slug: "sneaky", type: "production" } })).status).toBe(403);
    expect((await call("PATCH", `/api/v1/admin/environments/${org.live.id}`, { key, body: { name: "Renamed" } })).status).toBe(403);
    expect(Object.keys((await call("GET", "/api/v1/admin/config", { key: org.adminKey })).body.features)).toEqual(["widget"]);
  });

  it("lists only its own environment, and reads only its own environment's events", async () => {
    const org = await createOrganization("Environment key and events");
    await publish(org.adminKey, helloWorld(), [org.preview.id, org.live.id]);
    for (const environment of [org.preview, org.live]) {
      const decided = await call("POST", "/api/v1/surface-decisions", { key: environment.publishableKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "v" } } });
      expect(decided.status).toBe(200);
    }
    const environments = await call("GET", "/api/v1/admin/environments", { key: org.live.secretKey });
    expect(environments.body.environments.map((environment: any) => environment.id)).toEqual([org.live.id]);

    const own = await call("GET", "/api/v1/admin/events?kind=surface_decision", { key: org.live.secretKey });
    expect(own.status).toBe(200);
    expect(own.body.events.map((event: any) => event.environmentId)).toEqual([org.live.id]);
    const all = await call("GET", "/api/v1/admin/events?kind=surface_decision", { key: org.adminKey });
    expect(all.body.events.map((event: any) => event.environmentId).sort()).toEqual([org.live.id, org.preview.id].sort());
    const other = await call("GET", `/api/v1/admin/events?environmentId=${org.preview.id}`, { key: org.live.secretKey });
    expect(other.status).toBe(403);
    expect(other.body.code).toBe("forbidden");
  });

  it("another organization's ids stay missing (404), never forbidden", async () => {
    const org = await createOrganization("Stranger ids");
    const stranger = await createOrganization("Stranger");
    const strangerKeys = (await call("GET", `/api/v1/admin/environments/${stranger.live.id}/keys`, { key: stranger.adminKey })).body.keys;
    for (const [method, path] of [
      ["GET", `/api/v1/admin/environments/${stranger.live.id}`],
      ["GET", `/api/v1/admin/environments/${stranger.live.id}/variables`],
      ["DELETE", `/api/v1/admin/keys/${strangerKeys[0].id}`],
      ["GET", `/api/v1/admin/events?environmentId=${stranger.live.id}`],
    ]) {
      const missing = await call(method!, path!, { key: org.live.secretKey });
      expect(missing.status, path).toBe(404);
      expect(missing.body.code).toBe("not_found");
    }
  });
});

describe("the permission checks fail closed", () => {
  const environment = { id: "env_0000000000000000", organizationId: "org_0000000000000000", slug: "live", name: "Live", type: "production", deployedVersionId: null, createdAt: "" } as const;
  const auth: AuthContext = {
    kind: "key",
    organizationId: environment.organizationId,
    environment,
    key: { id: "key_0", organizationId: environment.organizationId, environmentId: environment.id, type: "secret", name: "k", prefix: "sk_", createdAt: "", revokedAt: null },
  };

  it("an environment key on a route of one environment whose rule is not `own` is refused, even on its own environment", () => {
    const notOwn = (Object.keys(RULES) as (keyof typeof RULES)[]).filter((action) => RULES[action].environmentKey !== "own");
    expect(notOwn.length).toBeGreaterThan(0);
    for (const action of notOwn) {
      expect(() => authorizeEnvironment(auth, action, environment.id), action).toThrow(expect.objectContaining({ code: "forbidden" }));
    }
    expect(() => authorizeEnvironment(auth, "customers.read", environment.id)).not.toThrow();
    expect(() => authorizeEnvironment({ kind: "operator", organizationId: environment.organizationId }, "configuration.read", environment.id)).not.toThrow();
  });
});

describe("a user data store shared by environments", () => {
  /** The admin routes of one environment that reach its user data store, with what each needs. */
  const storeRoutes = (environmentId: string): [string, string, unknown?][] => [
    ["GET", `/api/v1/admin/environments/${environmentId}/customers`],
    ["GET", `/api/v1/admin/environments/${environmentId}/customers/ada@example.com`],
    ["PUT", `/api/v1/admin/environments/${environmentId}/customers/ada@example.com`, { stripeProductIds: ["prod_stolen"] }],
    ["DELETE", `/api/v1/admin/environments/${environmentId}/customers/ada@example.com`],
    ["GET", `/api/v1/admin/environments/${environmentId}/identities/ada@example.com/counters`],
    ["DELETE", `/api/v1/admin/environments/${environmentId}/identities/ada@example.com/counters/default:x.enabled`],
    ["GET", `/api/v1/admin/environments/${environmentId}/identities/ada@example.com/credits/tokens`],
    ["POST", `/api/v1/admin/environments/${environmentId}/identities/ada@example.com/credits/tokens/grants`, { amount: 1000, reason: "stolen" }],
  ];

  async function withSecondProductionEnvironment(org: TestOrganization) {
    const created = await must(call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: "live-eu", type: "production" } }), 201);
    return { id: created.body.environment.id as string, secretKey: created.body.keys.find((key: { type: string }) => key.type === "secret").key as string };
  }

  it("an environment key reaches customers, counters and credits only while no other environment shares its store", async () => {
    const org = await createOrganization("Shared store");
    await must(call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/ada@example.com`, { key: org.adminKey, body: { stripeProductIds: ["prod_live"] } }), 200);
    // Alone in the production store, live's key manages it.
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/customers/ada@example.com`, { key: org.live.secretKey })).status).toBe(200);

    const eu = await withSecondProductionEnvironment(org);
    for (const [keyName, key, environmentId] of [
      ["live-eu's key", eu.secretKey, eu.id],
      ["live's key", org.live.secretKey, org.live.id],
    ] as const) {
      for (const [method, path, body] of storeRoutes(environmentId)) {
        const refused = await call(method, path, { key, body });
        expect(refused.status, `${keyName}: ${method} ${path}`).toBe(403);
        expect(refused.body).toMatchObject({
          status: "error",
          code: "forbidden",
          message: expect.stringMatching(/user data store .* is shared with other environments .*use an organization key/),
        });
      }
    }
    // Nothing of live's users moved; the rest of each environment is still its own key's.
    const customer = await call("GET", `/api/v1/admin/environments/${eu.id}/customers/ada@example.com`, { key: org.adminKey });
    expect(customer.body.stripeProductIds).toEqual(["prod_live"]);
    expect((await call("GET", `/api/v1/admin/environments/${eu.id}/identities/ada@example.com/credits/tokens`, { key: org.adminKey })).body.balance).toBe(0);
    expect((await call("GET", `/api/v1/admin/environments/${eu.id}/variables`, { key: eu.secretKey })).status).toBe(200);
    // The preview store is still preview's alone.
    expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/customers`, { key: org.preview.secretKey })).status).toBe(200);
    // Organization keys and the operator reach the shared store through either environment.
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/customers`, { key: org.adminKey })).status).toBe(200);
    expect((await call("GET", `/api/v1/admin/environments/${eu.id}/customers`, asOperator(org))).status).toBe(200);
  });

  it("an admin credit grant's Idempotency-Key is one grant across the environments of a store", async () => {
    const org = await createOrganization("Shared store grants");
    const eu = await withSecondProductionEnvironment(org);
    const grant = (environmentId: string) =>
      call("POST", `/api/v1/admin/environments/${environmentId}/identities/ada/credits/tokens/grants`, {
        key: org.adminKey,
        headers: { "idempotency-key": "grant-once" },
        body: { amount: 5, reason: "welcome" },
      });
    expect((await grant(org.live.id)).body.balance).toBe(5);
    const again = await grant(eu.id);
    expect(again.status).toBe(200);
    expect(again.body.balance).toBe(5);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/ada/credits/tokens`, { key: org.adminKey })).body.balance).toBe(5);
    const audit = await call("GET", "/api/v1/admin/events?kind=admin", { key: org.adminKey });
    expect(audit.body.events.map((event: any) => [event.environmentId, event.record.action])).toEqual([[org.live.id, "credits.grant"]]);
  });
});

describe("concurrent rotations of one key", () => {
  async function rotateTwiceAtOnce(path: string, key: string) {
    const results = await Promise.all([call("POST", path, { key }), call("POST", path, { key })]);
    expect(results.map((result) => result.status).sort()).toEqual([201, 409]);
    const conflict = results.find((result) => result.status === 409)!;
    expect(conflict.body).toMatchObject({ status: "error", code: "conflict" });
    return results.find((result) => result.status === 201)!.body;
  }

  it("of an organization key: one rotation wins, the other is a 409, and one new key works", async () => {
    const org = await createOrganization("Concurrent organization key rotations");
    const created = await must(call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "CI", role: "deployer" } }), 201);
    const rotated = await rotateTwiceAtOnce(`/api/v1/admin/organization/keys/${created.body.id}/rotate`, org.adminKey);
    expect((await call("GET", "/api/v1/admin/config", { key: rotated.key })).status).toBe(200);
    expect((await call("GET", "/api/v1/admin/config", { key: created.body.key })).status).toBe(401);
    const keys = (await call("GET", "/api/v1/admin/organization/keys", { key: org.adminKey })).body.keys;
    expect(keys.filter((key: any) => key.name === "CI").map((key: any) => [key.id, key.revokedAt === null])).toEqual([
      [created.body.id, false],
      [rotated.id, true],
    ]);
  });

  it("of an environment's API key: one rotation wins, the other is a 409, and one new key works", async () => {
    const org = await createOrganization("Concurrent API key rotations");
    const created = await must(call("POST", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.adminKey, body: { type: "secret", name: "server" } }), 201);
    const rotated = await rotateTwiceAtOnce(`/api/v1/admin/keys/${created.body.id}/rotate`, org.adminKey);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key: rotated.key })).status).toBe(200);
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key: created.body.key })).status).toBe(401);
    const keys = (await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.adminKey })).body.keys;
    expect(keys.filter((key: any) => key.name === "server").map((key: any) => [key.id, key.revokedAt === null])).toEqual([
      [created.body.id, false],
      [rotated.id, true],
    ]);
  });
});
