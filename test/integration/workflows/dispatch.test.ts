/**
 * The production runtime (Workers for Platforms) against fakes: a fake Cloudflare API that records uploads, and a
 * stub dispatch namespace that serves the *uploaded* script modules through the Worker Loader, so the dispatch
 * harness and protocol really run in workerd.
 */
import { env, RpcTarget } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
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

async function workflowOf(slug: string, source: string, type: SnapshotWorkflow["type"] = "surface"): Promise<SnapshotWorkflow> {
  const code = compileWorkflowSource(slug, source);
  return { slug, name: slug, type, code, codeHash: await sha256Hex(code), required: false };
}

interface RecordedUpload {
  url: string;
  method: string;
  authorization: string | null;
  metadata: Record<string, unknown>;
  parts: Record<string, { type: string; text: string }>;
}

/** Answers like `PUT …/dispatch/namespaces/{ns}/scripts/{name}`; keeps what was uploaded by script name. */
function fakeCloudflareApi(options: { failScript?: string } = {}) {
  const uploads: RecordedUpload[] = [];
  const scripts = new Map<string, Record<string, string>>();
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
    scripts.set(scriptName, Object.fromEntries(Object.entries(parts).map(([name, part]) => [name, part.text])));
    return Response.json({ success: true, errors: [], messages: [], result: { id: scriptName, etag: "x" } });
  }) as typeof globalThis.fetch;
  return { fetch, uploads, scripts };
}

