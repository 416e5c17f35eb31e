/**
 * The workflow compiler's syntax-tree check: a workflow is one self-contained module that can reach nothing of the
 * platform but the tick the compiler imports for it.
 */
import { describe, expect, it } from "vitest";
import { compileWorkflowSource, GUARD_MODULE, WorkflowCompileError } from "../../workers/workflows/compile";
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
