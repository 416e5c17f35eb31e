/**
 * Charging in x402 (workers/payments/x402Charge.ts) against the fake facilitator (test/fake-facilitator), whose payers
 * sign with real keys: what is offered, an exact charge settled before serving and only once, every refusal a value
 * with the PAYMENT-REQUIRED header to answer with, and upto authorized first, settled later for the actual amount.
 */
import { describe, expect, it } from "vitest";
import {
  decodePaymentRequired,
  decodePaymentResponse,
  encodePaymentSignature,
  type PaymentPayload,
  type PaymentRequirements,
} from "../../../workers/payments/x402";
import {
  authorizeX402Upto,
  chargeX402,
  createX402Gateway,
  paymentRequiredFor,
  settleX402Upto,
  x402GatewayFor,
  x402SchemeOf,
} from "../../../workers/payments/x402Charge";
import { createHttpFacilitator, type Facilitator, FACILITATOR_FAILURES } from "../../../workers/payments/x402Facilitator";
import type { X402Settings } from "../../../workers/services/x402Settings";
import { balanceOf, createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, failNext, fund, requestsFor, settlementsTo } from "../../fake-facilitator/wallet";

const USD = (micros: number) => ({ currency: "USD", micros });
const RESOURCE = { url: "https://site.example/articles/42", description: "An article" };

/** Settings of their own: a fresh recipient, so tests sharing the fake see only their own settlements and requests. */
function newSettings(overrides: Partial<X402Settings> = {}): X402Settings {
  return {
    facilitatorUrl: `${facilitatorBase()}/`,
    network: FAKE_NETWORK,
    asset: FAKE_ASSET,
    payTo: `0x${crypto.randomUUID().replaceAll("-", "")}`,
    maxTimeoutSeconds: 60,
    updatedAt: new Date().toISOString(),
    ...overrides,
  };
}

function facilitatorAt(baseUrl: string): Facilitator {
  const created = createHttpFacilitator({ baseUrl, allowInsecureLoopback: true });
  if (!created.ok) throw new Error(created.message);
  return created.facilitator;
}
const fakeFacilitator = () => facilitatorAt(facilitatorBase());

/** The offers of a PAYMENT-REQUIRED header, as a client reads them. */
function offersOf(header: string | null): PaymentRequirements[] {
  const decoded = decodePaymentRequired(header);
  if (!decoded.ok) throw new Error(`not a PAYMENT-REQUIRED header: ${decoded.error.message}`);
  return decoded.value.accepts;
}

function header(payment: PaymentPayload): string {
  const encoded = encodePaymentSignature(payment);
  if (!encoded.ok) throw new Error(encoded.error.message);
  return encoded.value;
}

/** A funded payer's PAYMENT-SIGNATURE for the exact offer of `settings` at `micros`. */
async function exactPayment(settings: X402Settings, micros: number, funds = "1000000") {
  const wallet = await createTestWallet();
  await fund(wallet.address, funds);
  const [exact] = offersOf(paymentRequiredFor(settings, USD(micros), RESOURCE));
  return { wallet, offer: exact!, header: header(await wallet.pay(exact!)) };
}

