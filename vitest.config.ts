import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "schema"));
  return {
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
          },
        },
      })),
    ],
    test: {
      globalSetup: ["./test/fake-stripe/global-setup.ts", "./test/webhook-receiver/global-setup.ts"],
      setupFiles: ["./test/setup/apply-migrations.ts", "./test/setup/console.ts", "./test/setup/payments-queue.ts"],
      include: ["test/**/*.test.ts"],
    },
  };
});
