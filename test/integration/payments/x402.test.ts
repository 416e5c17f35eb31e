/**
 * x402 version 2 as a building block: the header codec (round trips, hostile headers), matching a payment to the
 * offers, and the HTTP facilitator adapter against the fake facilitator (test/fake-facilitator), whose payers sign
 * with real keys.
 */
import { describe, expect, it } from "vitest";
import { encodeBase64 } from "../../../workers/lib/base64";
import {
  decodePaymentRequired,
  decodePaymentResponse,
  decodePaymentSignature,
  encodePaymentRequired,
  encodePaymentResponse,
  encodePaymentSignature,
  MAX_X402_HEADER_BYTES,
  matchPaymentRequirements,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  settlementRequirements,
} from "../../../workers/payments/x402";
import { createHttpFacilitator, type Facilitator, FACILITATOR_FAILURES, INVALID_SETTLEMENT_AMOUNT, isFacilitatorFailure, parseFacilitatorUrl } from "../../../workers/payments/x402Facilitator";
import { balanceOf, createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, failNext, fund, requestsFor, settlementsTo } from "../../fake-facilitator/wallet";

const base64Json = (value: unknown) => encodeBase64(new TextEncoder().encode(JSON.stringify(value)));

/** A recipient of its own, so tests sharing the fake see only their own settlements and requests. */
const newPayTo = () => `0x${crypto.randomUUID().replaceAll("-", "")}`;

function offer(overrides: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return { scheme: "exact", network: FAKE_NETWORK, amount: "10000", asset: FAKE_ASSET, payTo: newPayTo(), maxTimeoutSeconds: 60, ...overrides };
}

const EVM_OFFER: PaymentRequirements = {
  scheme: "exact",
  network: "eip155:84532",
  amount: "10000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
  maxTimeoutSeconds: 60,
  extra: { name: "USDC", version: "2" },
};

const PAYMENT_REQUIRED: PaymentRequired = {
  x402Version: 2,
  error: "PAYMENT-SIGNATURE header is required",
  resource: { url: "https://api.example.com/premium-data", description: "Access to premium market data", mimeType: "application/json" },
  accepts: [EVM_OFFER, { ...EVM_OFFER, scheme: "upto", amount: "50000" }],
};

const PAYMENT: PaymentPayload = {
  x402Version: 2,
  resource: PAYMENT_REQUIRED.resource,
  accepted: EVM_OFFER,
  payload: {
    signature: "0x2d6a75",
    authorization: { from: "0x857b06519E91e3A54538791bDbb0E22373e36b66", to: EVM_OFFER.payTo, value: "10000", validAfter: "1740672089", validBefore: "1740672154", nonce: "0xf374" },
  },
};

function fakeFacilitator(options: { timeoutMs?: number } = {}): Facilitator {
  const created = createHttpFacilitator({ baseUrl: facilitatorBase(), allowInsecureLoopback: true, ...options });
  if (!created.ok) throw new Error(created.message);
  return created.facilitator;
}

