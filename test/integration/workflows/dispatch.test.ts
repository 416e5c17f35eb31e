/**
 * The production runtime (Workers for Platforms) against fakes: a fake Cloudflare API that records uploads, and a
 * stub dispatch namespace that serves the *uploaded* script modules through the Worker Loader, so the dispatch
 * harness and protocol really run in workerd.
 */
import { env, exports, RpcTarget } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import outboundWorker from "../../../outbound/worker";
import { meterStub, userStoreKey } from "../../../durable-objects/meter/client";
import { preparedSnapshotFor } from "../../../workers/services/snapshots";
import { createMeterClient } from "../../../durable-objects/meter/client";
import { UNLIMITED_UNITS } from "../../../workers/engine";
import type { SnapshotWorkflow } from "../../../workers/engine/snapshot";
import { testGroup100 } from "../../../workers/engine/testGroup";
import { sha256Hex } from "../../../workers/lib/crypto";
import { compileWorkflowSource } from "../../../workers/workflows/compile";
import {
  DISPATCH_PROTOCOL,
  DispatchWorkflowRunner,
  uploadWorkflowScripts,
  uploadWorkflowScriptsIfConfigured,
  WorkflowUploadError,
  workflowScriptName,
} from "../../../workers/workflows/dispatchRunner";
import { LoaderWorkflowRunner, WORKFLOW_COMPATIBILITY_DATE } from "../../../workers/workflows/runner";
import { selectWorkflowRunner } from "../../../workers/workflows/select";
import { mintCapability, UTILS_HOST } from "../../../workers/workflows/capability";
import { handleWorkflowOutbound } from "../../../workers/workflows/outbound";
import { remoteScopeOf, scopedUtils } from "../../../workers/workflows/scopedUtils";
import { createOrganization, publish, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { helloWorld } from "../../support/examples";

async function workflowOf(slug: string, source: string, type: SnapshotWorkflow["type"] = "surface", settings: Partial<SnapshotWorkflow> = {}): Promise<SnapshotWorkflow> {
  const code = compileWorkflowSource(slug, source);
  return { slug, name: slug, type, code, codeHash: await sha256Hex(code), required: false, ...settings };
}

interface RecordedUpload {
  url: string;
  method: string;
  authorization: string | null;
  metadata: Record<string, unknown>;
  parts: Record<string, { type: string; text: string }>;
}

interface UploadedModules {
  metadata: { compatibility_date?: string; compatibility_flags?: string[] };
  modules: Record<string, string>;
}

/** Answers like `PUT …/dispatch/namespaces/{ns}/scripts/{name}`; keeps what was uploaded by script name. */
function fakeCloudflareApi(options: { failScript?: string } = {}) {
  const uploads: RecordedUpload[] = [];
  const scripts = new Map<string, UploadedModules>();
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const match = /^\/client\/v4\/accounts\/([^/]+)\/workers\/dispatch\/namespaces\/([^/]+)\/scripts\/([^/]+)$/.exec(url.pathname);
    if (url.host !== "api.cloudflare.com" || !match || request.method !== "PUT") {
      return Response.json({ success: false, errors: [{ code: 10000, message: "not found" }] }, { status: 404 });
    }
    const scriptName = match[3]!;
    if (scriptName === options.failScript) {
      return Response.json({ success: false, errors: [{ code: 10021, message: "Uncaught SyntaxError" }], messages: [], result: null }, { status: 400 });
    }
    const form = await request.formData();
    const parts: RecordedUpload["parts"] = {};
    let metadata: Record<string, unknown> = {};
    for (const [name, value] of form.entries()) {
      const file = value as unknown as File;
      const text = typeof value === "string" ? value : await file.text();
      if (name === "metadata") metadata = JSON.parse(text);
      else parts[name] = { type: typeof value === "string" ? "text/plain" : file.type, text };
    }
    uploads.push({ url: request.url, method: request.method, authorization: request.headers.get("authorization"), metadata, parts });
    scripts.set(scriptName, { metadata, modules: Object.fromEntries(Object.entries(parts).map(([name, part]) => [name, part.text])) });
    return Response.json({ success: true, errors: [], messages: [], result: { id: scriptName, etag: "x" } });
  }) as typeof globalThis.fetch;
  return { fetch, uploads, scripts };
}

/**
 * A dispatch namespace whose scripts are the uploaded modules (with the uploaded compatibility date and flags), run
 * in Worker Loader isolates. Like Workers for Platforms, a call's `outbound` parameters go with every fetch the
 * script makes to the outbound side — here the platform's WorkflowOutbound entrypoint bound to the call's `mos`
 * parameter (what outbound/worker.ts forwards to; the shim itself is tested below). Without outbound parameters the
 * script has no network at all.
 */
