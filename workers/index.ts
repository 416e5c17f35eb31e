/** Entry: wiring only. */
import { createApp } from "./app";
import { registerRoutes } from "./routes";
import { DEAD_LETTER_QUEUE, handleDeadLetterBatch, handleTriggerBatch } from "./workflows/actions";
import type { TriggerMessage } from "./workflows/triggers";

export { MeterObject } from "../durable-objects/meter/MeterObject";
export { EgressGateway } from "./workflows/egressGateway";
export { WorkflowOutbound } from "./workflows/outbound";

const app = createApp();
registerRoutes(app);

export default {
  fetch: app.fetch,
  /** Triggers → action workflows; their dead-letter queue → stored dead letters (both consumers: wrangler.toml). */
  queue: (batch, env, ctx) => (batch.queue === DEAD_LETTER_QUEUE ? handleDeadLetterBatch(batch, env) : handleTriggerBatch(batch, env, ctx)),
} satisfies ExportedHandler<Env, TriggerMessage>;
