/**
 * The payments and outbound-webhooks queues' consumers run only where a test drives them (capturePayments /
 * deliverPaymentMessages in test/support/payments.ts, captureWebhooks in test/integration/webhooks/helpers.ts). Left to
 * Miniflare's batch timer, a message another test sent in passing — a real-time lookup a decision asked for, a sync an
 * admin route started, a plan change published to a subscription some test created — would be consumed after that
 * test, or its whole file, had ended: calling the fake Stripe or a webhook URL from a torn-down environment. Unless
 * captured, the messages go nowhere.
 */
import { env } from "cloudflare:workers";

const NOTHING_QUEUED = { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } };
for (const queue of [env.PAYMENTS, env.WEBHOOKS] as Queue<unknown>[]) {
  queue.send = async () => NOTHING_QUEUED;
  queue.sendBatch = async () => NOTHING_QUEUED;
}
