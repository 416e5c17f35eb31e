/**
 * Opening provider-hosted pages for a signed-in identity: Checkout for one of a plan's prices, and the billing portal.
 * Shared by the decision-style routes (decision/checkout.ts, which resolve the identity first) and the workflow util
 * `utils.payments` (workflows/paymentsAccess.ts, whose identity is the request's).
 *
 * Prices come from the deployed plan's Stripe products, never from the caller alone: a price that is not an active
 * price of one of the plan's products is refused. Success, cancel and return URLs must belong to one of the
 * environment's allowed origins, so a checkout can only send the buyer back to the customer's own site.
 */
import type { PreparedSnapshot } from "../engine/prepare";
import { ApiError, type ErrorDetail } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { getCustomer } from "../services/customers";
import { type CheckoutSettings, PaymentConnectionUnreadableError, stripeCredentials } from "../services/paymentConnections";
import { PaymentProviderError, type PaymentGateway, type PriceSummary, storeScope } from "./gateway";
import { createStripeGateway } from "./stripe";

/** The environment's connected payment provider and how it opens sessions. */
export interface ConnectedPayments {
  gateway: PaymentGateway;
  checkout: CheckoutSettings;
}

/** Who buys, where: the environment, its deployed version and the signed-in identity. */
export interface Buyer {
  environment: { id: string; organizationId: string };
  prepared: PreparedSnapshot;
  store: string;
  identifier: string;
}

export interface CheckoutInput {
  plan: string;
  price?: string;
  successUrl: string;
  cancelUrl: string;
  /** The caller's Idempotency-Key: the same key (for the same environment and identity) opens one session. */
  idempotencyKey?: string;
}

export interface OpenedCheckout {
  id: string;
  url: string;
  mode: "subscription" | "payment";
}

/**
 * The environment's Stripe gateway and checkout settings; 409 when it is not connected to Stripe, 503 when its stored
 * keys cannot be decrypted.
 */
export async function connectedPayments(
  db: D1Database,
  secretsKey: string,
  apiBase: string | undefined,
  environmentId: string,
  logger: { warn(event: string, fields?: Record<string, unknown>): void },
): Promise<ConnectedPayments> {
  let credentials;
  try {
    credentials = await stripeCredentials(db, secretsKey, environmentId);
  } catch (error) {
    if (!(error instanceof PaymentConnectionUnreadableError)) throw error;
    logger.warn("payment_connection_unreadable", { environmentId });
    throw new ApiError("payments_unavailable", "The environment's Stripe connection cannot be read: connect Stripe again");
  }
  if (!credentials) {
    throw new ApiError(
      "conflict",
      `Environment ${environmentId} is not connected to Stripe: connect it first (PUT /api/v1/admin/environments/${environmentId}/payments/stripe)`,
    );
  }
  return {
    gateway: createStripeGateway({ secretKey: credentials.secretKey, webhookSecret: credentials.webhookSecret, apiBase }),
    checkout: credentials.checkout,
  };
}

/** Refuses success/cancel URLs outside the environment's allowed origins; call before resolving anything costly. */
export function refuseForeignCheckoutUrls(payments: ConnectedPayments, urls: Record<string, string>): void {
  refuseForeignUrls(payments.checkout, urls);
}

export async function openCheckout(db: D1Database, payments: ConnectedPayments, buyer: Buyer, input: CheckoutInput): Promise<OpenedCheckout> {
  refuseForeignUrls(payments.checkout, { successUrl: input.successUrl, cancelUrl: input.cancelUrl });
  const { prepared, environment, store, identifier } = buyer;
  const plan = prepared.planBySlug.get(input.plan);
  if (!plan) throw new ApiError("not_found", `Plan ${input.plan} not found in the deployed version`);
  const productIds = [...new Set(plan.plan.stripeProductIds)];
  if (productIds.length === 0) {
    throw new ApiError("bad_request", `Plan ${input.plan} cannot be bought: it is linked to no Stripe product (its stripeProductIds are empty)`);
  }
  const price = await priceOfPlan(payments.gateway, { slug: input.plan, productIds }, input.price);
  const mode = price.type === "recurring" ? "subscription" : "payment";

  const customer = await getCustomer(db, environment.organizationId, store, identifier);
  // Same environment, identity and Idempotency-Key → the same key at Stripe, which answers a repeat with the first
  // session; another identity's identical header never reaches its session.
  const idempotencyKey = input.idempotencyKey
    ? `checkout-session:${await sha256Hex(JSON.stringify([environment.id, identifier, input.idempotencyKey]))}`
    : undefined;
  const session = await fromProvider(() =>
    payments.gateway.createCheckoutSession(
      {
        mode,
        priceIds: [price.id],
        ...(customer?.stripeCustomerId ? { customerId: customer.stripeCustomerId } : {}),
        identifier,
        scope: storeScope(environment.organizationId, store),
        // As given: Stripe fills in `{CHECKOUT_SESSION_ID}`, which a normalized URL would have percent-encoded.
        successUrl: input.successUrl,
        cancelUrl: input.cancelUrl,
        automaticTax: payments.checkout.automaticTax,
      },
      { idempotencyKey },
    ),
  );
  return { id: session.id, url: session.url, mode };
}

