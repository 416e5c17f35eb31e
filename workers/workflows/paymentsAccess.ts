/**
 * `utils.payments` behind the RPC boundary: the identity's customer record as the platform keeps it, its invoices,
 * and Checkout / billing-portal sessions — through the environment's connection, scoped to the request's tenant,
 * environment, store and identity. The provider's keys stay here; a workflow gets results, never credentials.
 */
import type { PreparedSnapshot } from "../engine/prepare";
import { ApiError } from "../errors";
import { connectedPayments, fromProvider, openCheckout, openPortal } from "../payments/checkout";
import { subscriptionAccess } from "../payments/lifecycle";
import { getCustomerRecord, paymentCustomerIdsOf, productsOf } from "../services/customers";
import type { PaymentsCustomer, PaymentsInvoice } from "./authorTypes";
import type { PaymentsPort } from "./utils";

export interface PaymentsAccessDeps {
  db: D1Database;
  secretsKey: string;
  stripeApiBase: string | undefined;
  logger: { warn(event: string, fields?: Record<string, unknown>): void };
  clock?: { now(): number };
}

export interface PaymentsAccessScope {
  environment: { id: string; organizationId: string };
  prepared: PreparedSnapshot;
  store: string;
}

/** Log lines of utils.payments outside a request (action workflows, dispatched scripts' utils calls). */
export const workflowLogger = { warn: (event: string, fields?: Record<string, unknown>) => console.warn(JSON.stringify({ event, ...fields })) };

const NOT_A_CUSTOMER: PaymentsCustomer = { isCustomer: false, customerIds: [], productIds: [], subscriptions: [], purchases: [] };

/** The port for an identity (`scopedUtils` calls it with the identity current at the time of each call). */
export function paymentsAccess(deps: PaymentsAccessDeps, scope: PaymentsAccessScope): (identity: { identifier: string; authenticated: boolean }) => PaymentsPort {
  const { db } = deps;
  const { environment, store, prepared } = scope;
  const now = () => (deps.clock ?? Date).now();
  const connected = () => connectedPayments(db, deps.secretsKey, deps.stripeApiBase, environment.id, deps.logger);
  return ({ identifier, authenticated }) => {
    const signedIn = (what: string) => {
      if (!authenticated) throw new ApiError("forbidden_identity_form", `utils.payments.${what} needs a signed-in identity`);
    };
    return {
      async customer(): Promise<PaymentsCustomer> {
        if (!authenticated) return NOT_A_CUSTOMER;
        const record = await getCustomerRecord(db, environment.organizationId, store, identifier);
        if (!record) return NOT_A_CUSTOMER;
        const at = now();
        return {
          isCustomer: true,
          customerIds: paymentCustomerIdsOf(record),
          productIds: productsOf(record, at),
          subscriptions: record.subscriptions.map((subscription) => ({
            id: subscription.id,
            state: subscription.state,
            status: subscription.status,
            productIds: subscription.productIds,
            currentPeriodEnd: subscription.currentPeriodEnd,
            cancelAtPeriodEnd: subscription.cancelAtPeriodEnd,
            access: subscriptionAccess(subscription, at),
          })),
          purchases: record.purchases.map(({ paymentId, state, productIds }) => ({ paymentId, state, productIds })),
        };
      },

      async invoices(limit): Promise<PaymentsInvoice[]> {
        signedIn("invoices");
        const record = await getCustomerRecord(db, environment.organizationId, store, identifier);
        const customerIds = record ? paymentCustomerIdsOf(record) : [];
        if (customerIds.length === 0) return [];
        const { gateway } = await connected();
        const lists = await fromProvider(() => Promise.all(customerIds.map((customerId) => gateway.listInvoices(customerId, limit))));
        return lists
          .flat()
          .sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0))
          .slice(0, limit);
      },

      async checkout(input) {
        signedIn("createCheckoutSession");
        return openCheckout(db, await connected(), { environment, prepared, store, identifier }, input);
      },

      async portal({ returnUrl }) {
        signedIn("createPortalSession");
        return openPortal(db, await connected(), { environment, store, identifier }, returnUrl);
      },
    };
  };
}
