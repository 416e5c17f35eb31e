/**
 * What bounds one workflow call in the Worker Loader runtime: the limits passed with each call (`cpuMs`,
 * `subRequests`), the deadline (which holds even where the runtime cannot pre-empt the call), and the operation
 * budget, which belongs to the call and nothing in the workflow can reset.
 */
import { env, RpcTarget } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { WorkflowDefinition, WORKFLOW_CPU_MS_CAP } from "../../../schema/config";
import type { SnapshotWorkflow } from "../../../workers/engine/snapshot";
import { sha256Hex } from "../../../workers/lib/crypto";
import { preparedSnapshotFor } from "../../../workers/services/snapshots";
import { compileWorkflowSource } from "../../../workers/workflows/compile";
import { workflowFailureKind } from "../../../workers/workflows/failures";
import { LoaderWorkflowRunner, OPERATIONS_PER_CPU_MS } from "../../../workers/workflows/runner";
import { call, createOrganization, publish } from "../../support/api";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";

async function workflowOf(source: string, settings: Partial<SnapshotWorkflow> = {}): Promise<SnapshotWorkflow> {
  const code = compileWorkflowSource("limited", source);
  return { slug: "limited", name: "limited", type: "surface", code, codeHash: await sha256Hex(code), required: false, ...settings };
}

/** The Worker Loader binding, recording the options of every entrypoint the runner asks for. */
function recordingLoader() {
  const entrypointOptions: unknown[] = [];
  const loader: WorkerLoader = {
    get(name, getCode) {
      const stub = env.LOADER.get(name, getCode);
      return {
        getEntrypoint(entrypoint, options) {
          entrypointOptions.push(options);
          return stub.getEntrypoint(entrypoint, options);
        },
        getDurableObjectClass: (entrypoint, options) => stub.getDurableObjectClass(entrypoint, options),
      };
    },
    load: (code) => env.LOADER.load(code),
  };
  return { loader, entrypointOptions };
}

class NoUtils extends RpcTarget {}

/** utils whose `customData.get` answers only once `parties` calls are waiting in it, so that calls interleave. */
class Barrier extends RpcTarget {
  private waiting: (() => void)[] = [];
  constructor(private readonly parties: number) {
    super();
  }
  async customDataGet() {
    await new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      if (this.waiting.length === this.parties) for (const release of this.waiting) release();
    });
    return null;
  }
}

/** Catastrophic backtracking: native regular-expression work that no operation budget sees (hundreds of ms here). */
const CPU_BURN = `/(a+)+$/.test("a".repeat(25) + "b")`;

describe("limits passed with every call", () => {
  it("the Loader entrypoint of each call gets the workflow's cpuMs (else its type's default, never above the cap) and subRequests", async () => {
    const { loader, entrypointOptions } = recordingLoader();
    const runner = new LoaderWorkflowRunner(loader);
    const source = `export default () => ({ properties: {} });`;
    const run = async (settings: Partial<SnapshotWorkflow>) =>
      runner.run({ workflow: await workflowOf(source, settings), args: {}, utils: new NoUtils(), deadlineMs: 2000 });
    expect(await run({})).toMatchObject({ ok: true });
    expect(await run({ cpuMs: 200 })).toMatchObject({ ok: true });
    expect(await run({ type: "action", triggers: ["t"] })).toMatchObject({ ok: true });
    // A snapshot is data: one that asks for more than the platform allows gets the cap.
    expect(await run({ cpuMs: WORKFLOW_CPU_MS_CAP * 10 })).toMatchObject({ ok: true });
    expect(entrypointOptions).toEqual([
      { limits: { cpuMs: 50, subRequests: 50 } },
      { limits: { cpuMs: 200, subRequests: 50 } },
      { limits: { cpuMs: 1000, subRequests: 50 } },
      { limits: { cpuMs: WORKFLOW_CPU_MS_CAP, subRequests: 50 } },
    ]);
  });

  it("cpuMs is an integer from 1 to the platform cap, and the compiled version carries it", async () => {
    const base = { type: "surface", surface: "s", source: "export default () => ({});" };
    for (const cpuMs of [0, 1.5, WORKFLOW_CPU_MS_CAP + 1]) expect(WorkflowDefinition.safeParse({ ...base, cpuMs }).success).toBe(false);
    for (const cpuMs of [1, WORKFLOW_CPU_MS_CAP]) expect(WorkflowDefinition.safeParse({ ...base, cpuMs }).success).toBe(true);

    const org = await createOrganization("CPU limits");
    const document = helloWorld();
    document.workflows = { greeter: { type: "surface", surface: "hello-world", cpuMs: 200, source: `export default () => ({ properties: {} });` } };
    const refused = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: { ...document, workflows: { greeter: { ...document.workflows.greeter, cpuMs: WORKFLOW_CPU_MS_CAP + 1 } } } });
    expect(refused.status).toBe(400);
    expect(refused.body.details.map((detail: { path: string }) => detail.path)).toContain("workflows.greeter.cpuMs");
    const versionId = await publish(org.adminKey, document, [org.live.id]);
    const { snapshot } = await preparedSnapshotFor(env.DB, versionId);
    expect(snapshot.workflows.find((workflow) => workflow.slug === "greeter")?.cpuMs).toBe(200);
  });
});