export async function openPortal(db: D1Database, payments: ConnectedPayments, buyer: Omit<Buyer, "prepared">, returnUrl: string): Promise<{ url: string }> {
  refuseForeignUrls(payments.checkout, { returnUrl });
  const { environment, store, identifier } = buyer;
  const customer = await getCustomer(db, environment.organizationId, store, identifier);
  if (!customer?.stripeCustomerId) {
    throw new ApiError("conflict", `${identifier} has no Stripe customer yet: the billing portal opens once a checkout was completed (or a customer was set)`);
  }
  const customerId = customer.stripeCustomerId;
  const session = await fromProvider(() => payments.gateway.createPortalSession({ customerId, returnUrl }));
  return { url: session.url };
}

/**
 * The price to charge: `requested` when it is an active price of one of the plan's products, or else the one active
 * price the plan's products have in total.
 */
async function priceOfPlan(gateway: PaymentGateway, { slug: planSlug, productIds }: { slug: string; productIds: string[] }, requested: string | undefined): Promise<PriceSummary> {
  if (requested !== undefined) {
    const price = await fromProvider(() => gateway.getPrice(requested));
    const problem = !price
      ? `No price ${requested} in the environment's Stripe account`
      : !productIds.includes(price.productId)
        ? `Price ${requested} is not a price of plan ${planSlug}'s Stripe products (${productIds.join(", ")})`
        : !price.active
          ? `Price ${requested} is archived (inactive) in Stripe`
          : null;
    if (problem || !price) throw new ApiError("validation_failed", `Invalid request: price: ${problem}`, [{ path: "price", message: problem! }]);
    return price;
  }
  const prices = (await fromProvider(() => Promise.all(productIds.map((productId) => gateway.listActivePrices(productId))))).flat();
  if (prices.length === 1) return prices[0]!;
  if (prices.length === 0) throw new ApiError("bad_request", `Plan ${planSlug} cannot be bought: its Stripe products (${productIds.join(", ")}) have no active price`);
  const message = `required: plan ${planSlug}'s Stripe products have ${prices.length} active prices (${prices.map((price) => price.id).join(", ")}); choose one`;
  throw new ApiError("validation_failed", `Invalid request: price: ${message}`, [{ path: "price", message }]);
}

/**
 * 400 `validation_failed` naming each URL that is not absolute or whose origin is not one of the environment's allowed
 * origins (`checkout.allowedOrigins` of its Stripe connection).
 */
function refuseForeignUrls(settings: CheckoutSettings, urls: Record<string, string>): void {
  const details: ErrorDetail[] = [];
  for (const [path, value] of Object.entries(urls)) {
    const problem = foreignUrlProblem(settings.allowedOrigins, value);
    if (problem) details.push({ path, message: problem });
  }
  if (details.length > 0) throw new ApiError("validation_failed", `Invalid request: ${details.map((detail) => `${detail.path}: ${detail.message}`).join("; ")}`, details);
}

function foreignUrlProblem(allowedOrigins: readonly string[], value: string): string | null {
  if (allowedOrigins.length === 0) {
    return "no origin is allowed yet: set checkout.allowedOrigins on the environment's Stripe connection (PUT /api/v1/admin/environments/{environmentId}/payments/stripe)";
  }
  const url = URL.parse(value);
  if (!url) return "must be an absolute URL (https://…)";
  if (url.protocol !== "https:" && url.protocol !== "http:") return "must be an https:// URL";
  if (url.username || url.password) return "must not contain credentials";
  if (!allowedOrigins.includes(url.origin)) return `origin ${url.origin} is not one of the environment's allowed origins (${allowedOrigins.join(", ")})`;
  return null;
}

/**
 * A provider call; its failures as 502 `upstream_error` with the provider's message (API keys masked; the app logs
 * it), 422 for an Idempotency-Key reused with another request.
 */
export async function fromProvider<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof PaymentProviderError)) throw error;
    if (error.reason === "idempotency_conflict") {
      throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request: use a new key for a new checkout");
    }
    if (error.reason === "in_progress") {
      const inProgress = new ApiError("conflict", "Another request with this Idempotency-Key is in progress: retry shortly");
      inProgress.retryAfterSeconds = 1;
      throw inProgress;
    }
    throw new ApiError("upstream_error", `Stripe refused or failed the request: ${error.message}`);
  }
}
