/**
 * Workflow source (TypeScript) → the JavaScript module an isolate runs. Runs when a version is created, so a
 * syntax error fails the version with the workflow, line and column instead of surfacing at decision time.
 *
 * Three steps:
 * 1. type stripping with sucrase (no type checking: customers type-check against the published .d.ts);
 * 2. a check of the syntax tree: a workflow is one self-contained module. It may not import anything (declarations,
 *    re-exports, dynamic `import()`, `import.meta`), so the only module it reaches is the guard the compiler
 *    imports for it, and it may not name `__mos…` identifiers, so it cannot shadow the tick;
 * 3. an operation budget: every loop body and function body starts with a call to `__mosTick()`, imported from
 *    the guard module as an immutable binding. The guard exports nothing else; the budget of each call is set by
 *    the harness in a module the workflow cannot import (runner.ts). workerd does not enforce CPU limits on dynamic
 *    isolates locally and `Date.now()` does not advance inside synchronous code, so a counter is the only reliable
 *    brake on `while (true) {}` there. In production the call's `limits.cpuMs` applies as well.
 */
import { parse, type Node } from "acorn";
import { simple } from "acorn-walk";
import MagicString from "magic-string";
import { transform } from "sucrase";

export const TICK_FUNCTION = "__mosTick";
export const GUARD_MODULE = "./__mos_guard.js";

export class WorkflowCompileError extends Error {
  constructor(
    readonly workflow: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`workflows.${workflow}.source: ${reason} (line ${line}, column ${column})`);
  }
}

interface LocatedError {
  loc?: { line: number; column: number };
  message: string;
}

export function compileWorkflowSource(slug: string, source: string): string {
  let javascript: string;
  try {
    javascript = transform(source, { transforms: ["typescript"], disableESTransforms: true, filePath: `${slug}.ts` }).code;
  } catch (error) {
    throw toCompileError(slug, error as LocatedError);
  }
  let ast: Node;
  try {
    ast = parse(javascript, { ecmaVersion: "latest", sourceType: "module", locations: true });
  } catch (error) {
    throw toCompileError(slug, error as LocatedError);
  }
  refuseOutsideReach(slug, ast);
  const output = new MagicString(javascript);
  const tick = `${TICK_FUNCTION}();`;
  const guardBlock = (body: Node & { type: string; start: number; end: number }) => {
    if (body.type === "BlockStatement") output.appendLeft(body.start + 1, tick);
    else {
      output.prependRight(body.start, `{${tick}`);
      output.appendLeft(body.end, "}");
    }
  };
  type WithBody = Node & { body: Node & { type: string } };
  const loop = (node: Node) => guardBlock((node as WithBody).body);
  const fn = (node: Node) => {
    const body = (node as WithBody).body;
    if (body.type === "BlockStatement") output.appendLeft(body.start + 1, tick);
    else {
      // Concise arrow body: `x => expr` becomes `x => (tick, expr)`.
      output.prependRight(body.start, `(${TICK_FUNCTION}(), `);
      output.appendLeft(body.end, ")");
    }
  };
  simple(ast, {
    WhileStatement: loop,
    DoWhileStatement: loop,
    ForStatement: loop,
    ForInStatement: loop,
    ForOfStatement: loop,
    FunctionDeclaration: fn,
    FunctionExpression: fn,
    ArrowFunctionExpression: fn,
  });
  return `import { ${TICK_FUNCTION} } from "${GUARD_MODULE}";\n${output.toString()}`;
}

type LocatedNode = Node & { loc?: { start: { line: number; column: number } } | null };

/** Why a node takes a workflow outside its own module (or into the platform's names), or null. */
function outsideReach(node: LocatedNode & Record<string, unknown>): string | null {
  switch (node.type) {
    case "ImportDeclaration":
      return "workflows cannot import modules: a workflow is one self-contained module";
    case "ImportExpression":
      return "dynamic import() is not available to workflows";
    case "ExportAllDeclaration":
      return "workflows cannot re-export other modules";
    case "ExportNamedDeclaration":
      return node.source ? "workflows cannot re-export other modules" : null;
    case "MetaProperty":
      return (node.meta as { name?: string } | undefined)?.name === "import" ? "import.meta is not available to workflows" : null;
    case "Identifier":
      return RESERVED_NAME.test(node.name as string) ? `identifiers starting with __mos are reserved for the platform (${String(node.name)})` : null;
    default:
      return null;
  }
}

const RESERVED_NAME = /^__mos/;

/**
 * Walks every node (acorn-walk's visitors skip some identifier positions, such as binding patterns and property
 * keys, and a shadowing `const __mosTick` is exactly what must not pass) and fails on the first that reaches out.
 */
function refuseOutsideReach(slug: string, ast: Node): void {
  const pending: unknown[] = [ast];
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) pending.push(value[index]);
      continue;
    }
    if (!value || typeof value !== "object" || typeof (value as { type?: unknown }).type !== "string") continue;
    const node = value as LocatedNode & Record<string, unknown>;
    const reason = outsideReach(node);
    if (reason) throw new WorkflowCompileError(slug, node.loc?.start.line ?? 1, (node.loc?.start.column ?? 0) + 1, reason);
    // Children in reverse, so that the first offending node in source order is the one reported.
    const children = Object.entries(node).filter(([key, child]) => key !== "loc" && child !== null && typeof child === "object");
    for (let index = children.length - 1; index >= 0; index--) pending.push(children[index]![1]);
  }
}

function toCompileError(slug: string, error: LocatedError): WorkflowCompileError {
  const message = error.message.replace(/\s*\(\d+:\d+\)\s*$/, "");
  const match = /\((\d+):(\d+)\)/.exec(error.message);
  const line = error.loc?.line ?? (match ? Number(match[1]) : 1);
  const column = (error.loc?.column ?? (match ? Number(match[2]) : 0)) + 1;
  return new WorkflowCompileError(slug, line, column, message);
}
