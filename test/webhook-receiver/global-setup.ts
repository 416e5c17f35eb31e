/**
 * vitest globalSetup (runs in Node, before the workerd pool starts): one webhook receiver for the whole run, where the
 * outbound webhook tests point their subscriptions. Its URL reaches the tests through `inject("webhookReceiverBase")`.
 */
import type { TestProject } from "vitest/node";
import { createWebhookReceiver } from "./server.mjs";

declare module "vitest" {
  interface ProvidedContext {
    webhookReceiverBase: string;
  }
}

export default async function startWebhookReceiver(project: TestProject): Promise<() => Promise<void>> {
  const receiver = createWebhookReceiver();
  project.provide("webhookReceiverBase", await receiver.listen());
  return () => receiver.close();
}
