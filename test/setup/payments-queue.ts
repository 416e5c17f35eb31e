/**
 * The payments queue's consumer runs only where a test drives it (capturePayments / deliverPaymentMessages in
 * test/support/payments.ts). Left to Miniflare's batch timer, a message another test sent in passing — a real-time
 * lookup a decision asked for, a sync an admin route started — would be consumed after that test, or its whole file,
 * had ended: calling the fake Stripe and logging into a torn-down environment. Unless captured, the messages go nowhere.
 */
import { env } from "cloudflare:workers";

const NOTHING_QUEUED = { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } };
const queue = env.PAYMENTS as Queue<unknown>;
queue.send = async () => NOTHING_QUEUED;
queue.sendBatch = async () => NOTHING_QUEUED;