function stubNamespace(scripts: Map<string, UploadedModules>, binding: { outboundWorker: boolean } = { outboundWorker: true }) {
  const calls: { name: string; options: unknown }[] = [];
  const namespace = {
    get(name: string, _args?: unknown, options?: unknown) {
      calls.push({ name, options });
      const script = scripts.get(name);
      if (!script) throw new Error(`Worker ${name} not found in dispatch namespace`);
      const mos = (options as { outbound?: { mos?: string } } | undefined)?.outbound?.mos;
      // Outbound parameters are fixed per invocation, so each call with a token gets its own isolate.
      const worker = env.LOADER.get(`dispatch:${name}:${mos ? calls.length : "closed"}`, () => ({
        compatibilityDate: script.metadata.compatibility_date ?? "",
        compatibilityFlags: script.metadata.compatibility_flags ?? [],
        mainModule: "harness.js",
        modules: script.modules,
        env: {},
        // A binding without `outbound` ignores the parameters; with no network here, the script's fetch then fails.
        globalOutbound: mos && binding.outboundWorker ? exports.WorkflowOutbound({ props: { capability: mos } }) : null,
      }));
      return { fetch: (input: RequestInfo | URL, init?: RequestInit) => worker.getEntrypoint().fetch(new Request(input, init)) } as unknown as Fetcher;
    },
  };
  return { namespace, calls };
}

class RecordingUtils extends RpcTarget {
  fired: { name: string; payload: unknown }[] = [];
  fireTrigger(name: string, payload: unknown) {
    if (!/^[a-z0-9][a-z0-9._-]{0,99}$/.test(name)) throw new Error("bad trigger name");
    this.fired.push({ name, payload });
  }
}

const TEST_ORG = "org_test";
const TEST_ENV = "env_test";
const upload = (workflows: SnapshotWorkflow[], api: ReturnType<typeof fakeCloudflareApi>, organizationId = TEST_ORG, environmentId = TEST_ENV) =>
  uploadWorkflowScripts({ workflows, organizationId }, environmentId, { accountId: "acc123", namespace: "mos-workflows", apiToken: "cf-token", fetch: api.fetch });
const scriptOf = (workflow: SnapshotWorkflow, organizationId = TEST_ORG, environmentId = TEST_ENV) => workflowScriptName(organizationId, environmentId, workflow);

describe("uploadWorkflowScripts (deploy path) against a fake Cloudflare API", () => {
  it("PUTs one multipart module script per workflow version, named by organization, environment, harness and code", async () => {
    const api = fakeCloudflareApi();
    const a = await workflowOf("a", `export default () => ({ properties: { a: 1 } });`);
    const b = await workflowOf("b", `export default () => ({ properties: { b: 2 } });`);
    const sameAsA = { ...a, slug: "a-copy", name: "a-copy" };
    const uploaded = await upload([a, b, sameAsA], api);

    expect(await scriptOf(a)).toMatch(/^wf-[0-9a-f]{48}$/);
    // Identical code of another organization is another script: tenants never share module-level state.
    expect(await scriptOf(a, "org_other")).not.toBe(await scriptOf(a));
    // So is identical code of another environment of the same organization: their variables and secrets differ.
    expect(await scriptOf(a, TEST_ORG, "env_other")).not.toBe(await scriptOf(a));
    expect(await scriptOf(b)).not.toBe(await scriptOf(a));
    expect(uploaded).toEqual([
      { scriptName: await scriptOf(a), workflows: ["a", "a-copy"] },
      { scriptName: await scriptOf(b), workflows: ["b"] },
    ]);
    expect(api.uploads).toHaveLength(2);
    const first = api.uploads[0]!;
    expect(first.method).toBe("PUT");
    expect(first.url).toBe(`https://api.cloudflare.com/client/v4/accounts/acc123/workers/dispatch/namespaces/mos-workflows/scripts/${await scriptOf(a)}`);
    expect(first.authorization).toBe("Bearer cf-token");
    expect(first.metadata).toEqual({ main_module: "harness.js", compatibility_date: WORKFLOW_COMPATIBILITY_DATE, compatibility_flags: ["nodejs_als", "disallow_eval_during_startup"] });
    expect(Object.keys(first.parts).sort()).toEqual(["__mos_budget.js", "__mos_guard.js", "harness.js", "workflow.js"]);
    for (const part of Object.values(first.parts)) expect(part.type).toBe("application/javascript+module");
    expect(first.parts["workflow.js"]!.text).toBe(a.code);
    expect(first.parts["harness.js"]!.text).toContain(DISPATCH_PROTOCOL);
  });

  it("fails with the API's errors when an upload is refused", async () => {
    const broken = await workflowOf("broken", `export default () => ({});`);
    const api = fakeCloudflareApi({ failScript: await scriptOf(broken) });
    const failure = await upload([broken], api).catch((error) => error);
    expect(failure).toBeInstanceOf(WorkflowUploadError);
    expect(failure.status).toBe(400);
    expect(failure.message).toContain("Uncaught SyntaxError");
  });
});

