/**
 * The browser tests (`npm run test:browser`): Node drives Debian's chromium (playwright-core) against `wrangler dev`
 * started by global-setup.ts. One worker and one file at a time: every file shares that one server, and a browser
 * with the Worker's runtime is about all two cores take.
 */
import { join } from "node:path";
import { defineConfig } from "vitest/config";

const packageSource = (relative: string) => join(import.meta.dirname, "..", "..", "packages", relative);

export default defineConfig({
  // The packages' and examples' live tests (*/test/**/*.live.test.ts) use the packages from their sources, like the workerd suite.
  resolve: {
    alias: {
      "@edge-monetization/client": packageSource("client/src/index.ts"),
      "@edge-monetization/hono": packageSource("hono/src/index.ts"),
      "@edge-monetization/edge-proxy": packageSource("edge-proxy/src/index.ts"),
      "@edge-monetization/browser/react": packageSource("browser/src/react.tsx"),
      "@edge-monetization/browser": packageSource("browser/src/index.ts"),
    },
  },
  test: {
    root: join(import.meta.dirname, "..", ".."),
    include: ["test/browser/**/*.test.ts", "packages/*/test/**/*.live.test.ts", "examples/*/test/**/*.live.test.ts"],
    environment: "node",
    globalSetup: ["test/browser/global-setup.ts"],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // expect.poll waits on what the page shows after its requests are answered; its default (1 s) races them on a
    // busy machine (CI runs this suite right after the whole test suite, on two cores).
    expect: { poll: { timeout: 15_000 } },
  },
});
