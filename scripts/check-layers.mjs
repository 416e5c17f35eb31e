#!/usr/bin/env node
/**
 * The layering rule of the Worker's code (docs/architecture.md): a folder never imports from a folder above it.
 *   lib, errors.ts, schema/  →  engine/  →  config/, identity/  →  services/, payments/, offers/, webhooks/, durable-objects/
 *   →  workflows/
 *   →  decision/  →  middleware/, routes/  →  app.ts, context.ts, index.ts
 * Same-rank imports are allowed. Run by `npm test`; prints every import that goes up (or that it cannot place) and
 * exits 1 if there is one. Imports are read with TypeScript's own scanner: static, type-only, re-exports, side-effect
 * and `import("…")` forms alike.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const root = path.resolve(import.meta.dirname, "..");
/** Rank of each place; an import may only reach a place of the same or a lower rank. */
const RANKS = [
  ["workers/lib", 0],
  ["workers/errors.ts", 0],
  ["schema", 0],
  ["workers/engine", 1],
  ["workers/config", 2],
  ["workers/identity", 2],
  ["workers/services", 3],
  ["workers/payments", 3],
  ["workers/offers", 3],
  ["workers/webhooks", 3],
  ["durable-objects", 3],
  ["workers/workflows", 4],
  ["workers/decision", 5],
  ["workers/middleware", 6],
  ["workers/routes", 6],
  ["workers/context.ts", 6],
  ["workers/app.ts", 7],
  ["workers/index.ts", 8],
];

function rankOf(file) {
  const relative = path.relative(root, file).split(path.sep).join("/");
  for (const [place, rank] of RANKS) if (relative === place || relative.startsWith(`${place}/`)) return { place, rank };
  return undefined;
}

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) yield* sources(full);
    else if (/\.tsx?$/.test(name) && !name.endsWith(".d.ts")) yield full;
  }
}

/** The file a relative specifier names: `x.ts`, or `x/index.ts` for a folder. */
function resolveSpecifier(file, specifier) {
  const base = path.resolve(path.dirname(file), specifier);
  for (const candidate of [base, `${base}.ts`, path.join(base, "index.ts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

const violations = [];
for (const dir of ["workers", "durable-objects", "schema"]) {
  for (const file of sources(path.join(root, dir))) {
    const from = rankOf(file);
    const here = path.relative(root, file);
    if (!from) {
      violations.push(`${here} is in no layer: add its place to RANKS`);
      continue;
    }
    const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    for (const { fileName: specifier } of importedFiles) {
      if (!specifier.startsWith(".")) continue; // packages and runtime modules
      const target = resolveSpecifier(file, specifier);
      const to = target && rankOf(target);
      if (!to) violations.push(`${here} imports ${specifier}, which is in no layer (or does not exist)`);
      else if (to.rank > from.rank) violations.push(`${here} (${from.place}) imports ${specifier} (${to.place})`);
    }
  }
}
// The packages of packages/ are published on their own: a relative import never leaves its package (another package
// is imported by its name, which the build resolves), and nothing reaches into the platform's code.
for (const name of readdirSync(path.join(root, "packages"))) {
  const packageDir = path.join(root, "packages", name);
  if (!statSync(packageDir).isDirectory() || !existsSync(path.join(packageDir, "src"))) continue;
  for (const file of sources(path.join(packageDir, "src"))) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    for (const { fileName: specifier } of importedFiles) {
      if (!specifier.startsWith(".")) continue;
      const target = path.resolve(path.dirname(file), specifier);
      if (!target.startsWith(`${packageDir}${path.sep}`)) violations.push(`${path.relative(root, file)} imports ${specifier}, outside its package`);
    }
  }
}
if (violations.length > 0) {
  console.error(`Layering: ${violations.length} import(s) reach a folder above their own:\n  ${violations.join("\n  ")}`);
  process.exit(1);
}
console.log("Layering: every import points down or sideways.");
