/**
 * Workflow source (TypeScript) → the JavaScript module an isolate runs. Runs when a version is created, so a
 * syntax error fails the version with the workflow, line and column instead of surfacing at decision time.
 *
 * Two steps:
 * 1. type stripping with sucrase (no type checking: customers type-check against the published .d.ts);
 * 2. an operation budget: every loop body and function body starts with a call to `__mosTick()`, imported from
 *    the harness as an immutable binding. workerd does not enforce CPU limits on dynamic isolates locally and
 *    `Date.now()` does not advance inside synchronous code, so a counter is the only reliable brake on
 *    `while (true) {}`. In production the platform's CPU limit applies as well.
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
  if (/\b__mos[A-Z_]/.test(javascript)) {
    throw new WorkflowCompileError(slug, 1, 1, "identifiers starting with __mos are reserved for the platform");
  }
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

function toCompileError(slug: string, error: LocatedError): WorkflowCompileError {
  const message = error.message.replace(/\s*\(\d+:\d+\)\s*$/, "");
  const match = /\((\d+):(\d+)\)/.exec(error.message);
  const line = error.loc?.line ?? (match ? Number(match[1]) : 1);
  const column = (error.loc?.column ?? (match ? Number(match[2]) : 0)) + 1;
  return new WorkflowCompileError(slug, line, column, message);
}
