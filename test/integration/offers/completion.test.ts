/**
 * Which checkout completes a redemption: only the one the redemption opened. The redemption's id (its token's jti) is
 * readable in the token, so a checkout opened elsewhere on the same Stripe account with that id in its metadata — for
 * another identity, or for the same one — must not complete it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createStripeGateway } from "../../../workers/payments/stripe";
import { anonymousStore } from "../../../workers/services/customers";
import { storeScope } from "../../../workers/payments/gateway";
import { type CapturedPayments, capturePayments } from "../../support/payments";
import { stripeApiBase } from "../../support/stripe";
import { ORIGIN, offerShown, payCheckout, redeem, redemptionRows, redemptionShop } from "./redemptionShop";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

describe("completing a redemption from the checkout webhook", () => {
  it("takes only the checkout the redemption opened, whatever metadata another checkout carries", async () => {
    const shop = await redemptionShop();
    const visitor = { anonymousIdentifier: `visitor-${crypto.randomUUID()}` };
    const shown = await offerShown(shop, visitor);
    const opened = await redeem(shop, { identity: visitor, offerToken: shown.token });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const redemptionId: string = opened.body.redemption.id;

    // Someone with the account's keys opens checkouts naming the redemption: for another identity, and for the same
    // identity in the same partition. Paid, neither completes it.
    const gateway = createStripeGateway({ secretKey: shop.account.key, webhookSecret: shop.account.webhookSecret, apiBase: stripeApiBase() });
    const scope = storeScope(shop.org.id, anonymousStore("preview"));
    for (const identifier of ["someone-else", visitor.anonymousIdentifier]) {
      const forged = await gateway.createCheckoutSession({
        mode: "subscription",
        priceIds: [shop.prices.premium],
        identifier,
        scope,
        successUrl: `${ORIGIN}/x`,
        cancelUrl: `${ORIGIN}/y`,
        automaticTax: false,
        metadata: { platform_offer_redemption: redemptionId },
      });
      await payCheckout(shop, payments, forged.id);
      expect((await redemptionRows(shop)).map((row: any) => row.state)).toEqual(["started"]);
    }

    // Its own checkout does.
    await payCheckout(shop, payments, opened.body.checkout.id);
    expect((await redemptionRows(shop)).map((row: any) => row.state)).toEqual(["completed"]);
  });
});