describe("a call stopped by the runtime's CPU limit", () => {
  it("is recorded as a budget failure, like the operation budget", () => {
    // The message production's runtime throws when a call runs past `limits.cpuMs` (local workerd never does).
    expect(workflowFailureKind(new Error("Worker exceeded CPU time limit."))).toBe("budget");
    expect(workflowFailureKind(new Error("Worker exceeded resource limits"))).toBe("budget");
    expect(workflowFailureKind(new Error("boom"))).toBe("threw");
  });
});

describe("the deadline holds even when the runtime cannot pre-empt the call", () => {
  it("a call that burns CPU past its deadline is a timeout once it returns, not a success", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(`export default () => ({ properties: { matched: ${CPU_BURN} } });`);
    const outcome = await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 5 });
    expect(outcome).toMatchObject({ ok: false, kind: "timeout", error: expect.stringContaining("finished after its deadline of 5 ms") });
  });

  it("the decision answers with the fallback and records the timeout", async () => {
    const org = await createOrganization("Burning workflow");
    const document = helloWorld();
    document.workflows = {
      burner: { type: "surface", surface: "hello-world", deadlineMs: 5, source: `export default () => ({ properties: { matched: ${CPU_BURN} } });` },
    };
    await publish(org.adminKey, document, [org.live.id]);
    const decision = await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: "burner" } } });
    expect(decision.status, JSON.stringify(decision.body)).toBe(200);
    expect(decision.body.surfaceBehavior).toEqual({});
    const [event] = (await eventsFor(org.live.secretKey, "limit=20")).filter((candidate) => candidate.id === decision.body.eventId);
    expect(event?.record.workflows).toEqual([expect.objectContaining({ slug: "burner", ok: false, kind: "timeout" })]);
  });
});

describe("the operation budget belongs to the call", () => {
  // One call may spend cpuMs × OPERATIONS_PER_CPU_MS operations (one per loop iteration and function call).
  const budget = 1 * OPERATIONS_PER_CPU_MS;
  const interleaved = `export default async ({ utils, before, after }: any) => {
    for (let i = 0; i < before; i++) {}
    await utils.customData.get("barrier");
    for (let i = 0; i < after; i++) {}
    return { properties: { done: true } };
  };`;

  it("two concurrent calls in one isolate neither share nor reset each other's budget", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(interleaved, { cpuMs: 1 });
    // Each call spends 90% of its budget, across an await at which the other call runs: with one counter for the
    // isolate, the second call's start would refill the first's budget and the sum would exhaust the second's.
    const args = { before: budget * 0.4, after: budget * 0.5 };
    const barrier = new Barrier(2);
    const outcomes = await Promise.all([0, 1].map(() => runner.run({ workflow, args, utils: barrier, deadlineMs: 5000 })));
    expect(outcomes).toEqual([expect.objectContaining({ ok: true }), expect.objectContaining({ ok: true })]);
  });

  it("a call that spends more than its own budget is stopped, whatever runs beside it", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(interleaved, { cpuMs: 1 });
    const barrier = new Barrier(2);
    const [greedy, modest] = await Promise.all([
      runner.run({ workflow, args: { before: budget * 0.6, after: budget * 0.6 }, utils: barrier, deadlineMs: 5000 }),
      runner.run({ workflow, args: { before: 10, after: 10 }, utils: barrier, deadlineMs: 5000 }),
    ]);
    expect(greedy).toMatchObject({ ok: false, kind: "budget" });
    expect(modest).toMatchObject({ ok: true });
  });

  it("top-level code runs on a startup allowance of its own, outside any call", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(`const squares = [1, 2, 3].map((n) => n * n);\nfor (const square of squares) {}\nexport default () => ({ properties: { squares } });`);
    expect(await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: { properties: { squares: [1, 4, 9] } } });
  });
});

