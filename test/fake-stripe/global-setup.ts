/**
 * vitest globalSetup (runs in Node, before the workerd pool starts): one fake Stripe for the whole run. Its URL reaches
 * the Worker as the STRIPE_API_BASE binding through `inject` in vitest.config.ts, so nothing under test can call the
 * real Stripe.
 */
import type { TestProject } from "vitest/node";
import { createFakeStripe } from "./server.mjs";

declare module "vitest" {
  interface ProvidedContext {
    stripeApiBase: string;
  }
}

export default async function startFakeStripe(project: TestProject): Promise<() => Promise<void>> {
  const fake = createFakeStripe();
  project.provide("stripeApiBase", await fake.listen());
  return () => fake.close();
}
