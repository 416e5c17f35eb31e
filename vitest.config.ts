import { mkdirSync } from "node:fs";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { configDefaults, defineConfig } from "vitest/config";

const PACKAGE_SOURCES = {
  "@edge-monetization/client": path.join(import.meta.dirname, "packages/client/src/index.ts"),
  "@edge-monetization/hono": path.join(import.meta.dirname, "packages/hono/src/index.ts"),
  "@edge-monetization/edge-proxy": path.join(import.meta.dirname, "packages/edge-proxy/src/index.ts"),
  "@edge-monetization/mcp": path.join(import.meta.dirname, "packages/mcp/src/index.ts"),
};

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "schema"));
  // wrangler.toml's [assets] directory must exist for the runtime to start; these suites do not serve the console
  // (the browser suite does, after `npm run build:console`), so a fresh clone can run one test file without a build.
  mkdirSync(path.join(import.meta.dirname, "console", "dist"), { recursive: true });
  return {
    // The packages of packages/ are tested from their sources, as the platform's own modules are (their builds are
    // checked by npm run build:packages).
    resolve: { alias: PACKAGE_SOURCES },
    plugins: [
      // A function, so that it runs after globalSetup and can read the fake Stripe's URL (test/fake-stripe).
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            OPERATOR_TOKEN: "test-operator-token",
            SECRETS_KEY: "dGVzdC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=",
            STRIPE_API_BASE: inject("stripeApiBase"),
            // The webhook tests' receiver listens on http://127.0.0.1 (test/webhook-receiver).
            WEBHOOKS_ALLOW_INSECURE_LOCALHOST: "true",
            // The fake x402 facilitator listens on http://127.0.0.1 (test/fake-facilitator).
            X402_ALLOW_LOOPBACK_FACILITATOR: "true",
            WEB_BOT_AUTH_ALLOW_LOOPBACK: "true",
          },
        },
      })),
    ],
    test: {
      globalSetup: ["./test/fake-stripe/global-setup.ts", "./test/webhook-receiver/global-setup.ts", "./test/fake-facilitator/global-setup.ts", "./test/fake-key-directories/global-setup.ts", "./test/fake-cloudflare-events/global-setup.ts"],
      setupFiles: ["./test/setup/apply-migrations.ts", "./test/setup/console.ts", "./test/setup/payments-queue.ts"],
      include: ["test/**/*.test.ts", "packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
      // test/browser/ (and the packages' and examples' *.live.test.ts) run in Node against `wrangler dev`, with their own config
      // (npm run test:browser).
      exclude: [...configDefaults.exclude, "test/browser/**", "packages/**/*.live.test.ts", "examples/**/*.live.test.ts"],
      // One workerd runtime per vitest worker, shared by the files it runs, instead of one per file: starting a runtime
      // cost ~2.3 s a file (177 s of a 350 s run on 2 cores; 135 s in all without it). Files can share one because every
      // test owns its organization (so its environments, stores, counters and customers), module caches are keyed by
      // tenant, and the queues no test drives stay idle (test/setup/payments-queue.ts). The suite passes in shuffled
      // file order (`--sequence.shuffle.files`).
      isolate: false,
    },
  };
});