describe("what is offered", () => {
  it("one exact offer at the price in the asset's atomic units (USD micro-units), an upto one only when asked", () => {
    const settings = newSettings({ extra: { name: "USDC", version: "2" } });
    const required = decodePaymentRequired(paymentRequiredFor(settings, USD(10_000), RESOURCE));
    expect(required).toEqual({
      ok: true,
      value: {
        x402Version: 2,
        resource: RESOURCE,
        accepts: [{ scheme: "exact", network: FAKE_NETWORK, amount: "10000", asset: FAKE_ASSET, payTo: settings.payTo, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } }],
      },
    });
    const withUpto = offersOf(paymentRequiredFor(settings, USD(10_000), RESOURCE, { maxMicros: 250_000 }));
    expect(withUpto.map((offer) => [offer.scheme, offer.amount])).toEqual([["exact", "10000"], ["upto", "250000"]]);
    // A configured currency may be written in lower case.
    expect(offersOf(paymentRequiredFor(settings, { currency: "usd", micros: 5 }, RESOURCE))[0]!.amount).toBe("5");
  });

  it("nothing for a price x402 cannot take here: another currency, nothing to pay, not whole micro-units", () => {
    const settings = newSettings();
    expect(paymentRequiredFor(settings, { currency: "EUR", micros: 10_000 }, RESOURCE)).toBeNull();
    expect(paymentRequiredFor(settings, USD(0), RESOURCE)).toBeNull();
    expect(paymentRequiredFor(settings, USD(-1), RESOURCE)).toBeNull();
    expect(paymentRequiredFor(settings, USD(0.5), RESOURCE)).toBeNull();
    expect(paymentRequiredFor(settings, USD(10), RESOURCE, { maxMicros: Number.MAX_SAFE_INTEGER + 2 })).toBeNull();
  });

  it("a resource URL too long for the header loses its query; a description is cut", () => {
    const settings = newSettings();
    const long = decodePaymentRequired(
      paymentRequiredFor(settings, USD(10), { url: `https://site.example/a?q=${"x".repeat(3000)}`, description: "d".repeat(2000) }),
    );
    expect(long.ok && long.value.resource).toEqual({ url: "https://site.example/a", description: "d".repeat(1024) });
    expect(paymentRequiredFor(settings, USD(10), { url: `https://site.example/${"p".repeat(3000)}` })).toBeNull();
  });
});