/** A dispatch namespace whose scripts are the uploaded modules, run in Worker Loader isolates (no network). */
function stubNamespace(scripts: Map<string, Record<string, string>>) {
  const calls: { name: string; options: unknown }[] = [];
  const namespace = {
    get(name: string, _args?: unknown, options?: unknown) {
      calls.push({ name, options });
      const modules = scripts.get(name);
      if (!modules) throw new Error(`Worker ${name} not found in dispatch namespace`);
      const worker = env.LOADER.get(`dispatch:${name}`, () => ({
        compatibilityDate: WORKFLOW_COMPATIBILITY_DATE,
        mainModule: "harness.js",
        modules,
        env: {},
        globalOutbound: null,
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

const upload = (workflows: SnapshotWorkflow[], api: ReturnType<typeof fakeCloudflareApi>) =>
  uploadWorkflowScripts({ workflows }, { accountId: "acc123", namespace: "mos-workflows", apiToken: "cf-token", fetch: api.fetch });

describe("uploadWorkflowScripts (deploy path) against a fake Cloudflare API", () => {
  it("PUTs one multipart module script per workflow version, named by code hash", async () => {
    const api = fakeCloudflareApi();
    const a = await workflowOf("a", `export default () => ({ properties: { a: 1 } });`);
    const b = await workflowOf("b", `export default () => ({ properties: { b: 2 } });`);
    const sameAsA = { ...a, slug: "a-copy", name: "a-copy" };
    const uploaded = await upload([a, b, sameAsA], api);

    expect(workflowScriptName(a)).toMatch(/^wf-[0-9a-f]{16}$/);
    expect(workflowScriptName(a)).toBe(`wf-${a.codeHash.slice(0, 16)}`);
    expect(uploaded).toEqual([
      { scriptName: workflowScriptName(a), workflows: ["a", "a-copy"] },
      { scriptName: workflowScriptName(b), workflows: ["b"] },
    ]);
    expect(api.uploads).toHaveLength(2);
    const first = api.uploads[0]!;
    expect(first.method).toBe("PUT");
    expect(first.url).toBe(`https://api.cloudflare.com/client/v4/accounts/acc123/workers/dispatch/namespaces/mos-workflows/scripts/${workflowScriptName(a)}`);
    expect(first.authorization).toBe("Bearer cf-token");
    expect(first.metadata).toEqual({ main_module: "harness.js", compatibility_date: WORKFLOW_COMPATIBILITY_DATE });
    expect(Object.keys(first.parts).sort()).toEqual(["__mos_guard.js", "harness.js", "workflow.js"]);
    for (const part of Object.values(first.parts)) expect(part.type).toBe("application/javascript+module");
    expect(first.parts["workflow.js"]!.text).toBe(a.code);
    expect(first.parts["harness.js"]!.text).toContain(DISPATCH_PROTOCOL);
  });

  it("fails with the API's errors when an upload is refused", async () => {
    const broken = await workflowOf("broken", `export default () => ({});`);
    const api = fakeCloudflareApi({ failScript: workflowScriptName(broken) });
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
    expect(await uploadWorkflowScriptsIfConfigured(env, { workflows: [workflow] }, api.fetch)).toBeNull();
    expect(api.uploads).toHaveLength(0);
    const configured = { ...env, CF_ACCOUNT_ID: "acc9", DISPATCH_NAMESPACE: "ns9", CF_API_TOKEN: "tok9" } as unknown as Env;
    expect(await uploadWorkflowScriptsIfConfigured(configured, { workflows: [workflow] }, api.fetch)).toEqual([{ scriptName: workflowScriptName(workflow), workflows: ["w"] }]);
    expect(api.uploads[0]!.url).toBe(`https://api.cloudflare.com/client/v4/accounts/acc9/workers/dispatch/namespaces/ns9/scripts/${workflowScriptName(workflow)}`);
    expect(api.uploads[0]!.authorization).toBe("Bearer tok9");
  });
});

describe("DispatchWorkflowRunner against a stub namespace", () => {
  async function deployed(sources: Record<string, string>, type: SnapshotWorkflow["type"] = "surface") {
    const api = fakeCloudflareApi();
    const workflows = await Promise.all(Object.entries(sources).map(([slug, source]) => workflowOf(slug, source, type)));
    await upload(workflows, api);
    const stub = stubNamespace(api.scripts);
    return { workflows, stub, runner: new DispatchWorkflowRunner(stub.namespace) };
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
    expect(stub.calls).toEqual([{ name: workflowScriptName(workflows[0]!), options: { limits: { cpuMs: 50, subRequests: 0 } } }]);
  });

  it("reports data utils as unavailable, throws, and budget overruns as failures", async () => {
    const { workflows, runner } = await deployed({
      data: `export default async ({ utils }: any) => ({ properties: { v: await utils.customData.get("k") } });`,
      throws: `export default () => { throw new Error("boom"); };`,
      loops: `export default () => { while (true) {} };`,
    });
    const run = (index: number) => runner.run({ workflow: workflows[index]!, args: {}, utils: new RecordingUtils(), deadlineMs: 5000 });
    expect(await run(0)).toMatchObject({ ok: false, kind: "threw", error: "utils.customData.get is not available to workflows in the dispatch runtime" });
    expect(await run(1)).toMatchObject({ ok: false, kind: "threw", error: "boom" });
    expect(await run(2)).toMatchObject({ ok: false, kind: "budget" });
  });

  it("a script missing from the namespace is a failure, not an exception", async () => {
    const runner = new DispatchWorkflowRunner(stubNamespace(new Map()).namespace);
    const missing = await workflowOf("missing", `export default () => ({});`);
    const outcome = await runner.run({ workflow: missing, args: {}, utils: new RecordingUtils(), deadlineMs: 1000 });
    expect(outcome).toMatchObject({ ok: false, error: expect.stringContaining("not found in dispatch namespace") });
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
    expect(selectWorkflowRunner(withDispatcher, undefined, "env_1", [])).toBeInstanceOf(DispatchWorkflowRunner);
    expect(selectWorkflowRunner(env, undefined, "env_1", [])).toBeInstanceOf(LoaderWorkflowRunner);
  });

  it("passes the egress allow-list to the namespace's outbound Worker and allows subrequests only then", async () => {
    const api = fakeCloudflareApi();
    const workflow = await workflowOf("w", `export default () => ({});`);
    await upload([workflow], api);
    const stub = stubNamespace(api.scripts);
    const runner = selectWorkflowRunner({ ...env, DISPATCHER: stub.namespace } as unknown as Env, undefined, "env_9", ["api.allowed.test"]);
    expect(await runner.run({ workflow, args: {}, utils: new RecordingUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: {} });
    expect(stub.calls[0]!.options).toEqual({ limits: { cpuMs: 50, subRequests: 20 }, outbound: { environmentId: "env_9", hosts: "api.allowed.test" } });
  });
});
