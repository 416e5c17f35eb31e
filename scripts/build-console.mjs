#!/usr/bin/env node
/**
 * `npm run build:console`: everything the Worker serves as static assets (wrangler.toml [assets], console/dist):
 *   console/dist/console/        the console (Vite, console/vite.config.ts), at /console/
 *   console/dist/docs/scalar/    the API reference's renderer (Scalar's standalone bundle), which /docs loads: no CDN
 *   console/dist/_headers        the console's security headers (a strict CSP: its own scripts only)
 * `npm start` and `npm test` run it first.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const consoleRoot = join(root, "console");
const dist = join(consoleRoot, "dist");

await build({ root: consoleRoot, configFile: join(consoleRoot, "vite.config.ts"), logLevel: "warn" });

// The single-file build (no chunks to fetch later), which registers `window.Scalar`.
const scalarBundle = join(root, "node_modules", "@scalar", "api-reference", "dist", "browser", "standalone.js");
mkdirSync(join(dist, "docs", "scalar"), { recursive: true });
copyFileSync(scalarBundle, join(dist, "docs", "scalar", "standalone.js"));

/**
 * The console holds an admin credential in sessionStorage, so no script but its own may run on its pages:
 * - script-src 'self': Vite's output is external module scripts only (no inline script);
 * - worker-src 'self' blob:: Monaco's editor and TypeScript workers are files of the build ('self'); blob: for
 *   workers a library builds at run time;
 * - style-src 'self' 'unsafe-inline': Monaco and React set element styles and Monaco injects <style> elements;
 *   styles cannot read the page's storage;
 * - connect-src 'self': the admin API on the same origin, nothing else;
 * - frame-ancestors 'none': the console is never framed (clickjacking).
 * The Worker serves the page itself with script-src and worker-src narrowed to <origin>/console/assets/ (the origin
 * is shared with tenants' endpoints; workers/routes/console.ts).
 * The console never renders tenant HTML; tenants' endpoint pages, which share this origin, are sandboxed into an
 * opaque origin (docs/architecture.md "Console and its origin"), so they cannot read its sessionStorage.
 */
const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

writeFileSync(
  join(dist, "_headers"),
  `/console/*
  Content-Security-Policy: ${CONSOLE_CSP}
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer
  Cross-Origin-Opener-Policy: same-origin
`,
);
console.log("Built the console into console/dist.");