describe("x402 header codec", () => {
  it("round-trips PAYMENT-REQUIRED, PAYMENT-SIGNATURE and PAYMENT-RESPONSE as base64 JSON", () => {
    const required = encodePaymentRequired(PAYMENT_REQUIRED);
    expect(required.ok).toBe(true);
    if (!required.ok) return;
    expect(JSON.parse(atob(required.value))).toEqual(PAYMENT_REQUIRED);
    expect(decodePaymentRequired(required.value)).toEqual({ ok: true, value: PAYMENT_REQUIRED });

    const signature = encodePaymentSignature(PAYMENT);
    expect(signature.ok && decodePaymentSignature(signature.value)).toEqual({ ok: true, value: PAYMENT });

    const settled = { success: true, transaction: "0x1234", network: "eip155:84532", payer: "0x857b" };
    const response = encodePaymentResponse(settled);
    expect(response.ok && decodePaymentResponse(response.value)).toEqual({ ok: true, value: settled });
    // The failure form of the spec's example: no transaction at all.
    expect(decodePaymentResponse(base64Json({ success: false, errorReason: "insufficient_funds", network: "eip155:84532" }))).toEqual({
      ok: true,
      value: { success: false, errorReason: "insufficient_funds", network: "eip155:84532" },
    });
  });

  it("reads the URL-safe alphabet and missing padding, and surrounding spaces", () => {
    const standard = base64Json({ ...PAYMENT, payload: { note: "??>>~~" } });
    const urlSafe = standard.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    expect(urlSafe).not.toBe(standard);
    expect(decodePaymentSignature(`  ${urlSafe} `)).toEqual(decodePaymentSignature(standard));
    expect(decodePaymentSignature(standard).ok).toBe(true);
  });

  it("refuses hostile headers with a reason, never throwing", () => {
    const code = (result: { ok: boolean; error?: { code: string } }) => (result.ok ? "ok" : result.error!.code);
    expect(code(decodePaymentSignature(null))).toBe("missing");
    expect(code(decodePaymentSignature("   "))).toBe("missing");
    expect(code(decodePaymentSignature("not base64!"))).toBe("not_base64");
    expect(code(decodePaymentSignature("abcde"))).toBe("not_base64");
    expect(code(decodePaymentSignature(btoa("{not json")))).toBe("not_json");
    expect(code(decodePaymentSignature(encodeBase64(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))))).toBe("not_json");
    expect(code(decodePaymentSignature(base64Json([PAYMENT])))).toBe("invalid");
    expect(code(decodePaymentSignature(base64Json(null)))).toBe("invalid");

    const huge = base64Json({ ...PAYMENT, payload: { padding: "x".repeat(MAX_X402_HEADER_BYTES) } });
    expect(code(decodePaymentSignature(huge))).toBe("too_large");
    expect(code(decodePaymentSignature("A".repeat(10_000_000)))).toBe("too_large");
    expect(code(encodePaymentSignature({ ...PAYMENT, payload: { padding: "x".repeat(MAX_X402_HEADER_BYTES) } }))).toBe("too_large");

    const version1 = decodePaymentSignature(base64Json({ ...PAYMENT, x402Version: 1 }));
    expect(version1).toMatchObject({ ok: false, error: { code: "unsupported_version" } });
    expect(code(decodePaymentRequired(base64Json({ ...PAYMENT_REQUIRED, x402Version: "2" })))).toBe("unsupported_version");
  });

  it("names the missing or malformed field", () => {
    const { accepted: _, ...noAccepted } = PAYMENT;
    expect(decodePaymentSignature(base64Json(noAccepted))).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("accepted") } });
    const bad = (requirements: Record<string, unknown>) => decodePaymentRequired(base64Json({ ...PAYMENT_REQUIRED, accepts: [{ ...EVM_OFFER, ...requirements }] }));
    expect(bad({ amount: 10000 })).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("accepts[0].amount") } });
    expect(bad({ amount: "-1" })).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect(bad({ amount: "1.5" })).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect(bad({ scheme: "stream" })).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("accepts[0].scheme") } });
    expect(bad({ network: "base-sepolia" })).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("accepts[0].network") } });
    expect(bad({ payTo: undefined })).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("payTo") } });
    expect(decodePaymentRequired(base64Json({ ...PAYMENT_REQUIRED, accepts: [] }))).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect(decodePaymentRequired(base64Json({ x402Version: 2, accepts: [EVM_OFFER] }))).toMatchObject({ ok: false, error: { code: "invalid", message: expect.stringContaining("resource") } });
    // Encoding refuses what it would not decode.
    expect(encodePaymentRequired({ ...PAYMENT_REQUIRED, accepts: [{ ...EVM_OFFER, amount: "ten" }] })).toMatchObject({ ok: false, error: { code: "invalid" } });
  });
});

