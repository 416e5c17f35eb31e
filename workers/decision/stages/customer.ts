/**
 * Stage 4 — customer: the Stripe products an identity holds right now — what its subscriptions and purchases grant at
 * the decision's clock, plus any set by hand (read through a short per-isolate cache, so the steady state does no D1
 * query). A signed-in identity without a record is looked up at the payment provider in the background
 * (payments/lookup.ts), never delaying the decision.
 *
 * Anonymous visitors can only have bought through an offer (offer redemptions: workers/offers/checkout.ts), in the
 * anonymous partition of the store (services/customers.ts anonymousStore). Their record is read through the same cache,
 * and only for a visitor the store's list of anonymous buyers names (one read per store and isolate every few seconds,
 * services/customers.ts mayBeAnonymousBuyer): the visitors who never bought — nearly all — cost no D1 query.
 * They are never looked up at the provider: nothing there names an anonymous identifier except what offers opened.
 */
import { anonymousStore, mayBeAnonymousBuyer, productsOf } from "../../services/customers";
import type { CallerScope, Configured, Identified, WithCustomer } from "../context";
import type { Services } from "../services";

export async function findCustomer<C extends CallerScope & Configured & Identified>(services: Services, context: C): Promise<C & WithCustomer> {
  const { identity, environment, store } = context;
  const { organizationId } = environment;
  // An agent's operator buys nothing through checkout: its plans are the crawler/agent plans, its payments the ledger's.
  if (identity.authType === "agent") {
    services.timing.mark("context");
    return { ...context, customer: null, stripeProductIds: [] };
  }
  const customer = identity.isAuthenticated
    ? await services.customer(organizationId, store, identity.identifier)
    : (await mayBeAnonymousBuyer(services.db, organizationId, store, identity.identifier))
      ? await services.customer(organizationId, anonymousStore(store), identity.identifier)
      : null;
  // Someone who paid before the environment was connected (or whose webhooks were lost) is found in the background:
  // their next decisions hold the linked plans.
  if (identity.isAuthenticated && customer === null) services.lookUpCustomerLater(environment, identity.identifier);
  services.timing.mark("context");
  return { ...context, customer, stripeProductIds: customer ? productsOf(customer, services.clock.now()) : [] };
}
