/**
 * The declarations of GET /api/v1/admin/workflow-types, as the console's editor uses them, through TypeScript's own
 * compiler (it runs in Node, not in workerd): a workflow that uses the draft's slugs type-checks, a misspelled
 * feature, plan, surface or trigger does not. Options as examples/workflows/tsconfig.json.
 */
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { createOrganization, must } from "./support";

let dts: string;

beforeAll(async () => {
  const org = await createOrganization("Workflow types org");
  await must("PUT", "/api/v1/admin/config", 200, {
    key: org.adminKey,
    body: {
      features: { widget: { properties: { quality: { type: "string", values: ["low", "high"], fallback: "low" } } } },
      plans: { free: { autoAssign: ["anonymous"] }, premium: { features: { widget: { quality: "high" } } } },
      surfaces: { "article-page": {} },
      triggers: { "newsletter.signup": {} },
    },
  });
  dts = (await must("GET", "/api/v1/admin/workflow-types", 200, { key: org.adminKey })).dts;
});

/** The compiler's messages for `workflow` checked against the served declarations. */
function diagnostics(workflow: string): string[] {
  const files: Record<string, string> = { "/workflow-types.d.ts": dts, "/workflow.ts": workflow };
  const options: ts.CompilerOptions = { target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], module: ts.ModuleKind.ES2022, strict: true, noEmit: true, types: [] };
  const host = ts.createCompilerHost(options);
  const readLibrary = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language) => (name in files ? ts.createSourceFile(name, files[name]!, language) : readLibrary(name, language));
  host.fileExists = (name) => name in files || ts.sys.fileExists(name);
  host.readFile = (name) => files[name] ?? ts.sys.readFile(name);
  const program = ts.createProgram(Object.keys(files), options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
}

describe("GET /api/v1/admin/workflow-types in the TypeScript compiler", () => {
  it("accepts a workflow that uses the draft's features, plans, surfaces and triggers", () => {
    const surface = `
      const workflow: SurfaceWorkflow = async ({ features, plans, surfaceSlug, utils }) => {
        const quality: "low" | "high" | undefined = features.widget?.properties.quality.value;
        const open = features.widget?.properties.enabled.hasAccess ?? false;
        if (surfaceSlug === "article-page" && plans.includes("premium")) await utils.triggers.fire("newsletter.signup", { quality: quality ?? null });
        return { properties: { open } };
      };
      export default workflow;
      export const provision: ProvisioningWorkflow = ({ identity }) => (identity.isAuthenticated ? ["premium"] : []);`;
    expect(diagnostics(surface)).toEqual([]);
  });

  it("rejects a feature, a property, a plan, a surface and a trigger the draft does not have", () => {
    const wrong = `
      export const surface: SurfaceWorkflow = ({ features, surfaceSlug }) => ({
        properties: { a: features.nope?.properties.enabled.hasAccess ?? false, b: features.widget?.properties.missing.isFallback ?? false, c: surfaceSlug === "home" },
      });
      export const provision: ProvisioningWorkflow = () => ["gold"];
      export const action: ActionWorkflow = async ({ utils }) => utils.triggers.fire("never.declared");`;
    const messages = diagnostics(wrong);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringContaining("Property 'nope' does not exist"),
        expect.stringContaining("Property 'missing' does not exist"),
        expect.stringContaining(`'"home"'`),
        expect.stringContaining(`Type '"gold"' is not assignable to type '"free" | "premium"'`),
        expect.stringContaining(`'"never.declared"' is not assignable to parameter of type '"newsletter.signup"'`),
      ]),
    );
    expect(messages).toHaveLength(5);
  });
});