describe("an exact charge", () => {
  it("verifies and settles the payment before serving, once: a replay is refused by the facilitator", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { wallet, header: payment } = await exactPayment(settings, 10_000, "25000");
    expect(x402SchemeOf(payment)).toBe("exact");

    const charged = await chargeX402(settings, facilitator, USD(10_000), RESOURCE, payment);
    expect(charged).toEqual({
      ok: true,
      settlement: { success: true, network: FAKE_NETWORK, payer: wallet.address, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) },
      paymentResponseHeader: expect.any(String),
      payer: wallet.address,
      transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      amountMicros: 10_000,
    });
    if (!charged.ok) return;
    expect(decodePaymentResponse(charged.paymentResponseHeader)).toEqual({
      ok: true,
      value: { success: true, network: FAKE_NETWORK, transaction: charged.transaction, payer: wallet.address },
    });
    expect(await balanceOf(wallet.address)).toBe("15000");
    expect((await requestsFor(settings.payTo)).map((request) => request.path)).toEqual(["/verify", "/settle"]);

    const replayed = await chargeX402(settings, facilitator, USD(10_000), RESOURCE, payment);
    expect(replayed).toMatchObject({ ok: false, reason: "payment_invalid", facilitatorReason: "nonce_already_used", facilitatorFailure: false });
    if (replayed.ok) return;
    const again = decodePaymentRequired(replayed.paymentRequiredHeader);
    expect(again.ok && again.value).toMatchObject({ error: "the payment was refused: nonce_already_used", accepts: [{ scheme: "exact", amount: "10000", payTo: settings.payTo }] });
    expect(await settlementsTo(settings.payTo)).toEqual([expect.objectContaining({ transaction: charged.transaction, amount: "10000", scheme: "exact" })]);
    expect(await balanceOf(wallet.address)).toBe("15000");
  });

  it("settles one of many concurrent uses of the same payment", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { wallet, header: payment } = await exactPayment(settings, 3_000, "100000");
    const results = await Promise.all(Array.from({ length: 8 }, () => chargeX402(settings, facilitator, USD(3_000), RESOURCE, payment)));
    expect(results.filter((result) => result.ok)).toHaveLength(1);
    // Refused at verify or, when verified alongside the winner, at settle: by the facilitator's nonce either way.
    const refused = expect.objectContaining({ reason: expect.stringMatching(/^(payment_invalid|settlement_failed)$/), facilitatorReason: "nonce_already_used" });
    expect(results.filter((result) => !result.ok)).toEqual(Array.from({ length: 7 }, () => refused));
    expect(await settlementsTo(settings.payTo)).toHaveLength(1);
    expect(await balanceOf(wallet.address)).toBe("97000");
  });

  it("refuses, without asking the facilitator, a payment of another amount, network or recipient, a malformed or missing header", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const [offer] = offersOf(paymentRequiredFor(settings, USD(10_000), RESOURCE));
    const cases: [string | undefined, string][] = [
      [header(await wallet.pay(offer!, { value: "9999" })), "amount_mismatch"],
      [header(await wallet.pay({ ...offer!, amount: "10001" })), "amount_mismatch"],
      [header(await wallet.pay({ ...offer!, network: "x402test:other" })), "no_matching_offer"],
      [header(await wallet.pay({ ...offer!, payTo: `0x${"ab".repeat(16)}` })), "no_matching_offer"],
      [header(await wallet.pay({ ...offer!, asset: "other-usd" })), "no_matching_offer"],
      [header(await wallet.pay({ ...offer!, scheme: "upto" })), "no_matching_offer"],
      ["%%% not base64 %%%", "payment_malformed"],
      [btoa(JSON.stringify({ x402Version: 1, payload: {} })), "payment_malformed"],
      [btoa(JSON.stringify({ x402Version: 2 })), "payment_malformed"],
      [undefined, "payment_missing"],
      ["", "payment_missing"],
    ];
    for (const [payment, reason] of cases) {
      const refused = await chargeX402(settings, facilitator, USD(10_000), RESOURCE, payment);
      expect(refused, reason).toMatchObject({ ok: false, reason, facilitatorFailure: false });
      if (refused.ok) continue;
      // The answer to give: the offer again, saying what was wrong.
      const required = decodePaymentRequired(refused.paymentRequiredHeader);
      expect(required.ok && required.value, reason).toMatchObject({ error: refused.message, resource: RESOURCE, accepts: [offer] });
    }
    const missing = await chargeX402(settings, facilitator, USD(10_000), RESOURCE, undefined);
    expect(missing).toMatchObject({ message: "PAYMENT-SIGNATURE header is required" });
    expect(await requestsFor(settings.payTo)).toEqual([]);
    expect(await balanceOf(wallet.address)).toBe("1000000");
  });

  it("refuses what the facilitator finds wrong, with its reason: insufficient funds, a forged signature", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { header: unfunded } = await exactPayment(settings, 10_000, "9999");
    expect(await chargeX402(settings, facilitator, USD(10_000), RESOURCE, unfunded)).toMatchObject({
      ok: false,
      reason: "payment_invalid",
      facilitatorReason: "insufficient_funds",
      facilitatorFailure: false,
      paymentRequiredHeader: expect.any(String),
    });
    const victim = await createTestWallet();
    const thief = await createTestWallet();
    await fund(victim.address, "1000000");
    const [offer] = offersOf(paymentRequiredFor(settings, USD(10_000), RESOURCE));
    const forged = header(await thief.pay(offer!, { from: victim.address }));
    expect(await chargeX402(settings, facilitator, USD(10_000), RESOURCE, forged)).toMatchObject({ ok: false, reason: "payment_invalid", facilitatorReason: "invalid_payload_signature" });
    expect(await settlementsTo(settings.payTo)).toEqual([]);
    expect(await balanceOf(victim.address)).toBe("1000000");
  });

  it("makes a facilitator that is down, failing or throwing a refusal that says nothing of the payment, and keeps the payment usable", async () => {
    const settings = newSettings();
    const { wallet, header: payment } = await exactPayment(settings, 10_000, "10000");

    // Nothing listens on port 1.
    const down = await chargeX402(settings, facilitatorAt("http://127.0.0.1:1"), USD(10_000), RESOURCE, payment);
    expect(down).toMatchObject({ ok: false, reason: "facilitator_unavailable", facilitatorReason: FACILITATOR_FAILURES.unavailable, facilitatorFailure: true, paymentRequiredHeader: expect.any(String) });

    // Verified, then the settle fails: x402 answers a failed settlement with PAYMENT-RESPONSE too.
    await failNext(settings.payTo, "/settle", { status: 502 });
    const settleFailed = await chargeX402(settings, fakeFacilitator(), USD(10_000), RESOURCE, payment);
    expect(settleFailed).toMatchObject({ ok: false, reason: "facilitator_unavailable", facilitatorReason: FACILITATOR_FAILURES.badResponse, facilitatorFailure: true });
    if (settleFailed.ok) return;
    expect(decodePaymentResponse(settleFailed.paymentResponseHeader)).toEqual({
      ok: true,
      value: { success: false, network: FAKE_NETWORK, errorReason: FACILITATOR_FAILURES.badResponse },
    });

    const throwing: Facilitator = {
      verify: () => Promise.reject(new Error("boom")),
      settle: () => Promise.reject(new Error("boom")),
    };
    const thrown = await createX402Gateway(settings, throwing).charge(USD(10_000), RESOURCE, payment);
    expect(thrown).toMatchObject({ ok: false, reason: "facilitator_unavailable", facilitatorFailure: true });
    const settleThrows = await chargeX402(settings, { verify: fakeFacilitator().verify, settle: throwing.settle }, USD(10_000), RESOURCE, payment);
    expect(settleThrows).toMatchObject({ ok: false, reason: "facilitator_unavailable", facilitatorFailure: true, paymentResponseHeader: expect.any(String) });

    // None of that moved the funds: the payment still settles.
    expect(await chargeX402(settings, fakeFacilitator(), USD(10_000), RESOURCE, payment)).toMatchObject({ ok: true, payer: wallet.address });
    expect(await balanceOf(wallet.address)).toBe("0");
  });

  it("refuses a price it cannot offer, with no offer to answer", async () => {
    const settings = newSettings();
    const { header: payment } = await exactPayment(settings, 10_000);
    expect(await chargeX402(settings, fakeFacilitator(), { currency: "EUR", micros: 10_000 }, RESOURCE, payment)).toMatchObject({
      ok: false,
      reason: "price_not_payable",
      paymentRequiredHeader: null,
    });
    expect(await requestsFor(settings.payTo)).toEqual([]);
  });
});

