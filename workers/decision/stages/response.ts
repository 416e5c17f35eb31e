/**
 * Stage 11 — the response: the wire shape of the decision. A request with an Idempotency-Key gets an event id derived
 * from it, so a retry answers with the first id and its record is stored once.
 */
import { paymentCustomerIdsOf } from "../../services/customers";
import { eventIdFor } from "../../services/events";
import type { DecisionRequest, Featured, Identified, Surfaced, WithCustomer, WithOffers } from "../context";
import type { Services } from "../services";
import { paymentOf, type Crawled } from "./crawl";

export async function renderResponse<C extends DecisionRequest & Identified & WithCustomer & Featured & Surfaced & WithOffers & Partial<Crawled>>(services: Services, context: C) {
  const { environment, identity, kind, idempotencyKey, customer, stripeProductIds, features, surfaceFields, offers } = context;
  const payment = paymentOf(context.crawl);
  const eventId = await eventIdFor(environment.id, { identifier: identity.identifier, authenticated: identity.isAuthenticated }, kind, idempotencyKey);
  const response = {
    status: "success" as const,
    eventId,
    identity: {
      authType: identity.authType,
      identifier: identity.identifier,
      isAuthenticated: identity.isAuthenticated,
      jwtClaims: identity.jwtClaims,
    },
    customer: {
      isCustomer: customer !== null,
      hasProducts: stripeProductIds.length > 0,
      // The payment provider's ids of the customer (e.g. `cus_…`), for the business's own calls to the provider.
      customerIdentifiers: customer ? paymentCustomerIdsOf(customer) : [],
    },
    features,
    ...surfaceFields,
    // Surface decisions only: every group the surface or its components name, resolved per slot ({} when none).
    ...(surfaceFields ? { offers: offers?.views ?? {} } : {}),
    // Granted on an x402 `upto` authorization: the payment to settle with the actual cost (POST /api/v1/x402-settlements/{id}).
    ...(payment ? { payment } : {}),
  };
  services.timing.mark("render");
  return response;
}

export type DecisionResponse = Awaited<ReturnType<typeof renderResponse>>;
