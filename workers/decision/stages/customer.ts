/**
 * Stage 4 — customer: the Stripe products a signed-in identity holds right now — what its subscriptions and purchases
 * grant at the decision's clock, plus any set by hand (read through a short per-isolate cache, so the steady state
 * does no D1 query). Anonymous visitors are never customers. A signed-in identity without a record is looked up at
 * the payment provider in the background (payments/lookup.ts), never delaying the decision.
 */
import { productsOf } from "../../services/customers";
import type { CallerScope, Configured, Identified, WithCustomer } from "../context";
import type { Services } from "../services";

export async function findCustomer<C extends CallerScope & Configured & Identified>(services: Services, context: C): Promise<C & WithCustomer> {
  const { identity, environment, store } = context;
  const customer = identity.isAuthenticated ? await services.customer(environment.organizationId, store, identity.identifier) : null;
  // Someone who paid before the environment was connected (or whose webhooks were lost) is found in the background:
  // their next decisions hold the linked plans.
  if (identity.isAuthenticated && customer === null) services.lookUpCustomerLater(environment, identity.identifier);
  services.timing.mark("context");
  return { ...context, customer, stripeProductIds: customer ? productsOf(customer, services.clock.now()) : [] };
}
