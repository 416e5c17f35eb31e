/**
 * Workflow source (TypeScript) → the JavaScript module an isolate runs. Runs when a version is created, so a
 * syntax error fails the version with the workflow, line and column instead of surfacing at decision time.
 *
 * Three steps:
 * 1. type stripping with sucrase (no type checking: customers type-check against the published .d.ts);
 * 2. a check of the syntax tree (config/workflowModule.ts): a workflow is one self-contained module. It may not
 *    import anything (declarations, re-exports, dynamic `import()`, `import.meta`), so the only module it reaches is
 *    the guard the compiler imports for it, and it may not name `__mos…` identifiers, so it cannot shadow the tick;
 * 3. an operation budget: `__mosTick()`, imported from the guard module as an immutable binding, runs wherever code
 *    can run again and again without passing another tick — see `instrument`. The guard exports nothing else; the
 *    budget of each call is set by the harness in a module the workflow cannot import (runner.ts). workerd does not
 *    enforce CPU limits on dynamic isolates locally and `Date.now()` does not advance inside synchronous code, so a
 *    counter is the only reliable brake on `while (true) {}` there. In production the call's `limits.cpuMs` applies
 *    as well.
 */
import { parse, type Node } from "acorn";
import { simple } from "acorn-walk";
import MagicString from "magic-string";
import { transform } from "sucrase";
import { findOutsideReach, GUARD_IMPORT, TICK_FUNCTION } from "../config/workflowModule";

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
  const violation = findOutsideReach(ast);
  if (violation) throw new WorkflowCompileError(slug, violation.line, violation.column, violation.reason);
  return `${GUARD_IMPORT}\n${instrument(javascript, ast)}`;
}

type AnyNode = Node & Record<string, any>;

/** Values whose evaluation runs no code (see instrument). */
const RUNS_NO_CODE = new Set(["Literal", "Identifier", "FunctionExpression", "ArrowFunctionExpression", "ClassExpression"]);

/**
 * Inserts the ticks. Each is a place where code may run once more with no other tick on its way:
 * - the start of every loop body and function body (methods, getters, setters and constructors are functions);
 * - the start of every class static block;
 * - every class field's value, `x = (__mosTick(), value)`: an instance field runs on each `new`, before any
 *   constructor body (a class without a constructor has none), so `class A { a = new A() }` recurses through
 *   field values alone;
 * - every default value and computed key in a binding pattern, `(a = (__mosTick(), value))`: parameters are
 *   evaluated before the function body's tick, so `function f(a = f()) {}` recurses through its defaults alone.
 * A default or field value that runs no code of its own is left as it is: a literal, a name, a function or a class
 * (creating one runs nothing, and wrapping it would lose the name it takes from its binding). What a class expression
 * does run as it is created is ticked on its own: its `extends` expression and its computed keys, since a class in a
 * default value (`function f(a = class { [f()]() {} }) {}`) runs them with no other tick on the way; its static
 * fields and blocks are ticked like any. Computed keys of class declarations and object literals are left: they run
 * once each time the class or object is evaluated, inside something ticked.
 * Calls the platform makes (tagged templates, getters, iterator and promise callbacks) land in functions, ticked.
 */
function instrument(javascript: string, ast: Node): string {
  const output = new MagicString(javascript);
  const tick = `${TICK_FUNCTION}();`;
  // acorn-walk's `simple` visits children before their parent, so when an inner and an outer insertion share a
  // position, the inner one is made first and the two nest properly.
  const wrapExpression = (expression: AnyNode) => {
    output.prependRight(expression.start, `(${TICK_FUNCTION}(), `);
    output.appendLeft(expression.end, ")");
  };
  const wrapValue = (value: AnyNode | null | undefined) => {
    if (value && !RUNS_NO_CODE.has(value.type)) wrapExpression(value);
  };
  const guardBlock = (body: AnyNode) => {
    if (body.type === "BlockStatement") output.appendLeft(body.start + 1, tick);
    else {
      output.prependRight(body.start, `{${tick}`);
      output.appendLeft(body.end, "}");
    }
  };
  const loop = (node: Node) => guardBlock((node as AnyNode).body);
  const fn = (node: Node) => {
    const body = (node as AnyNode).body as AnyNode;
    // Concise arrow body: `x => expr` becomes `x => (tick, expr)`.
    if (body.type === "BlockStatement") output.appendLeft(body.start + 1, tick);
    else wrapExpression(body);
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
    StaticBlock: (node) => {
      // An empty block runs nothing.
      const [first] = (node as AnyNode).body as AnyNode[];
      if (first) output.prependRight(first.start, tick);
    },
    ClassExpression: (node) => {
      wrapValue((node as AnyNode).superClass);
      for (const member of (node as AnyNode).body.body as AnyNode[]) if (member.computed) wrapExpression(member.key);
    },
    PropertyDefinition: (node) => wrapValue((node as AnyNode).value),
    AssignmentPattern: (node) => wrapValue((node as AnyNode).right),
    ObjectPattern: (node) => {
      for (const property of (node as AnyNode).properties as AnyNode[]) if (property.type === "Property" && property.computed) wrapExpression(property.key);
    },
  });
  return output.toString();
}

function toCompileError(slug: string, error: LocatedError): WorkflowCompileError {
  const message = error.message.replace(/\s*\(\d+:\d+\)\s*$/, "");
  const match = /\((\d+):(\d+)\)/.exec(error.message);
  const line = error.loc?.line ?? (match ? Number(match[1]) : 1);
  const column = (error.loc?.column ?? (match ? Number(match[2]) : 0)) + 1;
  return new WorkflowCompileError(slug, line, column, message);
}