describe("matching a payment to the offers", () => {
  const upto = { ...EVM_OFFER, scheme: "upto" as const, amount: "50000" };
  const paying = (accepted: Partial<PaymentRequirements>): PaymentPayload => ({ ...PAYMENT, accepted: { ...EVM_OFFER, ...accepted } });

  it("exact: same scheme, network, asset and recipient, and exactly the price", () => {
    expect(matchPaymentRequirements(paying({}), [upto, EVM_OFFER])).toEqual({ ok: true, requirements: EVM_OFFER });
    // EVM addresses are compared without their checksum casing; the server's own offer is what is returned.
    const lowered = paying({ asset: EVM_OFFER.asset.toLowerCase(), payTo: EVM_OFFER.payTo.toUpperCase().replace("0X", "0x") });
    expect(matchPaymentRequirements(lowered, [EVM_OFFER])).toEqual({ ok: true, requirements: EVM_OFFER });
    expect(matchPaymentRequirements(paying({ amount: "9999" }), [EVM_OFFER])).toMatchObject({ ok: false, reason: "amount_mismatch" });
    expect(matchPaymentRequirements(paying({ amount: "10001" }), [EVM_OFFER])).toMatchObject({ ok: false, reason: "amount_mismatch" });
    expect(matchPaymentRequirements(paying({ network: "eip155:8453" }), [EVM_OFFER])).toMatchObject({ ok: false, reason: "no_matching_offer" });
    expect(matchPaymentRequirements(paying({ asset: "0x0000000000000000000000000000000000000001" }), [EVM_OFFER])).toMatchObject({ ok: false, reason: "no_matching_offer" });
    expect(matchPaymentRequirements(paying({ payTo: "0x857b06519E91e3A54538791bDbb0E22373e36b66" }), [EVM_OFFER])).toMatchObject({ ok: false, reason: "no_matching_offer" });
    expect(matchPaymentRequirements(paying({}), [upto])).toMatchObject({ ok: false, reason: "no_matching_offer" });
    // Off EVM, identifiers are compared as they are.
    const other = offer({ payTo: "Merchant" });
    expect(matchPaymentRequirements({ ...PAYMENT, accepted: { ...other, payTo: "merchant" } }, [other])).toMatchObject({ ok: false, reason: "no_matching_offer" });
  });

  it("upto: an authorized maximum at least the offer's; the charge is settled later, up to the offer's amount", () => {
    expect(matchPaymentRequirements(paying({ scheme: "upto", amount: "50000" }), [EVM_OFFER, upto])).toEqual({ ok: true, requirements: upto });
    expect(matchPaymentRequirements(paying({ scheme: "upto", amount: "90000" }), [upto])).toEqual({ ok: true, requirements: upto });
    expect(matchPaymentRequirements(paying({ scheme: "upto", amount: "49999" }), [upto])).toMatchObject({ ok: false, reason: "authorization_too_small" });

    expect(settlementRequirements(upto, "1234")).toEqual({ ok: true, value: { ...upto, amount: "1234" } });
    expect(settlementRequirements(upto, "0")).toEqual({ ok: true, value: { ...upto, amount: "0" } });
    expect(settlementRequirements(upto)).toEqual({ ok: true, value: upto });
    expect(settlementRequirements(upto, "50001")).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect(settlementRequirements(upto, "12.5")).toMatchObject({ ok: false, error: { code: "invalid" } });
    expect(settlementRequirements(EVM_OFFER, "10000")).toEqual({ ok: true, value: EVM_OFFER });
    expect(settlementRequirements(EVM_OFFER, "5000")).toMatchObject({ ok: false, error: { code: "invalid" } });
  });
});

