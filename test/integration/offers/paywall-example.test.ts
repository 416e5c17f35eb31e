/**
 * The end-to-end story on examples/paywall.yaml with its paywall component workflow: an anonymous reader
 * uses up the free articles, the article page then shows the paywall offer group with two slots (also placed as
 * elements by the component workflow), redeeming the first offer returns a Checkout URL, paying it on the fake Stripe
 * gives Premium on the reader's next decision, and the funnel holds impression → started → completed.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import paywallOffers from "../../../examples/workflows/paywall-offers.ts?raw";
import { call, createOrganization, publish, waitForBackgroundWork } from "../../support/api";
import { paywall } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, postWebhook } from "../../support/payments";
import { completeCheckout, seedPrice } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const ORIGIN = "https://news.example";

async function paywallShop() {
  const org = await createOrganization("Paywall example");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId, undefined, { allowedOrigins: [ORIGIN] });
  const premium = await seedPrice(account.key, "Premium", { unitAmount: 999, interval: "month" });
  const premiumYearly = await seedPrice(account.key, "Premium yearly", { unitAmount: 9900, interval: "year" });
  const premiumLower = await seedPrice(account.key, "Premium lower", { unitAmount: 799, interval: "month" });
  const dayPass = await seedPrice(account.key, "Day pass", { unitAmount: 199, interval: "day" });
  const document = paywall();
  // The seeded prices stand in for the example's placeholders; one Premium product carries the three Premium prices'
  // plan in the example, three here (the fake creates a product per price).
  document.plans.premium.stripeProductIds = [premium.product.id, premiumYearly.product.id, premiumLower.product.id];
  document.plans["day-pass"].stripeProductIds = [dayPass.product.id];
  document.offers["premium-monthly"].redemption.stripePriceId = premium.price.id;
  document.offers["premium-monthly"].variants["lower-price"].stripePriceId = premiumLower.price.id;
  document.offers["premium-yearly"].redemption.stripePriceId = premiumYearly.price.id;
  document.offers["day-pass"].redemption.stripePriceId = dayPass.price.id;
  document.workflows = { "paywall-offers": { type: "component", surface: "article-page", component: "paywall", source: paywallOffers } };
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account };
}

describe("examples/paywall.yaml: denied → offer shown → redeemed", () => {
  it("sells Premium to an anonymous reader who used up the free articles, and records the funnel", async () => {
    const { org, environmentId, account } = await paywallShop();
    const key = org.preview.secretKey;
    const reader = { anonymousIdentifier: `reader-${crypto.randomUUID()}` };
    const read = (article: string) =>
      call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "article-page", identity: reader, resource: { id: article } } });

    // Three free articles: no offer is eligible while articles are left.
    for (const article of ["a1", "a2", "a3"]) {
      const decision = await read(article);
      expect(decision.status, JSON.stringify(decision.body)).toBe(200);
      expect(decision.body.features.articles.properties.enabled.hasAccess).toBe(true);
      expect(decision.body.offers.paywall.slots.map((slot: any) => slot.offer)).toEqual([null, null]);
      expect(decision.body.componentBehaviors.paywall.properties).toEqual({ hidden: true });
    }

    // The fourth: denied, and the paywall group's two slots are filled.
    const denied = await read("a4");
    expect(denied.body.features.articles.properties.enabled.hasAccess).toBe(false);
    const slots = denied.body.offers.paywall.slots;
    expect(slots.map((slot: any) => [slot.name, slot.offer?.offer])).toEqual([
      ["featured", "premium-monthly"],
      ["alternative", "premium-yearly"],
    ]);
    const monthly = slots[0].offer;
    expect(monthly).toMatchObject({ title: "Premium", redemption: { method: "checkout" }, token: expect.any(String) });
    expect(monthly.price.amount).toBe(monthly.variant === "lower-price" ? 799 : 999);
    // The component workflow placed both offers as elements.
    const elements = denied.body.componentBehaviors.paywall.content.append.filter((item: any) => item.type === "element");
    expect(elements.map((item: any) => [item.schema, item.props.offer])).toEqual([
      ["offer", "premium-monthly"],
      ["offer", "premium-yearly"],
    ]);

    // Redeeming the first offer opens Checkout; a double click opens the same session.
    const redeem = () => call("POST", "/api/v1/offer-redemptions", { key, body: { identity: reader, offerToken: monthly.token } });
    const [first, second] = await Promise.all([redeem(), redeem()]);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ status: "success", redemption: { offer: "premium-monthly", method: "checkout", state: "started" }, checkout: { url: expect.any(String) } });
    expect(second.body.checkout.id).toBe(first.body.checkout.id);
    expect(second.body.eventId).toBe(first.body.eventId);

    // Paying on Stripe's page: the webhooks grant Premium to the same anonymous reader.
    const { events } = await completeCheckout(first.body.checkout.id);
    for (const event of events) expect((await postWebhook(environmentId, event, account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    await waitForBackgroundWork();

    const after = await read("a5");
    expect(after.body.features.articles.properties.enabled.hasAccess).toBe(true);
    expect(after.body.features.articles.properties.premium.value).toBe(true);
    expect(after.body.offers.paywall.slots.map((slot: any) => slot.offer)).toEqual([null, null]);

    // The funnel: one impression of the variant shown, one redemption started and completed.
    const funnel = await call("GET", `/api/v1/admin/environments/${environmentId}/offers/funnel`, { key: org.adminKey });
    expect(funnel.status, JSON.stringify(funnel.body)).toBe(200);
    const row = funnel.body.data.find((entry: any) => entry.offer === "premium-monthly");
    expect(row).toMatchObject({ variant: monthly.variant, impressions: 1, started: 1, completed: 1, failed: 0 });
  });
});
