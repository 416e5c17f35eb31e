/**
 * Payment-provider calls of offer redemptions, with their failures as a redeeming client can act on them. Unlike the
 * checkout route (payments/checkout.ts fromProvider), the client sent no idempotency key: the platform derived it from
 * the token, so "the key was reused" or "a request with that key is running" say the redemption is already under way,
 * not that the client misused a key. A refusal caused by the offer's configuration (a currency or billing interval
 * Stripe cannot combine) is the offer's problem, not Stripe's: 409 naming the offer. A subscription schedule the
 * platform did not make, found when the change is made, is 409 `conflict` as when it is found before. Stripe failing
 * stays 502.
 */
import { ApiError } from "../errors";
import { PaymentProviderError, type ProviderRefusal } from "../payments/gateway";
import { FOREIGN_SCHEDULE } from "../payments/stripe";

export async function fromProviderForOffer<T>(offerSlug: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof PaymentProviderError)) throw error;
    if (error.reason === "in_progress") throw redemptionInProgress();
    if (error.reason === "idempotency_conflict") {
      throw new ApiError(
        "conflict",
        `The redemption of offer ${offerSlug} was already sent to Stripe with other details (other redirect URLs, or the offer or subscription changed since): redeem a new token`,
      );
    }
    if (error.refusal?.code === FOREIGN_SCHEDULE) {
      throw new ApiError("conflict", `${error.message}: release it or wait for the scheduled change`);
    }
    if (error.refusal && isOfferConfiguration(error.refusal, error.message)) {
      throw new ApiError("offer_changed", `Offer ${offerSlug} cannot be redeemed: Stripe refused its configuration (${error.message}): ask for a new decision`);
    }
    throw new ApiError("upstream_error", `Stripe refused or failed the request: ${error.message}`);
  }
}

/** 409 `conflict`, Retry-After 1: another request of the same redemption is running now. */
export function redemptionInProgress(): ApiError {
  const error = new ApiError("conflict", "This redemption is in progress; retry shortly");
  error.retryAfterSeconds = 1;
  return error;
}

/** Stripe refused a currency or billing interval it cannot combine: the prices the offer names do not go together. */
function isOfferConfiguration(refusal: ProviderRefusal, message: string): boolean {
  if (refusal.status !== 400) return false;
  return /currenc|interval|recurring/i.test(refusal.param ?? "") || /\b(currenc(y|ies)|(billing )?intervals?)\b/i.test(message);
}
