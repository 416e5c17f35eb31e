/**
 * vitest globalSetup (runs in Node, before the workerd pool starts): one fake of Cloudflare's event APIs (Analytics
 * Engine SQL, R2 SQL, and the ingestion the tests' binding stand-ins use) for the whole run. Its URL reaches the tests
 * through `inject("cloudflareEventsBase")`.
 */
import type { TestProject } from "vitest/node";
import { createFakeCloudflareEvents } from "./server.mjs";

declare module "vitest" {
  interface ProvidedContext {
    cloudflareEventsBase: string;
  }
}

export default async function startFakeCloudflareEvents(project: TestProject): Promise<() => Promise<void>> {
  const fake = createFakeCloudflareEvents();
  project.provide("cloudflareEventsBase", await fake.listen());
  return () => fake.close();
}
