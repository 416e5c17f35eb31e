/// <reference types="vite/client" />
/**
 * The one Monaco setup of the console, bundled by Vite (no CDN, no AMD loader).
 *
 * Monaco's `editor.main` registers ~80 languages and the CSS, HTML and JSON language services with their workers;
 * the console edits only workflow TypeScript and the configuration's YAML, so this module takes the bare editor API,
 * the editor's contributions and those two languages. The TypeScript language service runs in its own worker
 * (`ts.worker`), everything else in the generic editor worker.
 */
import * as monaco from "monaco-editor/editor/editor.api";
import EditorWorker from "monaco-editor/editor/editor.worker?worker";
import TypeScriptWorker from "monaco-editor/languages/features/typescript/ts.worker?worker";
import {
  getTypeScriptWorker,
  ModuleKind,
  ScriptTarget,
  typescriptDefaults,
  type Diagnostic,
} from "monaco-editor/languages/features/typescript/register";
import "monaco-editor/languages/definitions/typescript/register";
import "monaco-editor/languages/definitions/yaml/register";
// Editor contributions: all of them, up front. Monaco 0.57's TypeScript support imports every contribution itself
// when it loads (languages/features/typescript/workerManager.js → internal/common/workers.js), so a subset saves no
// bytes, and a contribution that arrives only then registers its services after the first editor started the
// standalone services: the next editor fails ("depends on UNKNOWN service ICodeLensCache"). These are that module's
// imports: features/register.all plus the contributions it names directly.
import "monaco-editor/features/register.all";
import "monaco-editor/editor/browser/coreCommands";
import "monaco-editor/editor/common/standaloneStrings";
import "monaco-editor/editor/contrib/caretOperations/browser/caretOperations";
import "monaco-editor/editor/contrib/dropOrPasteInto/browser/copyPasteContribution";
import "monaco-editor/editor/contrib/gotoError/browser/markerSelectionStatus";
import "monaco-editor/editor/contrib/gotoSymbol/browser/goToCommands";
import "monaco-editor/editor/contrib/semanticTokens/browser/documentSemanticTokens";
import "monaco-editor/editor/contrib/suggest/browser/suggestController";

self.MonacoEnvironment = {
  getWorker(_workerId: string, label: string): Worker {
    return label === "typescript" || label === "javascript" ? new TypeScriptWorker() : new EditorWorker();
  },
};

// The options of examples/workflows/tsconfig.json, so the console and a customer's own CI agree on what type-checks.
// Monaco's enums stop short of ES2022, so TypeScript's own numbers stand in (ScriptTarget.ES2022 = 9); a workflow
// imports nothing, so module resolution never comes into play.
typescriptDefaults.setCompilerOptions({
  target: 9 as ScriptTarget,
  lib: ["es2022", "dom"],
  module: ModuleKind.ESNext,
  strict: true,
  noEmit: true,
  allowNonTsExtensions: true,
});
typescriptDefaults.setDiagnosticsOptions({ noSemanticValidation: false, noSyntaxValidation: false });
// Models are checked as soon as they exist, so the diagnostics list is ready when the user presses save.
typescriptDefaults.setEagerModelSync(true);

export { monaco };

const WORKFLOW_TYPES_PATH = "file:///workflow-types.d.ts";
let workflowTypes: monaco.IDisposable | undefined;

/** Gives the TypeScript worker the declarations workflow code sees (GET /api/v1/admin/workflow-types `dts`). */
export function setWorkflowTypes(dts: string): void {
  workflowTypes?.dispose();
  workflowTypes = typescriptDefaults.addExtraLib(dts, WORKFLOW_TYPES_PATH);
}

/** One problem the TypeScript compiler found, positioned for people (1-based line and column). */
export interface SourceDiagnostic {
  severity: "error" | "warning";
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  message: string;
  code: number;
  /**
   * Syntax errors make a module that cannot run; type errors one that may run but disagrees with its types; `api`
   * is what the platform itself refused (its compiler's message, with the position it names).
   */
  kind: "syntax" | "type" | "api";
}

type MessageChain = Exclude<Diagnostic["messageText"], string>;

function flatten(message: string | MessageChain, indent = 0): string {
  if (typeof message === "string") return message;
  const lines = [`${"  ".repeat(indent)}${message.messageText}`];
  for (const next of message.next ?? []) lines.push(flatten(next, indent + 1));
  return lines.join("\n");
}

/**
 * Asks the TypeScript worker for the syntactic and semantic diagnostics of a model, now (not after the debounce
 * Monaco waits before painting its own squiggles), so a save can decide on them.
 */
export async function typeScriptDiagnostics(model: monaco.editor.ITextModel): Promise<SourceDiagnostic[]> {
  const workerFor = await getTypeScriptWorker();
  const worker = await workerFor(model.uri);
  const fileName = model.uri.toString();
  const [syntactic, semantic] = await Promise.all([worker.getSyntacticDiagnostics(fileName), worker.getSemanticDiagnostics(fileName)]);
  if (model.isDisposed()) return [];
  const located = (diagnostic: Diagnostic, kind: SourceDiagnostic["kind"]): SourceDiagnostic => {
    const start = model.getPositionAt(diagnostic.start ?? 0);
    const end = model.getPositionAt((diagnostic.start ?? 0) + (diagnostic.length ?? 0));
    return {
      // TypeScript's categories: 0 warning, 1 error, 2 suggestion, 3 message.
      severity: diagnostic.category === 1 ? "error" : "warning",
      line: start.lineNumber,
      column: start.column,
      endLine: end.lineNumber,
      endColumn: end.column,
      message: flatten(diagnostic.messageText),
      code: diagnostic.code,
      kind,
    };
  };
  return [...syntactic.map((d) => located(d, "syntax")), ...semantic.map((d) => located(d, "type"))].sort(
    (a, b) => a.line - b.line || a.column - b.column,
  );
}
