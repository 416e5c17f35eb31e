/**
 * The workflow compiler's syntax-tree check: a workflow is one self-contained module that can reach nothing of the
 * platform but the tick the compiler imports for it.
 */
import { describe, expect, it } from "vitest";
import { GUARD_MODULE, verifyCompiledWorkflow } from "../../workers/config/workflowModule";
import { compileWorkflowSource, WorkflowCompileError } from "../../workers/workflows/compile";
import geoMiddleware from "../../examples/workflows/geo-middleware.ts?raw";
import helloWorldSurface from "../../examples/workflows/hello-world-surface.ts?raw";
import paywallComponent from "../../examples/workflows/paywall-component.ts?raw";
import premiumProvisioning from "../../examples/workflows/premium-provisioning.ts?raw";
import qualityFeature from "../../examples/workflows/quality-feature.ts?raw";
import welcomeAction from "../../examples/workflows/welcome-action.ts?raw";
import whoamiEndpoint from "../../examples/workflows/whoami-endpoint.ts?raw";

const EXAMPLES = { geoMiddleware, helloWorldSurface, paywallComponent, premiumProvisioning, qualityFeature, welcomeAction, whoamiEndpoint };

function refusal(source: string): WorkflowCompileError {
  try {
    compileWorkflowSource("sneaky", source);
  } catch (error) {
    if (error instanceof WorkflowCompileError) return error;
    throw error;
  }
  throw new Error("the source compiled");
}

describe("the compiler refuses what would take a workflow outside its own module", () => {
  it.each([
    ["a dynamic import of the budget module", `export default async () => {\n  const m = await import("./__" + "mos_budget.js");\n  return m;\n};`, 2, 19, "dynamic import() is not available to workflows"],
    ["a dynamic import of anything", `export default () => import("https://example.com/x.js");`, 1, 22, "dynamic import() is not available to workflows"],
    ["import.meta", `export default () => ({ url: import.meta.url });`, 1, 30, "import.meta is not available to workflows"],
    ["a static import", `import { x } from "./harness.js";\nexport default () => x;`, 1, 1, "workflows cannot import modules"],
    ["a runtime built-in (raw sockets would bypass the egress allow-list)", `import { connect } from "cloudflare:sockets";\nexport default () => connect;`, 1, 1, "workflows cannot import modules"],
    ["a side-effect import", `\nimport "./__mos_budget.js";\nexport default () => 1;`, 2, 1, "workflows cannot import modules"],
    ["a re-export", `export { withOperationBudget } from "./__mos_budget.js";\nexport default () => 1;`, 1, 1, "workflows cannot re-export other modules"],
    ["a namespace re-export", `export * from "./harness.js";\nexport default () => 1;`, 1, 1, "workflows cannot re-export other modules"],
    ["a binding that shadows the tick", `export default () => {\n  const __mosTick = () => {};\n  while (true) {}\n};`, 2, 9, "reserved for the platform"],
    ["a parameter that shadows the tick", `export default (__mosTick: () => void) => { for (;;) {} };`, 1, 17, "reserved for the platform"],
    ["a reference to a platform name", `export default () => typeof __mosReset;`, 1, 29, "reserved for the platform"],
  ])("%s", (_what, source, line, column, reason) => {
    const error = refusal(source);
    expect(error.workflow).toBe("sneaky");
    expect({ line: error.line, column: error.column }).toEqual({ line, column });
    expect(error.reason).toContain(reason);
    expect(error.message).toContain("workflows.sneaky.source");
  });

  it("names that only start with the letters __mos are the workflow's own", () => {
    const code = compileWorkflowSource("names", `const __mostRecent = 1;\nconst __mosaic = { __mosquito: 2 };\nexport default () => ({ properties: { n: __mostRecent + __mosaic.__mosquito } });`);
    expect(code).toContain("__mostRecent");
    expect(verifyCompiledWorkflow(code)).toBeNull();
    expect(refusal(`export default () => typeof __mos_budget;`).reason).toContain("reserved for the platform (__mos_budget)");
  });

  it("type-only imports are types: stripped, not refused", () => {
    const code = compileWorkflowSource("typed", `import type { SurfaceArgs } from "./workflow-types";\nexport default (args: SurfaceArgs) => ({ properties: {} });`);
    expect(code).not.toContain("workflow-types");
  });

  it("every example workflow passes the check", () => {
    for (const [slug, source] of Object.entries(EXAMPLES)) expect(() => compileWorkflowSource(slug, source), slug).not.toThrow();
  });

  it("the only import of the compiled module is the guard's tick", () => {
    const code = compileWorkflowSource("plain", `const double = (n: number) => n * 2;\nexport default () => [1, 2].map(double);`);
    expect(code.match(/\bimport\b/g)).toHaveLength(1);
    expect(code.startsWith(`import { __mosTick } from "${GUARD_MODULE}";\n`)).toBe(true);
  });
});

