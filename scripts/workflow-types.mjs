#!/usr/bin/env node
/**
 * Generates examples/workflows/workflow-types.d.ts — the types workflow authors reference — from their one
 * definition, workers/workflows/authorTypes.ts: rollup-plugin-dts bundles that module and the engine types it
 * re-exports into one declaration file, which becomes a script of global declarations (what the examples' and
 * customers' `/// <reference path>` expects) once its final `export type { … }` is dropped. The same text goes to
 * workers/workflows/workflowTypesText.ts as a string, which the Worker serves to the console's workflow editor
 * (GET /api/v1/admin/workflow-types).
 *   node scripts/workflow-types.mjs           writes the file
 *   node scripts/workflow-types.mjs --check   fails when a committed file differs from a fresh generation (npm test)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { rollup } from "rollup";
import { dts } from "rollup-plugin-dts";
import ts from "typescript";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "workers/workflows/authorTypes.ts");
const target = join(root, "examples/workflows/workflow-types.d.ts");
const textModule = join(root, "workers/workflows/workflowTypesText.ts");

const HEADER = `/**
 * Types of the workflows this platform runs. Reference this file from your editor or CI to type-check workflows:
 *   /// <reference path="./workflow-types.d.ts" />
 * A workflow module's default export is the workflow function (\`MiddlewareWorkflow\`, \`ProvisioningWorkflow\`,
 * \`FeatureWorkflow\`, \`SurfaceWorkflow\`, \`ComponentWorkflow\`, \`EndpointWorkflow\`, \`ActionWorkflow\` or
 * \`RedemptionWorkflow\`); the globals below describe its arguments and results.
 *
 * Generated from ${relative(root, source)} by scripts/workflow-types.mjs: edit that file, then run
 * \`node scripts/workflow-types.mjs\`.
 */
`;

async function bundle() {
  const build = await rollup({ input: source, plugins: [dts({ tsconfig: join(root, "tsconfig.json") })] });
  const { output } = await build.generate({ format: "es" });
  await build.close();
  return output[0].code;
}

/** The bundled module as a script: no imports, no exports, and authorTypes.ts's own header replaced by HEADER. */
function asGlobalDeclarations(code) {
  const authorTypesText = readFileSync(source, "utf8");
  const [ownHeader] = ts.getLeadingCommentRanges(authorTypesText, 0) ?? [];
  if (ownHeader) code = code.replace(authorTypesText.slice(ownHeader.pos, ownHeader.end), "");

  const file = ts.createSourceFile("workflow-types.d.ts", code, ts.ScriptTarget.Latest, true);
  const kept = [];
  for (const statement of file.statements) {
    if (ts.isImportDeclaration(statement) || ts.isImportEqualsDeclaration(statement)) {
      // A global script cannot import: every type authors see must come from this repository's own sources.
      throw new Error(`${relative(root, source)} reaches a type outside the repository: ${statement.getText()}`);
    }
    if (ts.isExportDeclaration(statement) || ts.isExportAssignment(statement)) continue;
    if (statement.modifiers?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword)) {
      throw new Error(`unexpected exported declaration in the bundle: ${statement.getText().split("\n")[0]}`);
    }
    kept.push(statement.getFullText().replace(/^\n+/, ""));
  }
  return `${HEADER}\n${kept.join("\n")}\n`;
}

/** The declarations as a module the Worker imports (it cannot read examples/ at run time). */
function asTextModule(declarations) {
  return `/**
 * The global declarations workflow code sees: examples/workflows/workflow-types.d.ts as a string, for the console's
 * workflow editor (GET /api/v1/admin/workflow-types). Generated from ${relative(root, source)} by
 * scripts/workflow-types.mjs; do not edit.
 */
export const WORKFLOW_TYPES_DTS = ${JSON.stringify(declarations)};
`;
}

const declarations = asGlobalDeclarations(await bundle());
const outputs = [
  [target, declarations],
  [textModule, asTextModule(declarations)],
];
if (process.argv.includes("--check")) {
  const stale = outputs.filter(([file, generated]) => {
    try {
      return readFileSync(file, "utf8") !== generated;
    } catch {
      return true;
    }
  });
  for (const [file] of stale) {
    console.error(`${relative(root, file)} is stale: it differs from ${relative(root, source)}. Run \`node scripts/workflow-types.mjs\`.`);
  }
  if (stale.length > 0) process.exit(1);
} else {
  for (const [file, generated] of outputs) {
    writeFileSync(file, generated);
    console.log(`wrote ${relative(root, file)}`);
  }
}
