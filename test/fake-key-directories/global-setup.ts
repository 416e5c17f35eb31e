/**
 * vitest globalSetup (runs in Node, before the workerd pool starts): the agents' key directory server for the whole
 * run. Its control URL reaches the tests through `inject("keyDirectoriesBase")` (test/support/agents.ts).
 */
import type { TestProject } from "vitest/node";
import { createKeyDirectories } from "./server.mjs";

declare module "vitest" {
  interface ProvidedContext {
    keyDirectoriesBase: string;
  }
}

export default async function startKeyDirectories(project: TestProject): Promise<() => Promise<void>> {
  const directories = createKeyDirectories();
  project.provide("keyDirectoriesBase", await directories.listen());
  return () => directories.close();
}
