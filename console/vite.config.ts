/**
 * The console's build: a React app under /console/ of the Worker's origin, written to console/dist/console, which the
 * Worker serves as static assets (wrangler.toml [assets]). Paths are relative to the root the caller gives
 * (scripts/build-console.mjs, or `npx vite console` in development), which is this folder. The build script adds
 * what sits beside the app in console/dist: the API reference's bundle and the _headers file with the console's CSP.
 */
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  plugins: [react()],
  // Monaco's workers are ES modules (`?worker` imports), loaded from the console's own origin.
  worker: { format: "es" },
  build: {
    outDir: "dist/console",
    emptyOutDir: true,
    // Monaco and its TypeScript worker are large by nature; they load once and are cached by their hashed names.
    chunkSizeWarningLimit: 8_000,
    // Monaco's TypeScript worker takes most of the build, every time: the report that says so is noise.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  server: {
    // `npx vite console` (console development with hot reload): the API is the Worker of `npm start`.
    proxy: { "/api": "http://127.0.0.1:8787", "/docs": "http://127.0.0.1:8787", "/openapi.json": "http://127.0.0.1:8787" },
  },
});
