import { env } from "cloudflare:workers";
import { RpcTarget } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { SnapshotWorkflow } from "../../../workers/engine/snapshot";
import { sha256Hex } from "../../../workers/lib/crypto";
import { compileWorkflowSource, WorkflowCompileError } from "../../../workers/workflows/compile";
import { LoaderWorkflowRunner } from "../../../workers/workflows/runner";
import { selectWorkflowRunner } from "../../../workers/workflows/select";

class FakeUtils extends RpcTarget {
  data = new Map<string, unknown>();
  async customDataGet(key: string) {
    return this.data.get(key) ?? null;
  }
  async customDataSet(key: string, value: unknown) {
    this.data.set(key, value);
  }
  async testGroup100() {
    return 42;
  }
}

async function workflowOf(source: string, type: SnapshotWorkflow["type"] = "provisioning"): Promise<SnapshotWorkflow> {
  const code = compileWorkflowSource("test", source);
  return { slug: "test", name: "test", type, code, codeHash: await sha256Hex(code), required: false };
}

const runner = new LoaderWorkflowRunner(env.LOADER);
const run = async (source: string, args: Record<string, unknown> = {}, utils = new FakeUtils(), deadlineMs = 1000) =>
  runner.run({ workflow: await workflowOf(source), args, utils, deadlineMs });

describe("workflow compile", () => {
  it("strips types and reports syntax errors with line and column", () => {
    const code = compileWorkflowSource("ok", "const f = (x: number): number => x + 1;\nexport default f;");
    expect(code).not.toContain(": number");
    try {
      compileWorkflowSource("broken", "const a = 1;\nconst b = ;\n");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(WorkflowCompileError);
      expect((error as WorkflowCompileError).line).toBe(2);
      expect((error as WorkflowCompileError).column).toBeGreaterThan(1);
      expect((error as Error).message).toContain("workflows.broken.source");
    }
  });
});

describe("LoaderWorkflowRunner", () => {
  it("runs a TypeScript workflow with arguments and utils over RPC", async () => {
    const utils = new FakeUtils();
    const outcome = await run(
      `const workflow = async ({ identity, utils }: any) => {
         await utils.customData.set("seen", identity.identifier);
         return identity.jwtClaims.premium ? ["premium", String(await utils.testGroup100("x"))] : [];
       };
       export default workflow;`,
      { identity: { identifier: "u1", jwtClaims: { premium: true } } },
      utils,
    );
    expect(outcome).toMatchObject({ ok: true, value: ["premium", "42"] });
    expect(utils.data.get("seen")).toBe("u1");
  });

  it("stops an infinite loop with the operation budget", async () => {
    const outcome = await run(`export default async () => { while (true) {} };`);
    expect(outcome).toMatchObject({ ok: false, kind: "budget" });
    const recursion = await run(`const f = (n: number): number => f(n + 1); export default async () => f(0);`);
    expect(recursion.ok).toBe(false);
  });

  it("reports throws, timeouts, eval and network as failures", async () => {
    expect(await run(`export default async () => { throw new Error("boom"); };`)).toMatchObject({ ok: false, kind: "threw", error: "boom" });
    expect(await run(`export default () => new Promise((resolve) => setTimeout(resolve, 5000));`, {}, new FakeUtils(), 50)).toMatchObject({ ok: false, kind: "timeout" });
    expect(await run(`export default () => new Promise(() => {});`, {}, new FakeUtils(), 1000)).toMatchObject({ ok: false, kind: "timeout" });
    expect(await run(`export default async () => eval("1 + 1");`)).toMatchObject({ ok: false, kind: "threw" });
    expect(await run(`export default async () => new Function("return 1")();`)).toMatchObject({ ok: false, kind: "threw" });
    const fetched = await run(`export default async () => (await fetch("https://example.com")).status;`);
    expect(fetched.ok).toBe(false);
  });
});

describe("the guard module", () => {
  it("gives code in the isolate the tick and nothing else: the budget of a call is set by the harness alone", async () => {
    // Hand-written, not compiled: even code that could import the guard finds no way to refill its budget there.
    const code = `import * as guard from "./__mos_guard.js";\nexport default () => Object.keys(guard);`;
    const workflow: SnapshotWorkflow = { slug: "probe", name: "probe", type: "provisioning", code, codeHash: await sha256Hex(code), required: false };
    expect(await runner.run({ workflow, args: {}, utils: new FakeUtils(), deadlineMs: 1000 })).toMatchObject({ ok: true, value: ["__mosTick"] });
  });
});

describe("isolate sharing", () => {
  it("identical code of two organizations runs in two isolates: module-level state never crosses tenants", async () => {
    const workflow = await workflowOf(`let calls = 0;\nexport default () => ({ calls: ++calls });`);
    const runnerOf = (organizationId: string) => selectWorkflowRunner(env, undefined, { organizationId, environmentId: `env_${organizationId}`, egressHosts: [] });
    const call = (organizationId: string) => runnerOf(organizationId).run({ workflow, args: {}, utils: new FakeUtils(), deadlineMs: 1000 });
    const a = `org_a_${crypto.randomUUID()}`;
    const b = `org_b_${crypto.randomUUID()}`;
    expect(await call(a)).toMatchObject({ ok: true, value: { calls: 1 } });
    expect(await call(a)).toMatchObject({ ok: true, value: { calls: 2 } });
    expect(await call(b)).toMatchObject({ ok: true, value: { calls: 1 } });
  });

  it("two environments of one organization never share an isolate, even without egress: their secrets differ", async () => {
    // The workflow keeps the first secret it saw in a global, as careless code would.
    const workflow = await workflowOf(`let kept: string | undefined;\nexport default ({ env }: any) => ({ kept: (kept ??= env.SECRET) });`);
    const organizationId = `org_${crypto.randomUUID()}`;
    const call = (environmentId: string, secret: string) =>
      selectWorkflowRunner(env, undefined, { organizationId, environmentId, egressHosts: [] }).run({ workflow, args: { env: { SECRET: secret } }, utils: new FakeUtils(), deadlineMs: 1000 });
    expect(await call("env_live", "live-secret")).toMatchObject({ ok: true, value: { kept: "live-secret" } });
    expect(await call("env_preview", "preview-secret")).toMatchObject({ ok: true, value: { kept: "preview-secret" } });
    expect(await call("env_live", "live-secret-2")).toMatchObject({ ok: true, value: { kept: "live-secret" } });
  });
});

describe("utils travel only to code that names them", () => {
  it("code that never names utils runs without the RPC target, and a computed reach for it fails clearly", async () => {
    const utils = new FakeUtils();
    expect(await run(`export default ({ identity }: any) => [identity.identifier];`, { identity: { identifier: "u9" } }, utils)).toMatchObject({ ok: true, value: ["u9"] });
    const sneaky = await run(`export default async (args: any) => { await args["ut" + "ils"].customData.get("k"); return []; };`, {}, utils);
    expect(sneaky).toMatchObject({ ok: false, kind: "threw", error: expect.stringContaining("utils are not available to a workflow whose code never names them") });
    // Code that names utils gets them.
    expect(await run(`export default async ({ utils }: any) => [String(await utils.testGroup100("x"))];`, {}, utils)).toMatchObject({ ok: true, value: ["42"] });
  });
});
