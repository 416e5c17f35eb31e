/**
 * What a compiled workflow module may contain: nothing that takes it outside itself but the one import of the
 * guard's tick that the compiler adds (workflows/compile.ts). The compiler checks a workflow's source against it when
 * a version is created; a stored version's compiled code is checked again when a snapshot is loaded
 * (services/versions.ts), since a version row may have been compiled by an older build whose checks were looser.
 * It lives below services/ so that both can use it.
 */
import { parse, type Node } from "acorn";

export const TICK_FUNCTION = "__mosTick";
export const GUARD_MODULE = "./__mos_guard.js";

/**
 * The generation of the workflow compiler (workflows/compile.ts) and of this check, stamped into every snapshot it
 * compiles (`workflowCompiler`). Stored code stamped with this generation or a later one was checked by these rules when
 * its version was created and is not checked again when the version is loaded; older or unstamped code is. Bump it
 * whenever the compiler or the check refuses something it used to let through.
 */
export const WORKFLOW_COMPILER_GENERATION = 1;

/** The first line of every compiled workflow module, in every build so far. */
export const GUARD_IMPORT = `import { ${TICK_FUNCTION} } from "${GUARD_MODULE}";`;

export interface ReachViolation {
  reason: string;
  line: number;
  /** 1-based. */
  column: number;
}

type LocatedNode = Node & Record<string, unknown> & { loc?: { start: { line: number; column: number } } | null };

/** Why a node takes a workflow outside its own module (or into the platform's names), or null. */
function outsideReach(node: LocatedNode): string | null {
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
      return RESERVED_NAME.test(node.name as string) ? `identifiers starting with __mos and a capital or an underscore are reserved for the platform (${String(node.name)})` : null;
    default:
      return null;
  }
}

/**
 * The platform's names (`__mosTick`, the `__mos_guard` and `__mos_budget` modules): `__mos` followed by a capital or an
 * underscore. Names that merely start with the letters (`__mostRecent`, `__mosaic`) are the workflow's own.
 */
const RESERVED_NAME = /^__mos[A-Z_]/;

/**
 * The first node, in source order, that reaches outside the module; nodes `permitted` accepts are skipped with
 * everything inside them. Walks every node (acorn-walk's visitors skip some identifier positions, such as binding
 * patterns and property keys, and a shadowing `const __mosTick` is exactly what must not pass).
 */
export function findOutsideReach(ast: Node, permitted: (node: LocatedNode) => boolean = () => false): ReachViolation | null {
  const pending: unknown[] = [ast];
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) pending.push(value[index]);
      continue;
    }
    if (!value || typeof value !== "object" || typeof (value as { type?: unknown }).type !== "string") continue;
    const node = value as LocatedNode;
    if (permitted(node)) continue;
    const reason = outsideReach(node);
    if (reason) return { reason, line: node.loc?.start.line ?? 1, column: (node.loc?.start.column ?? 0) + 1 };
    // Children in reverse, so that the first offending node in source order is the one reported.
    const children = Object.entries(node).filter(([key, child]) => key !== "loc" && child !== null && typeof child === "object");
    for (let index = children.length - 1; index >= 0; index--) pending.push(children[index]![1]);
  }
  return null;
}

/**
 * Why compiled workflow code may not run, or null when it may: it must parse as a module, import the guard's tick
 * exactly as the compiler does and nothing else, and name `__mosTick` only to call it (no binding can shadow it).
 * Everything else the compiler refuses in a source is refused here too.
 */
export function verifyCompiledWorkflow(code: unknown): ReachViolation | null {
  if (typeof code !== "string") return { reason: "the compiled code is not text", line: 1, column: 1 };
  let ast: Node;
  try {
    ast = parse(code, { ecmaVersion: "latest", sourceType: "module", locations: true });
  } catch (error) {
    const loc = (error as { loc?: { line: number; column: number } }).loc;
    return { reason: `the compiled code does not parse: ${(error as Error).message.replace(/\s*\(\d+:\d+\)$/, "")}`, line: loc?.line ?? 1, column: (loc?.column ?? 0) + 1 };
  }
  let guardImports = 0;
  const violation = findOutsideReach(ast, (node) => {
    if (isGuardImport(node)) return guardImports++ === 0;
    return isTickCall(node);
  });
  if (violation) return violation;
  return guardImports === 1 ? null : { reason: `the compiled code does not import the guard's tick (${GUARD_IMPORT})`, line: 1, column: 1 };
}

/** `import { __mosTick } from "./__mos_guard.js"`, exactly. */
function isGuardImport(node: LocatedNode): boolean {
  if (node.type !== "ImportDeclaration") return false;
  const { source, specifiers, attributes } = node as unknown as {
    source: { value: unknown };
    specifiers: { type: string; imported?: { type: string; name?: string }; local: { name: string } }[];
    attributes?: unknown[];
  };
  if (source.value !== GUARD_MODULE || specifiers.length !== 1 || (attributes?.length ?? 0) > 0) return false;
  const [specifier] = specifiers;
  return specifier!.type === "ImportSpecifier" && specifier!.imported?.type === "Identifier" && specifier!.imported.name === TICK_FUNCTION && specifier!.local.name === TICK_FUNCTION;
}

/** `__mosTick()`: a call of the imported tick, without arguments. */
function isTickCall(node: LocatedNode): boolean {
  if (node.type !== "CallExpression") return false;
  const { callee, arguments: args } = node as unknown as { callee: { type: string; name?: string }; arguments: unknown[] };
  return callee.type === "Identifier" && callee.name === TICK_FUNCTION && args.length === 0;
}