describe("uploadWorkflowScriptsIfConfigured", () => {
  it("uploads only when the account, namespace and token are configured", async () => {
    const workflow = await workflowOf("w", `export default () => ({});`);
    const api = fakeCloudflareApi();
    expect(await uploadWorkflowScriptsIfConfigured(env, { workflows: [workflow], organizationId: TEST_ORG }, TEST_ENV, api.fetch)).toBeNull();
    expect(api.uploads).toHaveLength(0);
    const configured = { ...env, CF_ACCOUNT_ID: "acc9", DISPATCH_NAMESPACE: "ns9", CF_API_TOKEN: "tok9" } as unknown as Env;
    expect(await uploadWorkflowScriptsIfConfigured(configured, { workflows: [workflow], organizationId: TEST_ORG }, TEST_ENV, api.fetch)).toEqual([{ scriptName: await scriptOf(workflow), workflows: ["w"] }]);
    expect(api.uploads[0]!.url).toBe(`https://api.cloudflare.com/client/v4/accounts/acc9/workers/dispatch/namespaces/ns9/scripts/${await scriptOf(workflow)}`);
    expect(api.uploads[0]!.authorization).toBe("Bearer tok9");
  });
});

describe("DispatchWorkflowRunner against a stub namespace", () => {
  async function deployed(sources: Record<string, string>, type: SnapshotWorkflow["type"] = "surface") {
    const api = fakeCloudflareApi();
    const workflows = await Promise.all(Object.entries(sources).map(([slug, source]) => workflowOf(slug, source, type)));
    await upload(workflows, api);
    const stub = stubNamespace(api.scripts);
    return { workflows, stub, runner: new DispatchWorkflowRunner(stub.namespace, { organizationId: TEST_ORG, environmentId: TEST_ENV }) };
  }

  it("runs the uploaded script over the fetch protocol, with args, testGroup100 and replayed triggers", async () => {
    const { workflows, stub, runner } = await deployed({
      surface: `export default async ({ identity, utils }: any) => {
        await utils.triggers.fire("greeted", { who: identity.identifier });
        return { properties: { hello: identity.identifier, group: await utils.testGroup100("abc") } };
      };`,
    });
    const utils = new RecordingUtils();
    const outcome = await runner.run({ workflow: workflows[0]!, args: { identity: { identifier: "u-1" } }, utils, deadlineMs: 2000 });
    expect(outcome).toMatchObject({ ok: true, value: { properties: { hello: "u-1", group: testGroup100("abc") } } });
    expect(utils.fired).toEqual([{ name: "greeted", payload: { who: "u-1" } }]);
    expect(stub.calls).toEqual([{ name: await scriptOf(workflows[0]!), options: { limits: { cpuMs: 50, subRequests: 0 } } }]);
  });

  it("without an outbound Worker, reports data utils as unavailable; throws and budget overruns are failures", async () => {
    const { workflows, runner } = await deployed({
      data: `export default async ({ utils }: any) => ({ properties: { v: await utils.customData.get("k") } });`,
      throws: `export default () => { throw new Error("boom"); };`,
      loops: `export default () => { while (true) {} };`,
    });
    const run = (index: number) => runner.run({ workflow: workflows[index]!, args: {}, utils: new RecordingUtils(), deadlineMs: 5000 });
    expect(await run(0)).toMatchObject({ ok: false, kind: "threw", error: "utils.customData.get is not available to this workflow in the dispatch runtime (no outbound Worker is configured)" });
    expect(await run(1)).toMatchObject({ ok: false, kind: "threw", error: "boom" });
    expect(await run(2)).toMatchObject({ ok: false, kind: "budget" });
  });

  it("a script missing from the namespace is a failure, not an exception", async () => {
    const runner = new DispatchWorkflowRunner(stubNamespace(new Map()).namespace, { organizationId: TEST_ORG, environmentId: TEST_ENV });
    const missing = await workflowOf("missing", `export default () => ({});`);
    const outcome = await runner.run({ workflow: missing, args: {}, utils: new RecordingUtils(), deadlineMs: 1000 });
    expect(outcome).toMatchObject({ ok: false, error: expect.stringContaining("not found in dispatch namespace") });
  });

  it("passes each call the workflow's CPU limit: its own cpuMs, else its type's default", async () => {
    const api = fakeCloudflareApi();
    const tuned = await workflowOf("tuned", `export default () => ({ properties: {} });`, "surface", { cpuMs: 120 });
    const action = await workflowOf("act", `export default () => null;`, "action", { triggers: ["x"] });
    await upload([tuned, action], api);
    const stub = stubNamespace(api.scripts);
    const runner = new DispatchWorkflowRunner(stub.namespace, { organizationId: TEST_ORG, environmentId: TEST_ENV });
    expect(await runner.run({ workflow: tuned, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true });
    expect(await runner.run({ workflow: action, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true });
    expect(stub.calls.map((call) => call.options)).toEqual([{ limits: { cpuMs: 120, subRequests: 0 } }, { limits: { cpuMs: 1000, subRequests: 0 } }]);
  });

  it("scripts are per environment: each environment runs its own upload, and module state never crosses them", async () => {
    const api = fakeCloudflareApi();
    // The workflow keeps the first secret it saw in a global, as careless code would.
    const workflow = await workflowOf("keeper", `let kept: string | undefined;\nexport default ({ env }: any) => ({ properties: { kept: (kept ??= env.SECRET) } });`);
    await upload([workflow], api, TEST_ORG, "env_live");
    const stub = stubNamespace(api.scripts);
    const runnerOf = (environmentId: string) => new DispatchWorkflowRunner(stub.namespace, { organizationId: TEST_ORG, environmentId });
    const call = (environmentId: string, secret: string) =>
      runnerOf(environmentId).run({ workflow, args: { env: { SECRET: secret } }, utils: new RecordingUtils(), deadlineMs: 2000 });
    expect(await call("env_live", "live-secret")).toMatchObject({ ok: true, value: { properties: { kept: "live-secret" } } });
    // Deployed to live only: preview has no script of its own yet and never borrows live's.
    expect(await call("env_preview", "preview-secret")).toMatchObject({ ok: false, error: expect.stringContaining("not found in dispatch namespace") });
    await upload([workflow], api, TEST_ORG, "env_preview");
    expect(await call("env_preview", "preview-secret")).toMatchObject({ ok: true, value: { properties: { kept: "preview-secret" } } });
    expect(await call("env_live", "live-secret-2")).toMatchObject({ ok: true, value: { properties: { kept: "live-secret" } } });
    expect(new Set(stub.calls.map((call) => call.name))).toEqual(new Set([await scriptOf(workflow, TEST_ORG, "env_live"), await scriptOf(workflow, TEST_ORG, "env_preview")]));
  });

  it("passes endpoint requests through and returns the workflow's Response as is", async () => {
    const { workflows, runner } = await deployed(
      {
        echo: `export default async (request: Request, { identity, path, utils }: any) => {
          await utils.triggers.fire("echoed", { path });
          const body = await request.text();
          return new Response(JSON.stringify({ method: request.method, url: request.url, body, who: identity.identifier, h: request.headers.get("x-custom") }), {
            status: 201, headers: { "content-type": "application/json", "x-from-workflow": "yes" },
          });
        };`,
        bad: `export default () => "not a response";`,
      },
      "endpoint",
    );
    const utils = new RecordingUtils();
    const request = new Request("https://platform.test/api/v1/envs/env_1/endpoints/echo?x=1", { method: "POST", headers: { "x-custom": "c" }, body: "héllo" });
    const outcome = await runner.runEndpoint({ workflow: workflows[0]!, args: { identity: { identifier: "anon_1" }, path: "echo" }, utils, deadlineMs: 2000 }, request);
    expect(outcome.ok).toBe(true);
    const response = (outcome as { value: Response }).value;
    expect(response.status).toBe(201);
    expect(response.headers.get("x-from-workflow")).toBe("yes");
    expect(response.headers.get("x-mos-triggers")).toBeNull();
    expect(await response.json()).toEqual({ method: "POST", url: "https://platform.test/api/v1/envs/env_1/endpoints/echo?x=1", body: "héllo", who: "anon_1", h: "c" });
    expect(utils.fired).toEqual([{ name: "echoed", payload: { path: "echo" } }]);

    const bad = await runner.runEndpoint({ workflow: workflows[1]!, args: {}, utils, deadlineMs: 2000 }, new Request("https://platform.test/x"));
    expect(bad).toMatchObject({ ok: false, error: "an endpoint workflow must return a Response" });
  });
});

describe("runtime selection", () => {
  it("uses the dispatch namespace when DISPATCHER is bound, else the Worker Loader", () => {
    const withDispatcher = { ...env, DISPATCHER: stubNamespace(new Map()).namespace } as unknown as Env;
    const target = { organizationId: TEST_ORG, environmentId: "env_1", egressHosts: [] };
    expect(selectWorkflowRunner(withDispatcher, undefined, target)).toBeInstanceOf(DispatchWorkflowRunner);
    expect(selectWorkflowRunner(env, undefined, target)).toBeInstanceOf(LoaderWorkflowRunner);
  });

  it("gives dispatched workflows subrequests and a capability only when the outbound Worker is configured", async () => {
    const api = fakeCloudflareApi();
    const workflow = await workflowOf("w", `export default () => ({});`);
    await upload([workflow], api, TEST_ORG, "env_9");
    const stub = stubNamespace(api.scripts);
    const target = { organizationId: TEST_ORG, environmentId: "env_9", egressHosts: ["api.allowed.test"] };
    const bare = selectWorkflowRunner({ ...env, DISPATCHER: stub.namespace } as unknown as Env, undefined, target);
    expect(await bare.run({ workflow, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: {} });
    expect(stub.calls[0]!.options).toEqual({ limits: { cpuMs: 50, subRequests: 0 } });

    const configured = { ...env, DISPATCHER: stub.namespace, WORKFLOW_OUTBOUND_WORKER: "edge-monetization-outbound" } as unknown as Env;
    const runner = selectWorkflowRunner(configured, undefined, target);
    expect(await runner.run({ workflow, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: {} });
    // First a probe (one subrequest) proves the outbound Worker is in the path; then the call itself.
    expect(stub.calls.slice(1).map((call) => call.options)).toEqual([
      { limits: { cpuMs: 50, subRequests: 1 }, outbound: { mos: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) } },
      { limits: { cpuMs: 50, subRequests: 50 }, outbound: { mos: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/) } },
    ]);
    // The probe is remembered for this binding: the next call dispatches once.
    expect(await runner.run({ workflow, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true });
    expect(stub.calls).toHaveLength(4);
  });

  it("fails closed when WORKFLOW_OUTBOUND_WORKER is set but the binding has no outbound Worker", async () => {
    const api = fakeCloudflareApi();
    const workflow = await workflowOf("w", `export default async ({ utils }: any) => ({ properties: { v: await utils.customData.get("k") } });`);
    await upload([workflow], api, TEST_ORG, "env_9");
    const stub = stubNamespace(api.scripts, { outboundWorker: false });
    const missing = expectConsoleError("dispatch_outbound_missing");
    const misconfigured = { ...env, DISPATCHER: stub.namespace, WORKFLOW_OUTBOUND_WORKER: "edge-monetization-outbound" } as unknown as Env;
    const runner = selectWorkflowRunner(misconfigured, undefined, { organizationId: TEST_ORG, environmentId: "env_9", egressHosts: ["api.allowed.test"] });
    const outcome = await runner.run({ workflow, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 });
    expect(outcome).toMatchObject({ ok: false, error: expect.stringContaining("no outbound Worker is configured") });
    // The probe got no echo, so the call itself ran without subrequests or a capability.
    expect(stub.calls.map((call) => call.options)).toEqual([
      { limits: { cpuMs: 50, subRequests: 1 }, outbound: { mos: expect.any(String) } },
      { limits: { cpuMs: 50, subRequests: 0 } },
    ]);
    // The operator is told: the probe's verdict is logged as an error (JSON, for log alerts).
    expect(missing.lines.map((line) => JSON.parse(line).event)).toEqual(["dispatch_outbound_missing"]);
  });
});

describe("dispatched workflows reach platform data and the network only through the outbound Worker", () => {
  const OUTBOUND_ENV = { ...env, WORKFLOW_OUTBOUND_WORKER: "edge-monetization-outbound" } as unknown as Env;
  let orgA: TestOrganization;
  let orgB: TestOrganization;
  let versionA: string;
  let versionB: string;

  beforeAll(async () => {
    orgA = await createOrganization("Dispatch A");
    orgB = await createOrganization("Dispatch B");
    const document = helloWorld();
    document.triggers = { "dispatched.done": { schema: { type: "object", required: ["ok"] } } };
    versionA = await publish(orgA.adminKey, document, [orgA.live.id]);
    versionB = await publish(orgB.adminKey, helloWorld(), [orgB.live.id]);
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function utilsFor(org: TestOrganization, versionId: string, identifier: string, options: { readOnly?: boolean; counterLimit?: number } = {}) {
    const prepared = await preparedSnapshotFor(env.DB, versionId);
    const counterId = `default:${prepared.snapshot.features[0]!.id}.enabled`;
    const fired: { name: string; payload: unknown }[] = [];
    const utils = scopedUtils({
      meter: createMeterClient(env.METER, 200),
      organizationId: org.id,
      store: "default",
      prepared,
      identifier: () => identifier,
      authenticated: () => true,
      readOnly: options.readOnly ?? false,
      counterSettings: new Map([[counterId, { limit: options.counterLimit ?? 2, period: "lifetime" as const, uniqueResources: false }]]),
      fireTrigger: (name, payload) => fired.push({ name, payload }),
    });
    return { utils, counterId, fired };
  }

  async function dispatched(org: TestOrganization, source: string, hosts: string[] = [], type: SnapshotWorkflow["type"] = "surface") {
    const api = fakeCloudflareApi();
    const workflow = await workflowOf(`wf-${type}`, source, type);
    await upload([workflow], api, org.id, org.live.id);
    const stub = stubNamespace(api.scripts);
    const target = { organizationId: org.id, environmentId: org.live.id, egressHosts: hosts };
    const runner = selectWorkflowRunner({ ...OUTBOUND_ENV, DISPATCHER: stub.namespace } as unknown as Env, undefined, target);
    return { workflow, runner, stub };
  }

  it("customData, counters, resolveJwt and triggers work as in the loader runtime, scoped to the call's user", async () => {
    const { utils, counterId, fired } = await utilsFor(orgA, versionA, "dispatch-user-1");
    const { workflow, runner } = await dispatched(
      orgA,
      `export default async ({ utils, counterId }: any) => {
        await utils.customData.set("plan", { tier: "gold" });
        await utils.customData.set("scratch", 1);
        const plan = await utils.customData.get("plan");
        const deleted = await utils.customData.delete("scratch");
        const first = await utils.counters.consume(counterId);
        const second = await utils.counters.consume(counterId);
        const third = await utils.counters.consume(counterId);
        const jwt = await utils.resolveJwt("not-a-jwt");
        await utils.triggers.fire("dispatched.done", { ok: true });
        let unknownCounter = "";
        try { await utils.counters.consume("default:feat_nope.enabled"); } catch (error) { unknownCounter = (error as Error).message; }
        return { properties: { plan, deleted, used: [first.consumedUnits, second.consumedUnits, third.consumedUnits], access: [first.hasAccess, second.hasAccess, third.hasAccess], jwtOk: jwt.ok, unknownCounter } };
      };`,
    );
    const outcome = await runner.run({ workflow, args: { counterId }, utils, deadlineMs: 5000 });
    expect(outcome).toMatchObject({
      ok: true,
      value: { properties: { plan: { tier: "gold" }, deleted: true, used: [1, 2, 2], access: [true, true, false], jwtOk: false, unknownCounter: expect.stringContaining("unknown counter") } },
    });
    expect(fired).toEqual([{ name: "dispatched.done", payload: { ok: true } }]);

    // The writes landed in org A's object for this signed-in user, exactly where the loader runtime puts them.
    const user = meterStub(env.METER, userStoreKey(orgA.id, "default", true), "dispatch-user-1");
    expect(await user.customDataGet("plan")).toEqual({ tier: "gold" });
    expect(await user.customDataGet("scratch")).toBeNull();
  });

  it("a workflow of tenant B cannot read tenant A's custom data, even for the same identifier", async () => {
    const a = await utilsFor(orgA, versionA, "shared-identifier");
    const b = await utilsFor(orgB, versionB, "shared-identifier");
    const writer = await dispatched(orgA, `export default async ({ utils }: any) => { await utils.customData.set("secret", "A only"); return {}; };`);
    expect(await writer.runner.run({ workflow: writer.workflow, args: {}, utils: a.utils, deadlineMs: 5000 })).toMatchObject({ ok: true });
    const reader = await dispatched(orgB, `export default async ({ utils }: any) => ({ properties: { seen: await utils.customData.get("secret") } });`);
    expect(await reader.runner.run({ workflow: reader.workflow, args: {}, utils: b.utils, deadlineMs: 5000 })).toMatchObject({ ok: true, value: { properties: { seen: null } } });
    expect(await meterStub(env.METER, userStoreKey(orgA.id, "default", true), "shared-identifier").customDataGet("secret")).toBe("A only");
  });

  it("provisioning workflows keep read-only utils in the dispatch runtime", async () => {
    const { utils } = await utilsFor(orgA, versionA, "dispatch-ro", { readOnly: true });
    const { workflow, runner } = await dispatched(orgA, `export default async ({ utils }: any) => { await utils.customData.set("k", 1); return []; };`, [], "provisioning");
    expect(await runner.run({ workflow, args: {}, utils, deadlineMs: 5000 })).toMatchObject({
      ok: false,
      kind: "threw",
      error: "customData.set is not available to provisioning workflows (their utils are read-only)",
    });
  });

  it("egress: hosts off the allow-list get 403, allow-listed hosts are forwarded, every attempt is logged", async () => {
    const { utils } = await utilsFor(orgA, versionA, "dispatch-egress");
    const { workflow, runner } = await dispatched(
      orgA,
      `export default async ({ target }: any) => {
        const response = await fetch(target);
        return { properties: { status: response.status, body: await response.text() } };
      };`,
      ["api.allowed.test"],
    );
    const logs: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logs.push(String(line));
    });
    const denied = await runner.run({ workflow, args: { target: "https://evil.test/steal" }, utils, deadlineMs: 5000 });
    expect(denied).toMatchObject({ ok: true, value: { properties: { status: 403, body: "Outbound request to evil.test is not on this environment's egress allow-list" } } });

    const realFetch = globalThis.fetch;
    const forwarded: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).host !== "api.allowed.test") return realFetch(input, init);
      forwarded.push(request.url);
      return new Response("allowed data");
    });
    const allowed = await runner.run({ workflow, args: { target: "https://api.allowed.test/data" }, utils, deadlineMs: 5000 });
    expect(allowed).toMatchObject({ ok: true, value: { properties: { status: 200, body: "allowed data" } } });
    expect(forwarded).toEqual(["https://api.allowed.test/data"]);
    const egress = logs.filter((line) => line.includes("workflow_egress")).map((line) => JSON.parse(line));
    expect(egress).toEqual([
      { event: "workflow_egress", environmentId: orgA.live.id, workflow: workflow.slug, method: "GET", host: "evil.test", allowed: false },
      { event: "workflow_egress", environmentId: orgA.live.id, workflow: workflow.slug, method: "GET", host: "api.allowed.test", allowed: true },
    ]);
  });

  it("the platform refuses requests without a valid capability: missing, forged, tampered or expired", async () => {
    const utilsRequest = () => new Request(`https://${UTILS_HOST}/v1/customDataGet`, { method: "POST", body: JSON.stringify({ args: ["plan"] }) });
    const capability = { environmentId: orgA.live.id, workflow: "w", hosts: [] };
    const valid = await mintCapability(env.SECRETS_KEY, capability, 1000);
    const okResponse = await handleWorkflowOutbound(env, utilsRequest(), valid);
    expect(okResponse.status).toBe(200);
    expect(await okResponse.json()).toEqual({ ok: false, error: "utils are not available to this workflow call" });

    const forged = await mintCapability(btoa("another-deployment-key-32-bytes!"), capability, 1000);
    const [header, payload, signature] = valid.split(".");
    const claims = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")));
    claims.cap.hosts = ["evil.test"];
    const tampered = `${header}.${btoa(JSON.stringify(claims)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")}.${signature}`;
    for (const token of [undefined, "", "garbage", forged, tampered]) {
      const response = await handleWorkflowOutbound(env, new Request("https://evil.test/"), token);
      expect(response.status).toBe(403);
    }
    vi.useFakeTimers({ now: Date.now() + 10 * 60 * 1000, toFake: ["Date"] });
    try {
      expect((await handleWorkflowOutbound(env, utilsRequest(), valid)).status).toBe(403);
    } finally {
      vi.useRealTimers();
    }
  });

  it("the outbound Worker hands each request and its call's parameter to the platform over RPC", async () => {
    const { utils } = await utilsFor(orgA, versionA, "dispatch-shim");
    await utils.customDataSet("greeting", "hello from A");
    const scope = await remoteScopeOf(utils);
    const token = await mintCapability(env.SECRETS_KEY, { environmentId: orgA.live.id, workflow: "w", hosts: [], utils: scope! }, 1000);
    const platform = exports.WorkflowOutbound({ props: undefined });
    const read = await outboundWorker.fetch(new Request(`https://${UTILS_HOST}/v1/customDataGet`, { method: "POST", body: JSON.stringify({ args: ["greeting"] }) }), { PLATFORM: platform, mos: token });
    expect(await read.json()).toEqual({ ok: true, value: "hello from A" });
    const egress = await outboundWorker.fetch(new Request("https://evil.test/"), { PLATFORM: platform, mos: token });
    expect(egress.status).toBe(403);
    const unsigned = await outboundWorker.fetch(new Request(`https://${UTILS_HOST}/v1/customDataGet`, { method: "POST", body: "{}" }), { PLATFORM: platform });
    expect(unsigned.status).toBe(403);
  });

  it("answers unknown utils calls and malformed arguments with errors, never by running them", async () => {
    const { utils } = await utilsFor(orgA, versionA, "dispatch-bad-args");
    const { workflow, runner } = await dispatched(
      orgA,
      `export default async () => {
        const post = async (path: string, body: string) => {
          const response = await fetch("https://${UTILS_HOST}" + path, { method: "POST", body });
          return [response.status, await response.json()];
        };
        return {
          properties: {
            unknown: await post("/v1/fireTrigger", JSON.stringify({ args: ["x", {}] })),
            notJson: await post("/v1/customDataGet", "{"),
            tooMany: await post("/v1/customDataGet", JSON.stringify({ args: ["a", "b"] })),
            badKey: await post("/v1/customDataGet", JSON.stringify({ args: [""] })),
          },
        };
      };`,
    );
    const outcome = await runner.run({ workflow, args: {}, utils, deadlineMs: 5000 });
    expect(outcome).toMatchObject({
      ok: true,
      value: {
        properties: {
          unknown: [404, { ok: false, error: "unknown utils call" }],
          notJson: [400, { ok: false }],
          tooMany: [400, { ok: false }],
          badKey: [200, { ok: false, error: "custom data keys must be strings of 1-999 characters" }],
        },
      },
    });
  });

  it("refuses oversized utils bodies and results without buffering them whole", async () => {
    const { utils } = await utilsFor(orgA, versionA, "dispatch-big");
    const big = await dispatched(
      orgA,
      `export default async () => {
        const response = await fetch("https://${UTILS_HOST}/v1/customDataSet", { method: "POST", body: JSON.stringify({ args: ["k", "x".repeat(300 * 1024)] }) });
        return { properties: { status: response.status, body: await response.json() } };
      };`,
    );
    expect(await big.runner.run({ workflow: big.workflow, args: {}, utils, deadlineMs: 5000 })).toMatchObject({
      ok: true,
      value: { properties: { status: 413, body: { ok: false, error: "utils arguments must be at most 128 KiB" } } },
    });
    const huge = await dispatched(orgA, `export default () => ({ properties: { blob: "x".repeat(2 * 1024 * 1024) } });`);
    expect(await huge.runner.run({ workflow: huge.workflow, args: {}, utils, deadlineMs: 5000 })).toMatchObject({
      ok: false,
      kind: "threw",
      error: "the workflow's result is larger than 1048576 bytes",
    });
  });

  it("resolves an endpoint caller's plan limits only for code that uses counters", async () => {
    const prepared = await preparedSnapshotFor(env.DB, versionA);
    const counterId = `default:${prepared.snapshot.features[0]!.id}.enabled`;
    const resolutions: string[] = [];
    const utilsWithLazyLimits = (identifier: string) =>
      scopedUtils({
        meter: createMeterClient(env.METER, 200),
        organizationId: orgA.id,
        store: "default",
        prepared,
        identifier: () => identifier,
        authenticated: () => true,
        readOnly: false,
        resolveCounterSettings: async () => {
          resolutions.push(identifier);
          return new Map([[counterId, { limit: 7, period: "lifetime" as const, uniqueResources: false }]]);
        },
        fireTrigger: () => {},
      });
    const plain = await dispatched(orgA, `export default async (request: Request) => new Response("no metering here");`, [], "endpoint");
    const plainOutcome = await plain.runner.runEndpoint({ workflow: plain.workflow, args: {}, utils: utilsWithLazyLimits("lazy-1"), deadlineMs: 5000 }, new Request("https://platform.test/x"));
    expect(plainOutcome.ok).toBe(true);
    expect(resolutions).toEqual([]);

    const metering = await dispatched(
      orgA,
      `export default async (request: Request, { utils, counterId }: any) => Response.json(await utils.counters.consume(counterId));`,
      [],
      "endpoint",
    );
    const outcome = await metering.runner.runEndpoint({ workflow: metering.workflow, args: { counterId }, utils: utilsWithLazyLimits("lazy-2"), deadlineMs: 5000 }, new Request("https://platform.test/x"));
    expect(outcome.ok).toBe(true);
    expect(await (outcome as { value: Response }).value.json()).toMatchObject({ consumedUnits: 1, totalUnits: 7, hasAccess: true });
    expect(resolutions).toEqual(["lazy-2"]);
  });

  it("reports an unlimited counter under the limit it overrides, and refuses tokens whose overridden limit is malformed", async () => {
    const prepared = await preparedSnapshotFor(env.DB, versionA);
    const counterId = `default:${prepared.snapshot.features[0]!.id}.enabled`;
    // A plan's `on` over another plan's metered 3: counted without a ceiling, reported under the 3.
    const unlimited = { limit: UNLIMITED_UNITS, period: "lifetime" as const, uniqueResources: false, overriddenLimit: 3 };
    const utils = scopedUtils({
      meter: createMeterClient(env.METER, 200),
      organizationId: orgA.id,
      store: "default",
      prepared,
      identifier: () => "dispatch-unlimited",
      authenticated: () => true,
      readOnly: false,
      counterSettings: new Map([[counterId, unlimited]]),
      fireTrigger: () => {},
    });
    const { workflow, runner } = await dispatched(
      orgA,
      `export default async ({ utils, counterId }: any) => {
        const readings = [await utils.counters.consume(counterId), await utils.counters.incrementCounter(counterId, 1), await utils.counters.incrementCounter(counterId, 2)];
        return { properties: { readings: readings.map((r: any) => [r.consumedUnits, r.remainingUnits, r.totalUnits, r.hasAccess]) } };
      };`,
    );
    expect(await runner.run({ workflow, args: { counterId }, utils, deadlineMs: 5000 })).toMatchObject({
      ok: true,
      value: { properties: { readings: [[1, 2, 3, true], [2, 1, 3, true], [4, 0, 3, true]] } },
    });

    const scope = (await remoteScopeOf(utils))!;
    for (const overriddenLimit of [-1, 1.5, Number.MAX_SAFE_INTEGER + 2, "3"]) {
      const token = await mintCapability(env.SECRETS_KEY, { environmentId: orgA.live.id, workflow: "w", hosts: [], utils: { ...scope, counters: [[counterId, { ...unlimited, overriddenLimit: overriddenLimit as number }]] } }, 1000);
      const request = new Request(`https://${UTILS_HOST}/v1/countersConsume`, { method: "POST", body: JSON.stringify({ args: [counterId, {}] }) });
      expect((await handleWorkflowOutbound(env, request, token)).status).toBe(403);
    }
  });

  it("bounds triggers: at most 50 per request, payloads of at most 32 KiB; undefined is not custom data", async () => {
    const { utils, fired } = await utilsFor(orgA, versionA, "dispatch-triggers");
    const { workflow, runner } = await dispatched(
      orgA,
      `export default async ({ utils }: any) => {
        for (let i = 0; i < 60; i++) await utils.triggers.fire("dispatched.done", { ok: true, i });
        let setUndefined = "";
        try { await utils.customData.set("k", undefined); } catch (error) { setUndefined = (error as Error).message; }
        return { properties: { setUndefined } };
      };`,
    );
    expect(await runner.run({ workflow, args: {}, utils, deadlineMs: 5000 })).toMatchObject({
      ok: true,
      value: { properties: { setUndefined: "custom data values must be JSON of at most 64 KiB" } },
    });
    expect(fired).toHaveLength(50);
    const big = await utilsFor(orgA, versionA, "dispatch-big-trigger");
    expect(() => big.utils.fireTrigger("dispatched.done", { ok: true, blob: "x".repeat(40 * 1024) })).toThrow("trigger payloads must be JSON of at most 32 KiB");
    expect(big.fired).toEqual([]);
  });
});
