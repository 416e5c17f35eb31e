/**
 * Checkout and billing portal (`POST /api/v1/checkout-sessions`, `POST /api/v1/billing-portal-sessions`): the
 * customer's server opens a Stripe-hosted page for one of its signed-in users. The identity is resolved as a decision
 * resolves it (config → identity → middleware), so the purchase is tied to the identifier decisions will see; the
 * webhooks of the completed checkout then grant the plan (workers/payments/apply.ts). What is checked about the plan,
 * the price and the URLs: payments/checkout.ts.
 */
import { ApiError } from "../errors";
import { type ConnectedPayments, type OpenedCheckout, openCheckout, openPortal, refuseForeignCheckoutUrls } from "../payments/checkout";
import type { CallerScope, Configured, Identified } from "./context";
import { recordingRequiredFailures } from "./requiredWorkflows";
import type { Services } from "./services";
import { identify, loadConfig, runMiddleware } from "./stages";

export { connectedPayments, type ConnectedPayments } from "../payments/checkout";

export interface CheckoutSessionBody {
  identity: unknown;
  plan: string;
  price?: string;
  successUrl: string;
  cancelUrl: string;
}

export interface CheckoutSessionRequest extends CallerScope {
  body: CheckoutSessionBody;
  payments: ConnectedPayments;
  /** The caller's Idempotency-Key: the same key (for the same environment and identity) opens one session. */
  idempotencyKey?: string;
}

export type CheckoutSessionResult = { status: "success" } & OpenedCheckout;

export interface PortalSessionRequest extends CallerScope {
  body: { identity: unknown; returnUrl: string };
  payments: ConnectedPayments;
}

export async function openCheckoutSession(services: Services, request: CheckoutSessionRequest): Promise<CheckoutSessionResult> {
  const { body, payments, environment } = request;
  // URLs first: nothing is resolved (no workflow runs) for a request that cannot succeed.
  refuseForeignCheckoutUrls(payments, { successUrl: body.successUrl, cancelUrl: body.cancelUrl });
  const { prepared, identity, store } = await signedInSubject(services, request, "checkout.session");
  const { plan, price, successUrl, cancelUrl } = body;
  const opened = await openCheckout(
    services.db,
    payments,
    { environment, prepared, store, identifier: identity.identifier },
    { plan, ...(price === undefined ? {} : { price }), successUrl, cancelUrl, ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}) },
  );
  return { status: "success", ...opened };
}

export async function openPortalSession(services: Services, request: PortalSessionRequest): Promise<{ status: "success"; url: string }> {
  const { body, payments, environment } = request;
  refuseForeignCheckoutUrls(payments, { returnUrl: body.returnUrl });
  const { identity, store } = await signedInSubject(services, request, "billing_portal.session");
  const { url } = await openPortal(services.db, payments, { environment, store, identifier: identity.identifier }, body.returnUrl);
  return { status: "success", url };
}

/** The identity as a decision resolves it; only a signed-in one may buy, so what is bought can be found again. */
async function signedInSubject<C extends CallerScope>(services: Services, request: C, action: string): Promise<C & Configured & Identified> {
  const subject = await recordingRequiredFailures(services, { ...request, kind: "payment", action }, async () =>
    runMiddleware(services, await identify(services, await loadConfig(services, request))),
  );
  if (!subject.identity.isAuthenticated) {
    throw new ApiError(
      "forbidden_identity_form",
      "identity must be a signed-in user (userIdentifier or userJwt), not an anonymous identifier: a purchase must belong to an identity that signs in again",
    );
  }
  return subject;
}
