/**
 * GET /api/v1/admin/environments/{environmentId}/offers/funnel: impressions counted from the offers of surface
 * decision records, redemptions started, completed and failed from offer_redemption events — per offer and variant —
 * with the conversion, within a time window, for those allowed to read events.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, waitForBackgroundWork } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { type CapturedPayments, capturePayments } from "../../support/payments";
import { articlePage, ORIGIN, payCheckout, redeem, redemptionShop, type RedemptionShop } from "./redemptionShop";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const funnel = (shop: RedemptionShop, query = "", key = shop.org.adminKey) => call("GET", `/api/v1/admin/environments/${shop.environmentId}/offers/funnel${query}`, { key });

describe("offer funnel", () => {
  it("counts impressions per offer and variant, then redemptions started, completed and failed, with the conversion", async () => {
    // The day pass is a bundle of a product Stripe does not know: its checkout fails.
    const shop = await redemptionShop((document) => {
      document.offers["day-pass"].price = {
        currency: "usd",
        bundle: { items: [{ name: "Day pass", stripeProductId: "prod_missing000", amount: 199 }, { name: "Extra", stripeProductId: "prod_missing001", amount: 100 }], multiplier: 1 },
      };
      delete document.offers["day-pass"].redemption.stripePriceId;
      delete document.offers["day-pass"].redemption.plan;
      document.offerGroups.paywall.slots[1].offers = ["day-pass"];
    });
    const start = new Date().toISOString();
    const shown: { offer: string; variant: string | null; token: string; identity: Record<string, unknown> }[] = [];
    for (let index = 0; index < 4; index++) {
      const identity = { anonymousIdentifier: `reader-${index}-${crypto.randomUUID()}` };
      const decision = await articlePage(shop, identity);
      for (const slot of decision.offers.paywall.slots) if (slot.offer) shown.push({ ...slot.offer, identity });
    }
    expect(shown).toHaveLength(8);
    const expected = new Map<string, { offer: string; variant: string | null; impressions: number; started: number; completed: number; failed: number }>();
    const rowOf = (offer: string, variant: string | null) => {
      const key = `${offer}/${variant}`;
      if (!expected.has(key)) expected.set(key, { offer, variant, impressions: 0, started: 0, completed: 0, failed: 0 });
      return expected.get(key)!;
    };
    for (const offer of shown) rowOf(offer.offer, offer.variant).impressions++;

    // Two monthly redemptions, one of them paid; one day pass, refused by Stripe.
    const monthly = shown.filter((offer) => offer.offer === "premium-monthly");
    const paid = await redeem(shop, { identity: monthly[0]!.identity, offerToken: monthly[0]!.token });
    expect(paid.status).toBe(201);
    await payCheckout(shop, payments, paid.body.checkout.id);
    rowOf("premium-monthly", monthly[0]!.variant).started++;
    rowOf("premium-monthly", monthly[0]!.variant).completed++;
    expect((await redeem(shop, { identity: monthly[1]!.identity, offerToken: monthly[1]!.token })).status).toBe(201);
    rowOf("premium-monthly", monthly[1]!.variant).started++;
    const dayPass = shown.find((offer) => offer.offer === "day-pass")!;
    expectConsoleError(/No such product/);
    const failed = await redeem(shop, { identity: dayPass.identity, offerToken: dayPass.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` });
    expect(failed.status).toBe(502);
    rowOf("day-pass", null).started++;
    rowOf("day-pass", null).failed++;
    await waitForBackgroundWork();

    const response = await funnel(shop);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const byKey = (rows: { offer: string; variant: string | null }[]) => [...rows].sort((a, b) => `${a.offer}/${a.variant}`.localeCompare(`${b.offer}/${b.variant}`));
    expect(byKey(response.body.data)).toEqual(
      byKey([...expected.values()].map((row) => ({ ...row, conversion: row.completed / row.impressions }))),
    );
    const monthlyRow = response.body.data.find((row: any) => row.offer === "premium-monthly" && row.variant === monthly[0]!.variant);
    expect(monthlyRow.completed).toBe(1);

    // A window before any of it: nothing.
    const before = await funnel(shop, `?from=${encodeURIComponent(new Date(Date.parse(start) - 86_400_000).toISOString())}&to=${encodeURIComponent(new Date(Date.parse(start) - 60_000).toISOString())}`);
    expect(before.status).toBe(200);
    expect(before.body.data).toEqual([]);
    // Bounds are instants, not strings: the same window written with an offset counts the same.
    const shifted = await funnel(shop, `?from=${encodeURIComponent(new Date(Date.parse(start) - 60_000).toISOString().replace("Z", "+00:00"))}`);
    expect(shifted.body.data).toEqual(response.body.data);
    // At most 92 days, from before to.
    expect((await funnel(shop, "?from=2020-01-01T00:00:00Z")).status).toBe(400);
    expect((await funnel(shop, `?from=${encodeURIComponent(new Date().toISOString())}&to=2020-01-01T00:00:00Z`)).status).toBe(400);
  });

  it("is read with a key that may read the environment's events", async () => {
    const shop = await redemptionShop();
    expect((await funnel(shop, "", shop.org.preview.secretKey)).status).toBe(200);
    const foreign = await funnel(shop, "", shop.org.live.secretKey);
    expect(foreign.status).toBe(403);
    expect((await funnel(shop, "", shop.org.preview.publishableKey)).status).toBe(403);
    expect((await funnel(shop, "?from=yesterday")).status).toBe(400);
  });
});
