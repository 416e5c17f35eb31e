/**
 * vitest globalSetup (runs in Node, before the workerd pool starts): one fake x402 facilitator for the whole run. Its
 * URL reaches the tests through `inject("x402FacilitatorBase")`.
 */
import type { TestProject } from "vitest/node";
import { createFakeFacilitator } from "./server.mjs";

declare module "vitest" {
  interface ProvidedContext {
    x402FacilitatorBase: string;
  }
}

export default async function startFakeFacilitator(project: TestProject): Promise<() => Promise<void>> {
  const fake = createFakeFacilitator();
  project.provide("x402FacilitatorBase", await fake.listen());
  return () => fake.close();
}
