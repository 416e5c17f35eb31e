#!/usr/bin/env node
/**
 * Builds one package of packages/ (or all of them without an argument) into its dist/: esbuild bundles each entry
 * (ES modules; the browser package also as one minified script for a <script> tag), rollup-plugin-dts bundles its
 * declarations, and the sizes (raw, minified, gzipped) go to packages/sizes.json for the README. The browser package's
 * script must stay under its budget: 15 kB gzipped without React.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { rollup } from "rollup";
import { dts } from "rollup-plugin-dts";

const root = path.resolve(import.meta.dirname, "../..");
const BROWSER_BUDGET_GZIP_BYTES = 15_000;

/** Each package: its bundles and its declaration entries. `external` lists what a consumer installs beside it. */
const PACKAGES = {
  client: {
    bundles: [{ entry: "src/index.ts", out: "dist/index.js", external: ["openapi-fetch"] }],
    declarations: [{ entry: "src/index.ts", out: "dist/index.d.ts" }],
  },
  hono: {
    bundles: [{ entry: "src/index.ts", out: "dist/index.js", external: ["hono", "@edge-monetization/client"] }],
    declarations: [{ entry: "src/index.ts", out: "dist/index.d.ts", external: ["hono", "@edge-monetization/client"] }],
  },
  "edge-proxy": {
    // A Worker script as wrangler would upload it: everything inlined.
    bundles: [{ entry: "src/index.ts", out: "dist/index.js", external: ["cloudflare:*"], platform: "neutral" }],
    declarations: [{ entry: "src/index.ts", out: "dist/index.d.ts", external: ["@edge-monetization/client"] }],
  },
  mcp: {
    bundles: [{ entry: "src/index.ts", out: "dist/index.js", external: ["@edge-monetization/client", "@modelcontextprotocol/sdk", "@modelcontextprotocol/sdk/*"] }],
    declarations: [{ entry: "src/index.ts", out: "dist/index.d.ts", external: ["@edge-monetization/client", /^@modelcontextprotocol\/sdk/] }],
  },
  browser: {
    bundles: [
      { entry: "src/index.ts", out: "dist/index.js", external: ["@edge-monetization/client"] },
      { entry: "src/react.tsx", out: "dist/react.js", external: ["react", "react/jsx-runtime", "@edge-monetization/client", "./index.js"] },
      // One file for a <script> tag: defines the custom elements, no React. Its gzipped size is the budget.
      { entry: "src/global.ts", out: "dist/elements.global.js", format: "iife", minify: true, budget: BROWSER_BUDGET_GZIP_BYTES },
    ],
    declarations: [
      { entry: "src/index.ts", out: "dist/index.d.ts", external: ["@edge-monetization/client"] },
      { entry: "src/react.tsx", out: "dist/react.d.ts", external: ["react", "@edge-monetization/client", "./index.js"] },
    ],
  },
};

const requested = process.argv[2];
const names = requested ? [requested] : Object.keys(PACKAGES);
const sizesPath = path.join(root, "packages/sizes.json");
const sizes = requested ? readSizes() : {};

for (const name of names) {
  const spec = PACKAGES[name];
  if (!spec) throw new Error(`unknown package ${name}: one of ${Object.keys(PACKAGES).join(", ")}`);
  const dir = path.join(root, "packages", name);
  rmSync(path.join(dir, "dist"), { recursive: true, force: true });
  mkdirSync(path.join(dir, "dist"), { recursive: true });
  sizes[name] = {};
  for (const bundle of spec.bundles) {
    const options = {
      entryPoints: [path.join(dir, bundle.entry)],
      bundle: true,
      format: bundle.format ?? "esm",
      platform: bundle.platform ?? "browser",
      target: "es2022",
      jsx: "automatic",
      external: bundle.external ?? [],
      logLevel: "warning",
      legalComments: "none",
      // The workspace packages resolve to their sources, so a build never depends on another package's dist/.
      alias: { "@edge-monetization/client": path.join(root, "packages/client/src/index.ts") },
    };
    const result = await build({ ...options, minify: bundle.minify ?? false, write: false });
    const code = result.outputFiles[0].contents;
    writeFileSync(path.join(dir, bundle.out), code);
    const minified = bundle.minify ? code : (await build({ ...options, minify: true, write: false })).outputFiles[0].contents;
    const gzip = gzipSync(minified, { level: 9 }).length;
    sizes[name][bundle.out] = { bytes: code.length, minifiedBytes: minified.length, gzipBytes: gzip };
    if (bundle.budget && gzip > bundle.budget) {
      console.error(`packages/${name}/${bundle.out}: ${gzip} bytes gzipped, over its budget of ${bundle.budget}`);
      process.exitCode = 1;
    }
  }
  for (const declaration of spec.declarations) {
    const bundle = await rollup({
      input: path.join(dir, declaration.entry),
      external: declaration.external ?? [],
      plugins: [dts({ tsconfig: path.join(dir, "tsconfig.json"), respectExternal: false })],
    });
    await bundle.write({ file: path.join(dir, declaration.out), format: "es" });
    await bundle.close();
  }
  const report = Object.entries(sizes[name])
    .map(([file, s]) => `${file} ${(s.minifiedBytes / 1024).toFixed(1)} kB min, ${(s.gzipBytes / 1024).toFixed(1)} kB gzip`)
    .join("; ");
  console.log(`packages/${name}: ${report}`);
}
writeFileSync(sizesPath, `${JSON.stringify(sizes, null, 2)}\n`);

function readSizes() {
  try {
    return JSON.parse(readFileSync(sizesPath, "utf8"));
  } catch {
    return {};
  }
}