describe("a tick wherever code can run again without passing another", () => {
  const compiled = (source: string) => compileWorkflowSource("ticked", source).split("\n").slice(1).join("\n");

  it.each([
    ["loop and function bodies", `function f() { while (x) y(); }\nconst g = (a) => a;`, `function f() {__mosTick(); while (x) {__mosTick();y();} }\nconst g = (a) => (__mosTick(), a);`],
    ["a class static block (an empty one runs nothing)", `class A { static {} static { a(); b(); } }`, `class A { static {} static { __mosTick();a(); b(); } }`],
    ["a class field's value, static or not", `class A { a = new A(); static b = make(); c; }`, `class A { a = (__mosTick(), new A()); static b = (__mosTick(), make()); c; }`],
    // Creating a class runs only its `extends`, computed keys, static fields and blocks: each ticked on its own, so the
    // class value itself is left as it is and keeps the name its binding gives it.
    ["a field whose value is a class expression", `class A { x = class { static { new A(); } } }`, `class A { x = class { static { __mosTick();new A(); } } }`],
    ["a class expression's extends and computed keys", `function f(a = class extends g() { [f()]() {} static [k] = 1; }, b = class extends B {}) {}`, `function f(a = class extends (__mosTick(), g()) { [(__mosTick(), f())]() {__mosTick();} static [(__mosTick(), k)] = 1; }, b = class extends B {}) {__mosTick();}`],
    ["a default parameter", `function f(a = f()) {}`, `function f(a = (__mosTick(), f())) {__mosTick();}`],
    ["a default inside a destructured parameter", `function f({ a = f({}) }, [b = g()]) {}`, `function f({ a = (__mosTick(), f({})) }, [b = (__mosTick(), g())]) {__mosTick();}`],
    ["a computed key of a destructured parameter", `function f({ [f({})]: a }) {}`, `function f({ [(__mosTick(), f({}))]: a }) {__mosTick();}`],
    ["a method's, getter's and arrow's defaults", `const o = { m(a = m()) {}, get x() { return 1; } };\nconst h = (a = h()) => a;`, `const o = { m(a = (__mosTick(), m())) {__mosTick();}, get x() {__mosTick(); return 1; } };\nconst h = (a = (__mosTick(), h())) => (__mosTick(), a);`],
    // Creating a function or reading a literal or name runs nothing; a function keeps the name its binding gives it.
    ["no tick for values that run no code", `class A { f = () => 1; n = 1; m = other; }\nfunction f(cb = function () {}, n = 2, m = n) {}`, `class A { f = () => (__mosTick(), 1); n = 1; m = other; }\nfunction f(cb = function () {__mosTick();}, n = 2, m = n) {__mosTick();}`],
  ])("%s", (_what, source, expected) => {
    expect(compiled(source)).toBe(expected);
  });
});

describe("stored compiled code is verified before it runs", () => {
  const GUARD = `import { __mosTick } from "${GUARD_MODULE}";\n`;

  it("the compiler's output passes, for every example workflow", () => {
    for (const [slug, source] of Object.entries(EXAMPLES)) expect(verifyCompiledWorkflow(compileWorkflowSource(slug, source)), slug).toBeNull();
  });

  it.each([
    ["a dynamic import of the budget module", `${GUARD}export default async () => (await import("./__mos_budget.js")).withOperationBudget;`, 2, 35, "dynamic import() is not available"],
    ["a raw-socket import", `${GUARD}import { connect } from "cloudflare:sockets";\nexport default () => connect;`, 2, 1, "workflows cannot import modules"],
    ["a second import of the guard", `${GUARD}import "${GUARD_MODULE}";\nexport default () => 1;`, 2, 1, "workflows cannot import modules"],
    ["the guard under another name", `import { __mosTick as tick } from "${GUARD_MODULE}";\nexport default () => 1;`, 1, 1, "workflows cannot import modules"],
    ["the budget module in place of the guard", `import { __mosTick } from "./__mos_budget.js";\nexport default () => 1;`, 1, 1, "workflows cannot import modules"],
    ["a re-export", `${GUARD}export * from "./__mos_budget.js";`, 2, 1, "cannot re-export"],
    ["import.meta", `${GUARD}export default () => import.meta.url;`, 2, 22, "import.meta"],
    ["a binding that shadows the tick", `${GUARD}export default () => { const __mosTick = () => {}; for (;;) { __mosTick(); } };`, 2, 30, "reserved for the platform"],
    ["the tick passed around as a value", `${GUARD}export default () => [__mosTick];`, 2, 23, "reserved for the platform"],
    ["another platform name", `${GUARD}export default () => typeof __mosReset;`, 2, 29, "reserved for the platform"],
    ["no guard import at all", `export default () => { while (true) {} };`, 1, 1, "does not import the guard's tick"],
    ["code that does not parse", `${GUARD}export default () => {`, 2, 23, "does not parse"],
  ])("%s is refused", (_what, code, line, column, reason) => {
    const violation = verifyCompiledWorkflow(code);
    expect(violation?.reason).toContain(reason);
    expect({ line: violation?.line, column: violation?.column }).toEqual({ line, column });
  });

  it("code that is not text is refused", () => {
    expect(verifyCompiledWorkflow(null)?.reason).toBe("the compiled code is not text");
  });
});