describe("an upto charge", () => {
  /** A funded payer's authorization of the upto offer of `settings` up to `maxMicros`. */
  async function uptoPayment(settings: X402Settings, maxMicros: number, funds = "1000000") {
    const wallet = await createTestWallet();
    await fund(wallet.address, funds);
    const upto = offersOf(paymentRequiredFor(settings, USD(1_000), RESOURCE, { maxMicros })).find((offer) => offer.scheme === "upto")!;
    return { wallet, header: header(await wallet.pay(upto)) };
  }

  it("authorizes first (nothing moves), then settles the actual amount, once", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { wallet, header: payment } = await uptoPayment(settings, 50_000, "100000");
    expect(x402SchemeOf(payment)).toBe("upto");

    const authorized = await authorizeX402Upto(settings, facilitator, USD(50_000), RESOURCE, payment);
    expect(authorized).toMatchObject({ ok: true, payer: wallet.address, maxMicros: 50_000, requirements: { scheme: "upto", amount: "50000", payTo: settings.payTo } });
    if (!authorized.ok) return;
    expect(await settlementsTo(settings.payTo)).toEqual([]);
    expect(await balanceOf(wallet.address)).toBe("100000");

    const settled = await settleX402Upto(facilitator, authorized, 1_234);
    expect(settled).toMatchObject({ ok: true, amountMicros: 1_234, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/), paymentResponseHeader: expect.any(String) });
    expect(await settlementsTo(settings.payTo)).toEqual([expect.objectContaining({ scheme: "upto", amount: "1234", payer: wallet.address })]);
    expect(await balanceOf(wallet.address)).toBe(String(100_000 - 1_234));

    // The authorization is spent: settling it again moves nothing.
    expect(await settleX402Upto(facilitator, authorized, 1_234)).toMatchObject({ ok: false, reason: "settlement_failed", facilitatorReason: "nonce_already_used", paymentRequiredHeader: null });
    expect(await settlementsTo(settings.payTo)).toHaveLength(1);
  });

  it("settles up to the authorized maximum, never above it, and nothing for nothing", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { wallet, header: payment } = await uptoPayment(settings, 50_000, "100000");
    const authorized = await authorizeX402Upto(settings, facilitator, USD(50_000), RESOURCE, payment);
    if (!authorized.ok) throw new Error(authorized.message);

    for (const actual of [50_001, 1.5, -1]) {
      expect(await settleX402Upto(facilitator, authorized, actual), String(actual)).toMatchObject({ ok: false, reason: "amount_above_authorization", facilitatorFailure: false });
    }
    expect(await settleX402Upto(facilitator, authorized, 0)).toEqual({ ok: true, amountMicros: 0 });
    // Neither asked the facilitator to settle anything.
    expect((await requestsFor(settings.payTo)).map((request) => request.path)).toEqual(["/verify"]);

    expect(await settleX402Upto(facilitator, authorized, 50_000)).toMatchObject({ ok: true, amountMicros: 50_000 });
    expect(await balanceOf(wallet.address)).toBe("50000");
  });

  it("refuses an authorization below the maximum, an exact payment, or one the facilitator finds wrong", async () => {
    const settings = newSettings();
    const facilitator = fakeFacilitator();
    const { header: tooSmall } = await uptoPayment(settings, 40_000);
    const refused = await authorizeX402Upto(settings, facilitator, USD(50_000), RESOURCE, tooSmall);
    expect(refused).toMatchObject({ ok: false, reason: "authorization_too_small" });
    if (!refused.ok) {
      const required = decodePaymentRequired(refused.paymentRequiredHeader);
      expect(required.ok && required.value.accepts).toEqual([expect.objectContaining({ scheme: "upto", amount: "50000" })]);
    }
    const { header: exact } = await exactPayment(settings, 50_000);
    expect(await authorizeX402Upto(settings, facilitator, USD(50_000), RESOURCE, exact)).toMatchObject({ ok: false, reason: "no_matching_offer" });
    const { header: unfunded } = await uptoPayment(settings, 50_000, "10");
    expect(await authorizeX402Upto(settings, facilitator, USD(50_000), RESOURCE, unfunded)).toMatchObject({ ok: false, reason: "payment_invalid", facilitatorReason: "insufficient_funds" });
    expect(await settlementsTo(settings.payTo)).toEqual([]);
  });
});

describe("the x402 gateway of an environment's settings", () => {
  it("speaks to the settings' facilitator; none when its URL is no longer one the platform may call", async () => {
    const settings = newSettings();
    const gateway = x402GatewayFor(settings, { allowLoopbackFacilitator: true });
    expect(gateway?.kind).toBe("x402");
    const { wallet, header: payment } = await exactPayment(settings, 2_000);
    expect(offersOf(gateway!.paymentRequired(USD(2_000), RESOURCE))).toEqual([expect.objectContaining({ scheme: "exact", amount: "2000" })]);
    expect(await gateway!.charge(USD(2_000), RESOURCE, payment)).toMatchObject({ ok: true, payer: wallet.address, amountMicros: 2_000 });
    expect(x402GatewayFor(settings, { allowLoopbackFacilitator: false })).toBeNull();
  });
});