describe("no construct runs without ticking", () => {
  /**
   * Each of these recurses through one construct alone until the stack overflows; the caller catches that and goes
   * again. Without a tick in the construct, one loop tick buys a whole stack's worth of untracked work (2,000 rounds
   * pass easily under a 20,000-operation budget); with it, the budget runs out within the first rounds.
   */
  const roundsOf = (recursion: string, start: string) => `${recursion}
export default () => {
  for (let round = 0; round < 200; round++) {
    try { ${start}; } catch {}
  }
  return { properties: { done: true } };
};`;

  it.each([
    ["a class static block (reached through a field)", roundsOf(`class A { x = class { static { new A(); } } }`, "new A()")],
    ["a class field's value", roundsOf(`class A { a = new A(); }`, "new A()")],
    ["a static field's value (reached through a field)", roundsOf(`class A { x = class { static b = new A(); }; }`, "new A()")],
    ["a default parameter", roundsOf(`function f(a = f()) {}`, "f()")],
    ["a default inside a destructured parameter", roundsOf(`function f({ a = f({}) }) {}`, "f({})")],
    ["a computed key of a destructured parameter", roundsOf(`function f({ [f({})]: a }) {}`, "f({})")],
    ["an arrow's default parameter", roundsOf(`const f = (a = f()) => a;`, "f()")],
    ["a computed key of a class in a default parameter", roundsOf(`function f(a = class { [f()]() {} }) {}`, "f()")],
    ["the extends of a class in a default parameter", roundsOf(`function f(a = class extends f() {}) {}`, "f()")],
  ])("%s: the call ends as `budget`", async (_what, source) => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const outcome = await runner.run({ workflow: await workflowOf(source, { cpuMs: 1 }), args: {}, utils: new NoUtils(), deadlineMs: 10_000 });
    expect(outcome).toMatchObject({ ok: false, kind: "budget" });
  });

  it("a call that catches the budget's error still ends as `budget`", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(`export default () => {\n  try { while (true) {} } catch {}\n  return { properties: { escaped: true } };\n};`, { cpuMs: 1 });
    expect(await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 10_000 })).toMatchObject({ ok: false, kind: "budget" });
  });
});

describe("what the compiler's ticks leave as they were", () => {
  it("class values keep the names their bindings give them", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(`class A { static B = class {}; }
function g(C = class {}) { return C.name; }
const { D = class {} } = {} as { D?: unknown };
const E = class extends A {};
export default () => ({ properties: { names: [A.B.name, g(), (D as { name: string }).name, E.name] } });`);
    expect(await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: { properties: { names: ["B", "C", "D", "E"] } } });
  });

  it("a result with getters is read inside the call's budget", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(`export default () => ({ get properties() { return { a: 1 }; } });`);
    expect(await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 2000 })).toMatchObject({ ok: true, value: { properties: { a: 1 } } });
  });
});

