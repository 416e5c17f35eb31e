/** Entry: wiring only. */
import { createApp } from "./app";
import { registerRoutes } from "./routes";
import { handleTriggerBatch } from "./workflows/actions";
import type { TriggerMessage } from "./workflows/triggers";

export { MeterObject } from "../durable-objects/meter/MeterObject";
export { EgressGateway } from "./workflows/egressGateway";
export { WorkflowOutbound } from "./workflows/outbound";

const app = createApp();
registerRoutes(app);

export default {
  fetch: app.fetch,
  /** Triggers → action workflows (the queue is configured in wrangler.toml). */
  queue: (batch, env, ctx) => handleTriggerBatch(batch, env, ctx),
} satisfies ExportedHandler<Env, TriggerMessage>;
