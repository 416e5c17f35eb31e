#!/usr/bin/env node
/**
 * The layering rule of the Worker's code (docs/architecture.md): a folder never imports from a folder above it.
 *   lib, errors.ts, schema/  →  engine/  →  config/, identity/  →  services/, durable-objects/  →  workflows/
 *   →  decision/  →  middleware/, routes/  →  app.ts, context.ts, index.ts
 * Run by `npm test`; prints every import that goes up and exits 1 if there is one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

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
    else if (/\.ts$/.test(name) && !name.endsWith(".d.ts")) yield full;
  }
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g;
const violations = [];
for (const dir of ["workers", "durable-objects", "schema"]) {
  for (const file of sources(path.join(root, dir))) {
    const from = rankOf(file);
    if (!from) continue;
    for (const match of readFileSync(file, "utf8").matchAll(IMPORT)) {
      let target = path.resolve(path.dirname(file), match[1]);
      if (!target.endsWith(".ts")) target += ".ts";
      const to = rankOf(target);
      if (to && to.rank > from.rank) violations.push(`${path.relative(root, file)} (${from.place}) imports ${match[1]} (${to.place})`);
    }
  }
}
if (violations.length > 0) {
  console.error(`Layering: ${violations.length} import(s) reach a folder above their own:\n  ${violations.join("\n  ")}`);
  process.exit(1);
}
console.log("Layering: every import points down or sideways.");
