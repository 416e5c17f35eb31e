/** Entry: wiring only. */
import { createApp } from "./app";
import { registerRoutes } from "./routes";
import { DEAD_LETTER_QUEUE, handleDeadLetterBatch, handleTriggerBatch } from "./workflows/actions";
import type { TriggerMessage } from "./workflows/triggers";
import { handlePaymentBatch, PAYMENT_QUEUE, type PaymentQueueMessage } from "./workflows/paymentEvents";
import { handleWebhookBatch, handleWebhookDeadLetters, WEBHOOK_DEAD_LETTER_QUEUE, WEBHOOK_QUEUE } from "./webhooks/delivery";
import type { WebhookDeliveryMessage } from "./webhooks/publish";
import { eventRetentionDays, pruneExpiredEvents } from "./services/retention";
import { DECISION_LOG_DEAD_LETTER_QUEUE, DECISION_LOG_QUEUE, handleDecisionLogBatch, handleDecisionLogDeadLetters, type LogMessage } from "./services/decisionLog";

export { MeterObject } from "../durable-objects/meter/MeterObject";
export { LiveTailObject } from "../durable-objects/live-tail/LiveTailObject";
export { EgressGateway } from "./workflows/egressGateway";
export { WorkflowOutbound } from "./workflows/outbound";

const app = createApp();
registerRoutes(app);

export default {
  fetch: app.fetch,
  /**
   * Triggers → action workflows; their dead-letter queue → stored dead letters; verified payment webhooks → payment
   * state; outbound webhook deliveries → operators' endpoints; the production event sink's decision log → its Pipelines
   * stream, and its dead letters → D1 (the consumers: wrangler.toml). Each queue carries its own message type.
   */
  queue: (batch, env, ctx) => {
    if (batch.queue === PAYMENT_QUEUE) return handlePaymentBatch(batch as MessageBatch<PaymentQueueMessage>, env);
    if (batch.queue === WEBHOOK_QUEUE) return handleWebhookBatch(batch as MessageBatch<WebhookDeliveryMessage>, env);
    if (batch.queue === WEBHOOK_DEAD_LETTER_QUEUE) return handleWebhookDeadLetters(batch as MessageBatch<WebhookDeliveryMessage>, env);
    if (batch.queue === DECISION_LOG_QUEUE) return handleDecisionLogBatch(batch as MessageBatch<LogMessage>, env);
    if (batch.queue === DECISION_LOG_DEAD_LETTER_QUEUE) return handleDecisionLogDeadLetters(batch as MessageBatch<LogMessage>, env);
    const triggers = batch as MessageBatch<TriggerMessage>;
    return batch.queue === DEAD_LETTER_QUEUE ? handleDeadLetterBatch(triggers, env) : handleTriggerBatch(triggers, env, ctx);
  },
  /** The hourly cron (wrangler.toml `[triggers]`): events and rollups past their retention leave D1. */
  scheduled: async (controller, env) => {
    const report = await pruneExpiredEvents(env.DB, controller.scheduledTime, eventRetentionDays(env.EVENT_RETENTION_DAYS));
    if (report.incomplete) console.warn(JSON.stringify({ event: "event_retention_incomplete", deleted: report.deleted }));
  },
} satisfies ExportedHandler<Env, unknown>;