describe("top-level code", () => {
  it("cannot make functions from strings (they would carry no ticks): the workflow fails", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    for (const made of [`new Function("return 1")`, `eval("() => 1")`]) {
      const workflow = await workflowOf(`const made = ${made};\nexport default () => ({ properties: { value: made() } });`);
      const outcome = await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 2000 });
      expect(outcome, made).toMatchObject({ ok: false, kind: "threw", error: expect.stringContaining("Code generation from strings disallowed") });
    }
  });

  it("has its startup allowance only while the module evaluates: a callback it registered spends nothing later", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    // The callback runs outside any call's budget (it was registered at the top level) once a call opens the gate.
    const workflow = await workflowOf(`let open: () => void = () => {};
const gate = new Promise<void>((resolve) => { open = resolve; });
let spent = 0;
gate.then(() => { for (let i = 0; i < 500_000; i++) { spent++; } });
export default async () => {
  open();
  await null;
  await null;
  return { properties: { spent } };
};`);
    const outcome = await runner.run({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 5000 });
    expect(outcome).toMatchObject({ ok: true, value: { properties: { spent: 0 } } });
  });
});

describe("a streamed endpoint body", () => {
  // The stream's first pull runs as it is made, inside the call; the runtime makes the others after the call has
  // returned, outside its context. Each of those does `work` operations.
  const streaming = (work: number) => `let pulls = 0;
export default () => new Response(new ReadableStream({
  pull(controller) {
    for (let i = 0; i < (pulls > 0 ? ${work} : 0); i++) {}
    if (++pulls > 3) controller.close();
    else controller.enqueue(new TextEncoder().encode("chunk;"));
  },
}));`;
  const endpointCall = async (work: number) => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    const workflow = await workflowOf(streaming(work), { type: "endpoint", path: "stream", access: "none", cpuMs: 1 });
    const outcome = await runner.runEndpoint({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 5000 }, new Request("https://example.com/stream"));
    if (!outcome.ok) throw new Error(outcome.error);
    return outcome.value;
  };

  it("is pulled within the call's own budget: a modest body streams", async () => {
    expect(await (await endpointCall(1_000)).text()).toBe("chunk;chunk;chunk;");
  });

  it("and a body that spends more than the call's budget is cut off", async () => {
    // The budget's error ends the stream inside the isolate; across RPC the reader only learns that it ended early.
    await expect((await endpointCall(OPERATIONS_PER_CPU_MS * 2)).text()).rejects.toThrow(/exceeded its CPU budget|disconnected prematurely/);
  });

  it("even when the pull catches the budget's error", async () => {
    const runner = new LoaderWorkflowRunner(env.LOADER);
    // The second pull runs out of budget, catches the error and ends the body as if it were whole: no later pull runs
    // (and ticks) to fail it.
    const source = `let pulls = 0;
export default () => new Response(new ReadableStream({
  pull(controller) {
    if (pulls++ === 0) return controller.enqueue(new TextEncoder().encode("chunk;"));
    try { while (true) {} } catch {}
    controller.enqueue(new TextEncoder().encode("last;"));
    controller.close();
  },
}));`;
    const workflow = await workflowOf(source, { type: "endpoint", path: "stream", access: "none", cpuMs: 1 });
    const outcome = await runner.runEndpoint({ workflow, args: {}, utils: new NoUtils(), deadlineMs: 5000 }, new Request("https://example.com/stream"));
    if (!outcome.ok) throw new Error(outcome.error);
    await expect(outcome.value.text()).rejects.toThrow(/exceeded its CPU budget|disconnected prematurely/);
  });
});

describe("the budget's reset is out of the workflow's reach", () => {
  it("a version whose workflow imports a module (dynamically or not) is refused with the workflow, line and column", async () => {
    const org = await createOrganization("Sneaky workflow");
    const document = helloWorld();
    document.workflows = {
      sneaky: {
        type: "surface",
        surface: "hello-world",
        source: `export default async () => {\n  const guard = await import("./__" + "mos_budget.js");\n  return { properties: { escaped: typeof guard.withOperationBudget } };\n};`,
      },
    };
    expect((await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document })).status).toBe(200);
    const version = await call("POST", "/api/v1/admin/versions", { key: org.adminKey, body: { description: "sneaky" } });
    expect(version.status).toBe(400);
    expect(version.body.details).toEqual([{ path: "workflows.sneaky.source", message: "dynamic import() is not available to workflows (line 2, column 23)" }]);
  });
});