describe("the HTTP facilitator adapter, against the fake facilitator", () => {
  it("takes https, and plain http only to loopback where allowed", () => {
    expect(parseFacilitatorUrl("https://x402.example/facilitator")).toMatchObject({ ok: true });
    // Never an address inside someone's network, even over https.
    for (const internal of ["https://10.0.0.1/", "https://metadata.google.internal/", "https://[fd00::1]/", "https://facilitator/", "https://127.0.0.1/"]) {
      expect(parseFacilitatorUrl(internal)).toMatchObject({ ok: false });
    }
    expect(parseFacilitatorUrl("https://127.0.0.1:8443/", { allowInsecureLoopback: true })).toMatchObject({ ok: true });
    expect(parseFacilitatorUrl("http://x402.example", { allowInsecureLoopback: true })).toMatchObject({ ok: false });
    expect(parseFacilitatorUrl("http://127.0.0.1:9999")).toMatchObject({ ok: false });
    expect(parseFacilitatorUrl("http://127.0.0.1:9999", { allowInsecureLoopback: true })).toMatchObject({ ok: true });
    expect(parseFacilitatorUrl("https://user:secret@x402.example")).toMatchObject({ ok: false });
    expect(parseFacilitatorUrl("ftp://x402.example")).toMatchObject({ ok: false });
    expect(parseFacilitatorUrl("not a url")).toMatchObject({ ok: false });
    expect(createHttpFacilitator({ baseUrl: "http://x402.example" })).toMatchObject({ ok: false });
  });

  it("verifies a valid exact payment, settles it once, and sends the spec's request body", async () => {
    const facilitator = fakeFacilitator();
    const wallet = await createTestWallet();
    await fund(wallet.address, "25000");
    const requirements = offer();
    const payment = await wallet.pay(requirements);

    // What travels: the header round trip, then the server's own offer matched.
    const header = encodePaymentSignature(payment);
    const received = header.ok ? decodePaymentSignature(header.value) : header;
    expect(received.ok).toBe(true);
    if (!received.ok) return;
    const match = matchPaymentRequirements(received.value, [requirements]);
    expect(match).toEqual({ ok: true, requirements });

    expect(await facilitator.verify(received.value, requirements)).toEqual({ isValid: true, payer: wallet.address });
    const settled = await facilitator.settle(received.value, requirements);
    expect(settled).toEqual({ success: true, network: FAKE_NETWORK, payer: wallet.address, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
    expect(await balanceOf(wallet.address)).toBe("15000");

    // The same authorization again: refused, nothing moves.
    expect(await facilitator.settle(received.value, requirements)).toEqual({ success: false, network: FAKE_NETWORK, payer: wallet.address, errorReason: "nonce_already_used" });
    expect(await facilitator.verify(received.value, requirements)).toMatchObject({ isValid: false, invalidReason: "nonce_already_used" });
    expect(await settlementsTo(requirements.payTo)).toEqual([expect.objectContaining({ transaction: settled.transaction, payer: wallet.address, amount: "10000", scheme: "exact" })]);
    expect(await balanceOf(wallet.address)).toBe("15000");

    const requests = await requestsFor(requirements.payTo);
    expect(requests.map((request) => request.path)).toEqual(["/verify", "/settle", "/settle", "/verify"]);
    expect(requests[0]).toEqual({ path: "/verify", contentType: "application/json", body: { x402Version: 2, paymentPayload: payment, paymentRequirements: requirements } });
  });

  it("settles an upto payment for the actual charge, never above the offer", async () => {
    const facilitator = fakeFacilitator();
    const wallet = await createTestWallet();
    await fund(wallet.address, "100000");
    const requirements = offer({ scheme: "upto", amount: "50000" });
    const payment = await wallet.pay(requirements);
    expect(await facilitator.verify(payment, requirements)).toEqual({ isValid: true, payer: wallet.address });

    expect(await facilitator.settle(payment, requirements, "50001")).toEqual({ success: false, network: FAKE_NETWORK, errorReason: INVALID_SETTLEMENT_AMOUNT });
    const settled = await facilitator.settle(payment, requirements, "1234");
    expect(settled).toMatchObject({ success: true, payer: wallet.address });
    expect(await balanceOf(wallet.address)).toBe(String(100000 - 1234));
    expect(await settlementsTo(requirements.payTo)).toEqual([expect.objectContaining({ scheme: "upto", amount: "1234" })]);
    // The charge travels as the requirements' amount, the spec's way of telling /settle what to transfer.
    const settleRequests = (await requestsFor(requirements.payTo)).filter((request) => request.path === "/settle");
    expect(settleRequests.map((request) => request.body.paymentRequirements.amount)).toEqual(["1234"]);
  });

  it("refuses forged, underpaid, misdirected, expired and unfunded payments with the facilitator's reason", async () => {
    const facilitator = fakeFacilitator();
    const wallet = await createTestWallet();
    const thief = await createTestWallet();
    await fund(wallet.address, "1000000");
    const requirements = offer();
    const verify = async (payment: PaymentPayload) => facilitator.verify(payment, requirements);

    // Signed by another key than the payer's address.
    const forged = await thief.pay(requirements, { from: wallet.address });
    expect(await verify(forged)).toEqual({ isValid: false, invalidReason: "invalid_payload_signature", payer: wallet.address });
    // Signed, then altered.
    const honest = await wallet.pay(requirements);
    const altered = structuredClone(honest);
    (altered.payload.authorization as { value: string }).value = "1";
    expect(await verify(altered)).toMatchObject({ isValid: false, invalidReason: "invalid_payload_signature" });

    expect(await verify(await wallet.pay(requirements, { value: "9999" }))).toMatchObject({ isValid: false, invalidReason: "invalid_payload_authorization_value" });
    const uptoOffer = offer({ scheme: "upto", amount: "50000", payTo: requirements.payTo });
    expect(await facilitator.verify(await wallet.pay(uptoOffer, { value: "49999" }), uptoOffer)).toMatchObject({ isValid: false, invalidReason: "invalid_payload_authorization_value" });
    expect(await verify(await wallet.pay(requirements, { to: newPayTo() }))).toMatchObject({ isValid: false, invalidReason: "invalid_payload_recipient_mismatch" });
    const past = Math.floor(Date.now() / 1000) - 3600;
    expect(await verify(await wallet.pay(requirements, { validAfter: String(past - 60), validBefore: String(past) }))).toMatchObject({
      isValid: false,
      invalidReason: "invalid_payload_authorization_valid_before",
    });
    const unfunded = await createTestWallet();
    expect(await verify(await unfunded.pay(requirements))).toEqual({ isValid: false, invalidReason: "insufficient_funds", payer: unfunded.address });
    // Accepted other requirements than the ones it is verified against.
    expect(await verify(await wallet.pay(offer()))).toMatchObject({ isValid: false, invalidReason: "invalid_payment_requirements" });
    // A malformed payload: the fake answers 400 with the same body.
    expect(await verify({ ...honest, payload: {} })).toEqual({ isValid: false, invalidReason: "invalid_payload" });

    const settled = await facilitator.settle(forged, requirements);
    expect(settled).toMatchObject({ success: false, errorReason: "invalid_payload_signature" });
    expect(settled.transaction).toBeUndefined();
    expect(await settlementsTo(requirements.payTo)).toEqual([]);
    expect(await balanceOf(wallet.address)).toBe("1000000");
  });

  it("makes a facilitator that is down, failing or slow a value", async () => {
    const wallet = await createTestWallet();
    await fund(wallet.address, "10000");
    const requirements = offer();
    const payment = await wallet.pay(requirements);

    // Nothing listens on port 1.
    const down = createHttpFacilitator({ baseUrl: "http://127.0.0.1:1", allowInsecureLoopback: true });
    if (!down.ok) throw new Error(down.message);
    expect(await down.facilitator.verify(payment, requirements)).toEqual({ isValid: false, invalidReason: FACILITATOR_FAILURES.unavailable });
    expect(await down.facilitator.settle(payment, requirements)).toEqual({ success: false, network: FAKE_NETWORK, errorReason: FACILITATOR_FAILURES.unavailable });

    const facilitator = fakeFacilitator();
    await failNext(requirements.payTo, "/verify", { status: 500 });
    expect(await facilitator.verify(payment, requirements)).toEqual({ isValid: false, invalidReason: FACILITATOR_FAILURES.badResponse });
    await failNext(requirements.payTo, "/settle", { status: 502 });
    expect(await facilitator.settle(payment, requirements)).toEqual({ success: false, network: FAKE_NETWORK, errorReason: FACILITATOR_FAILURES.badResponse });
    await failNext(requirements.payTo, "/verify", { status: 200 });
    expect(await facilitator.verify(payment, requirements)).toEqual({ isValid: false, invalidReason: FACILITATOR_FAILURES.badResponse });
    await failNext(requirements.payTo, "/verify", { stallMs: 3000 });
    expect(await fakeFacilitator({ timeoutMs: 300 }).verify(payment, requirements)).toEqual({ isValid: false, invalidReason: FACILITATOR_FAILURES.timeout });
    expect(isFacilitatorFailure(FACILITATOR_FAILURES.timeout)).toBe(true);
    expect(isFacilitatorFailure("insufficient_funds")).toBe(false);

    // None of that consumed the payment.
    expect(await facilitator.settle(payment, requirements)).toMatchObject({ success: true, payer: wallet.address });
  });
});

describe("what the adapter believes of a facilitator's answer", () => {
  /** A facilitator that answers `body` (with `status`) to every call. */
  function answering(body: unknown, status = 200): Facilitator {
    const created = createHttpFacilitator({ baseUrl: "https://facilitator.example/x402/", fetch: async () => Response.json(body, { status }) });
    if (!created.ok) throw new Error(created.message);
    return created.facilitator;
  }

  it("takes a settlement as done only on the requirements' network, with its transaction", async () => {
    const elsewhere = await answering({ success: true, network: "solana:mainnet", transaction: "0xabc" }).settle(PAYMENT, EVM_OFFER);
    expect(elsewhere).toMatchObject({ success: false, errorReason: FACILITATOR_FAILURES.badResponse });
    const noTransaction = await answering({ success: true, network: EVM_OFFER.network }).settle(PAYMENT, EVM_OFFER);
    expect(noTransaction).toMatchObject({ success: false, errorReason: FACILITATOR_FAILURES.badResponse });
    const settled = await answering({ success: true, network: EVM_OFFER.network, transaction: "0xabc" }).settle(PAYMENT, EVM_OFFER);
    expect(settled).toMatchObject({ success: true, transaction: "0xabc" });
  });

  it("keeps a facilitator's own reasons apart from the adapter's: a refusal it names like ours is still a refusal", async () => {
    const verdict = await answering({ isValid: false, invalidReason: FACILITATOR_FAILURES.unavailable }).verify(PAYMENT, EVM_OFFER);
    expect(verdict).toEqual({ isValid: false, invalidReason: `facilitator:${FACILITATOR_FAILURES.unavailable}` });
    expect(isFacilitatorFailure(verdict.invalidReason)).toBe(false);
    const settle = await answering({ success: false, network: EVM_OFFER.network, errorReason: FACILITATOR_FAILURES.timeout }).settle(PAYMENT, EVM_OFFER);
    expect(isFacilitatorFailure(settle.errorReason)).toBe(false);
  });
});
