/**
 * x402 `upto` on priced surfaces: the 402 offers `upto` with the price as the maximum next to `exact`; a decision
 * paying with an `upto` authorization is granted without anything settled and names the payment; the business then
 * settles the actual amount (POST /api/v1/x402-settlements/{id}) — once, whatever is repeated or raced, never above
 * the authorization, never after its expiry, and only in the identity (or agent operator) it was authorized for.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { userStoreKey } from "../../../durable-objects/meter/client";
import type { MeterObject } from "../../../durable-objects/meter/MeterObject";
import { settleX402Upto } from "../../../workers/payments/x402Charge";
import { createHttpFacilitator } from "../../../workers/payments/x402Facilitator";
import { describe, expect, it } from "vitest";
import type { PendingX402Payment } from "../../../durable-objects/meter/agentLedger";
import { decodePaymentRequired, encodePaymentSignature, type PaymentRequirements } from "../../../workers/payments/x402";
import { newAgent } from "../../support/agents";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { workerWith } from "../../support/faults";
import { newsSite } from "../../support/examples";
import { freshMeter } from "../meter/helpers";
import { createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, failNext, fund, settlementsTo } from "../../fake-facilitator/wallet";

const PAGE = "https://news.example/articles/7";

async function uptoOrg(): Promise<{ org: TestOrganization; payTo: string }> {
  const org = await createOrganization("Upto news");
  const doc = newsSite();
  doc.plans["ai-agents"].payPerCrawl = { "article-page": "USD 0.01" };
  await publish(org.adminKey, doc, [org.live.id]);
  const payTo = `0x${crypto.randomUUID().replaceAll("-", "")}`;
  const settings = await call("PUT", `/api/v1/admin/environments/${org.live.id}/payments/x402`, {
    key: org.adminKey,
    body: { facilitatorUrl: `${facilitatorBase()}/`, network: FAKE_NETWORK, asset: FAKE_ASSET, payTo, maxTimeoutSeconds: 120 },
  });
  expect(settings.status).toBe(200);
  return { org, payTo };
}

function visit(org: TestOrganization, headers: Record<string, string>, identity: Record<string, unknown> = { anonymousIdentifier: "reader" }) {
  return call("POST", "/api/v1/surface-decisions?trace=true", {
    key: org.live.secretKey,
    body: { surfaceSlug: "article-page", identity, resource: { id: "article-7" }, http: { url: PAGE, headers } },
  });
}

/** The `upto` offer of the surface's 402 (asked by an unsigned visitor offering a price it cannot pay). */
async function uptoOffer(org: TestOrganization): Promise<PaymentRequirements> {
  const discovery = await visit(org, { "payment-signature": "nothing yet" });
  const required = decodePaymentRequired(discovery.body.surfaceBehavior.http.headers["payment-required"]);
  if (!required.ok) throw new Error(required.error.message);
  const upto = required.value.accepts.find((offer) => offer.scheme === "upto");
  if (!upto) throw new Error("no upto offer");
  return upto;
}

async function uptoPayment(org: TestOrganization): Promise<string> {
  const wallet = await createTestWallet();
  await fund(wallet.address, "1000000");
  const payment = encodePaymentSignature(await wallet.pay(await uptoOffer(org)));
  if (!payment.ok) throw new Error(payment.error.message);
  return payment.value;
}

/** A decision granted on a fresh upto payment: its payment id. */
async function authorized(org: TestOrganization, identity?: Record<string, unknown>): Promise<string> {
  const granted = await visit(org, { "payment-signature": await uptoPayment(org) }, identity);
  expect(granted.body.payment).toMatchObject({ method: "x402", scheme: "upto", maxAmount: "USD 0.01" });
  return granted.body.payment.id as string;
}

const settle = (org: TestOrganization, id: string, body: Record<string, unknown>, caller = call) =>
  caller("POST", `/api/v1/x402-settlements/${id}`, { key: org.live.secretKey, body: { identity: { anonymousIdentifier: "reader" }, ...body } });

const ledgerOf = async (org: TestOrganization, identifier = "reader", query = "anonymous=true") =>
  (await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/${encodeURIComponent(identifier)}/charges?${query}`, { key: org.adminKey })).body;

describe("x402 upto on priced surfaces", () => {
  it("offers exact at the price and upto up to it, grants an upto payment unsettled, and settles the actual amount once", async () => {
    const { org, payTo } = await uptoOrg();
    const discovery = await visit(org, { "payment-signature": "nothing yet" });
    const required = decodePaymentRequired(discovery.body.surfaceBehavior.http.headers["payment-required"]);
    expect(required.ok && required.value.accepts).toEqual([
      expect.objectContaining({ scheme: "exact", amount: "10000", payTo }),
      expect.objectContaining({ scheme: "upto", amount: "10000", payTo }),
    ]);

    const payment = await uptoPayment(org);
    const granted = await visit(org, { "payment-signature": payment });
    expect(granted.status).toBe(200);
    expect(granted.body.payment).toEqual({ method: "x402", scheme: "upto", id: expect.stringMatching(/^pay_/), maxAmount: "USD 0.01", expiresAt: expect.any(String) });
    expect(Date.parse(granted.body.payment.expiresAt) - Date.now()).toBeGreaterThan(60_000);
    expect(granted.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, consumedInRequest: false });
    // Nothing settled yet: no payment-response, no crawler-charged, no charge on the ledger.
    expect(JSON.stringify(granted.body.surfaceBehavior.http ?? {})).not.toMatch(/payment-response|crawler-charged/);
    expect(granted.body.trace.crawl).toMatchObject({ outcome: "authorized", scheme: "upto", paymentId: granted.body.payment.id });
    expect(await settlementsTo(payTo)).toHaveLength(0);
    expect((await ledgerOf(org)).charges).toEqual([]);

    // The same authorization cannot pay for a second decision.
    const reused = await visit(org, { "payment-signature": payment });
    expect(reused.body.payment).toBeUndefined();
    expect(reused.body.surfaceBehavior.http).toMatchObject({ status: 402 });
    expect(reused.body.features.articles.properties.enabled.hasAccess).toBe(false);
    // …nor under another identity (or several at once): an authorization is claimed once in the store.
    const elsewhere = await Promise.all(["someone-else", "third", "fourth"].map((visitor) => visit(org, { "payment-signature": payment }, { anonymousIdentifier: visitor })));
    for (const answer of elsewhere) {
      expect(answer.body.payment).toBeUndefined();
      expect(answer.body.surfaceBehavior.http).toMatchObject({ status: 402 });
      expect(answer.body.features.articles.properties.enabled.hasAccess).toBe(false);
    }

    const id = granted.body.payment.id as string;
    const settled = await settle(org, id, { amount: "USD 0.004" });
    expect(settled.status).toBe(200);
    expect(settled.body.payment).toMatchObject({ id, method: "x402", scheme: "upto", status: "settled", amount: "USD 0.004", maxAmount: "USD 0.01", transaction: expect.any(String) });
    const settlements = await settlementsTo(payTo);
    expect(settlements).toEqual([expect.objectContaining({ scheme: "upto", amount: "4000", transaction: settled.body.payment.transaction })]);
    const ledger = await ledgerOf(org);
    expect(ledger.charges).toEqual([
      expect.objectContaining({ method: "x402", currency: "USD", micros: 4000, surface: "article-page", resource: "article-7", url: PAGE, reference: settled.body.payment.transaction }),
    ]);

    const again = await settle(org, id, { amount: "USD 0.004" });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(settled.body);
    const other = await settle(org, id, { amount: "USD 0.005" });
    expect(other.status).toBe(409);
    expect(other.body.code).toBe("payment_settled");
    expect(await settlementsTo(payTo)).toHaveLength(1);
    expect((await ledgerOf(org)).totals).toEqual([{ currency: "USD", micros: 4000, count: 1 }]);
  });

  it("refuses an upto authorization that would lapse before the offer's timeout: it could not be settled after serving", async () => {
    const { org, payTo } = await uptoOrg();
    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const offer = await uptoOffer(org);
    const nowSeconds = Math.floor(Date.now() / 1000);
    for (const validBefore of [String(nowSeconds + 2), String(nowSeconds + 60)]) {
      const payment = encodePaymentSignature(await wallet.pay(offer, { validBefore }));
      if (!payment.ok) throw new Error(payment.error.message);
      const answer = await visit(org, { "payment-signature": payment.value });
      expect(answer.body.payment).toBeUndefined();
      expect(answer.body.surfaceBehavior.http).toMatchObject({ status: 402, body: expect.stringContaining("must stay valid for the offer's 120 s") });
      expect(answer.body.features.articles.properties.enabled.hasAccess).toBe(false);
    }
    expect(await settlementsTo(payTo)).toHaveLength(0);
  });

  it("settles one of five concurrent calls and answers the others without settling again", async () => {
    const { org, payTo } = await uptoOrg();
    const id = await authorized(org);
    const answers = await Promise.all(Array.from({ length: 5 }, () => settle(org, id, { amount: "USD 0.007" })));
    const transactions = new Set(answers.filter((answer) => answer.status === 200).map((answer) => answer.body.payment.transaction));
    expect(transactions.size).toBe(1);
    for (const answer of answers) {
      if (answer.status !== 200) expect(answer.body.code).toBe("payment_settling");
    }
    expect(await settlementsTo(payTo)).toHaveLength(1);
    expect((await ledgerOf(org)).totals).toEqual([{ currency: "USD", micros: 7000, count: 1 }]);
  });

  it("refuses more than authorized, an expired payment, and settles 0 as a release", async () => {
    const { org, payTo } = await uptoOrg();
    const id = await authorized(org);
    const above = await settle(org, id, { amount: "USD 0.011" });
    expect(above.status).toBe(422);
    expect(above.body.code).toBe("payment_above_authorization");
    expect(await settlementsTo(payTo)).toHaveLength(0);

    // Two hours later (the authorization held 120 s): released, nothing settled, also for a later call.
    const later = workerWith({ clock: { now: () => Date.now() + 2 * 60 * 60 * 1000 } });
    const expired = await settle(org, id, { amount: "USD 0.004" }, later);
    expect(expired.status).toBe(409);
    expect(expired.body.code).toBe("payment_expired");
    const after = await settle(org, id, { amount: "USD 0.004" });
    expect(after.body.code).toBe("payment_expired");
    expect(await settlementsTo(payTo)).toHaveLength(0);

    const zero = await authorized(org);
    const released = await settle(org, zero, { amount: "USD 0" });
    expect(released.status).toBe(200);
    expect(released.body.payment).toMatchObject({ id: zero, status: "released", amount: "USD 0.00" });
    expect(released.body.payment.transaction).toBeUndefined();
    expect((await settle(org, zero, { amount: "USD 0" })).body).toEqual(released.body);
    expect((await settle(org, zero, { amount: "USD 0.001" })).body.code).toBe("payment_settled");
    expect(await settlementsTo(payTo)).toHaveLength(0);
    expect((await ledgerOf(org)).charges).toEqual([]);
  });

  it("puts a payment back when the facilitator fails, so the retry settles it", async () => {
    const { org, payTo } = await uptoOrg();
    const id = await authorized(org);
    await failNext(payTo, "/settle", { status: 500 });
    const failed = await settle(org, id, { amount: "USD 0.002" });
    expect(failed.status).toBe(503);
    expect(failed.body.code).toBe("payments_unavailable");
    expect((await ledgerOf(org)).charges).toEqual([]);
    const retried = await settle(org, id, { amount: "USD 0.002" });
    expect(retried.status).toBe(200);
    expect(await settlementsTo(payTo)).toEqual([expect.objectContaining({ amount: "2000" })]);
  });

  it("never says 'nothing was charged' after an attempt the facilitator did not answer: it may have settled", async () => {
    const { org, payTo } = await uptoOrg();
    const id = await authorized(org);
    await failNext(payTo, "/settle", { status: 500 });
    expect((await settle(org, id, { amount: "USD 0.002" })).body.message).toMatch(/not known yet/);
    // The lost attempt had in fact gone through (simulated: the stored authorization settled behind the platform's back).
    const owner = env.METER.get(env.METER.idFromName(`${userStoreKey(org.id, "default", false)}:reader`));
    const stored = await runInDurableObject(owner, (_instance: MeterObject, state) =>
      state.storage.sql.exec<{ authorization: string }>("SELECT authorization FROM agent_pending_payments WHERE id = ?", id).one().authorization,
    );
    const facilitator = createHttpFacilitator({ baseUrl: `${facilitatorBase()}/`, allowInsecureLoopback: true });
    if (!facilitator.ok) throw new Error(facilitator.message);
    expect(await settleX402Upto(facilitator.facilitator, JSON.parse(stored), 2000)).toMatchObject({ ok: true });
    const retried = await settle(org, id, { amount: "USD 0.002" });
    expect(retried.status).toBe(409);
    expect(retried.body.code).toBe("payment_settlement_unknown");
    expect(retried.body.message).not.toMatch(/Nothing was charged/);
    expect(await settlementsTo(payTo)).toHaveLength(1);
  });

  it("finds a payment only in the identity or agent operator it was authorized for", async () => {
    const { org, payTo } = await uptoOrg();
    const id = await authorized(org);
    const stranger = await call("POST", `/api/v1/x402-settlements/${id}`, { key: org.live.secretKey, body: { identity: { anonymousIdentifier: "someone-else" }, amount: "USD 0.001" } });
    expect(stranger.status).toBe(409);
    expect(stranger.body.code).toBe("payment_not_found");
    const signedIn = await call("POST", `/api/v1/x402-settlements/${id}`, { key: org.live.secretKey, body: { identity: { userIdentifier: "reader" }, amount: "USD 0.001" } });
    expect(signedIn.body.code).toBe("payment_not_found");
    const { org: otherOrg } = await uptoOrg();
    const otherTenant = await settle(otherOrg, id, { amount: "USD 0.001" });
    expect(otherTenant.status).toBe(409);
    expect(otherTenant.body.code).toBe("payment_not_found");
    const publishable = await call("POST", `/api/v1/x402-settlements/${id}`, { key: org.live.publishableKey, body: { identity: { anonymousIdentifier: "reader" }, amount: "USD 0.001" } });
    expect(publishable.status).toBe(403);
    expect(await settlementsTo(payTo)).toHaveLength(0);

    // A verified agent paying upto: the payment lives with its operator, named by `agent`.
    const agent = await newAgent();
    const granted = await visit(org, { ...(await agent.sign(PAGE)), "payment-signature": await uptoPayment(org) });
    expect(granted.body.identity).toMatchObject({ authType: "agent", identifier: agent.origin });
    const agentPayment = granted.body.payment.id as string;
    const asVisitor = await settle(org, agentPayment, { identity: { anonymousIdentifier: agent.origin }, amount: "USD 0.003" });
    expect(asVisitor.body.code).toBe("payment_not_found");
    const asAgent = await call("POST", `/api/v1/x402-settlements/${agentPayment}`, { key: org.live.secretKey, body: { agent: agent.origin, amount: "USD 0.003" } });
    expect(asAgent.status).toBe(200);
    expect(asAgent.body.payment).toMatchObject({ status: "settled", amount: "USD 0.003" });
    const ledger = await ledgerOf(org, agent.origin, "agent=true");
    expect(ledger.charges).toEqual([expect.objectContaining({ method: "x402", micros: 3000, reference: asAgent.body.payment.transaction })]);
  });
});

describe("pending x402 payments in the meter object", () => {
  const pending = (expiresAt: number, paymentKey = crypto.randomUUID()): PendingX402Payment => ({
    paymentKey,
    currency: "USD",
    maxMicros: 10_000,
    expiresAt,
    surface: "article-page",
    authorization: "{}",
  });
  const store = async (stub: ReturnType<typeof freshMeter>["stub"], payment: PendingX402Payment) => {
    const result = await stub.evaluate({ counters: [], timeZone: "UTC", x402Payment: payment });
    if ("conflict" in result) throw new Error("conflict");
    return result.x402Authorized;
  };

  it("stores one authorization once, holds a settling payment for one call, and puts a failed one back", async () => {
    const { stub } = freshMeter();
    const now = Date.now();
    const first = await store(stub, pending(now + 60_000, "same-payment"));
    expect(first).toEqual({ id: expect.stringMatching(/^pay_/), expiresAt: new Date(now + 60_000).toISOString() });
    expect(await store(stub, pending(now + 60_000, "same-payment"))).toBeNull();
    const id = first!.id;
    expect(await stub.beginX402Settlement(id, 5000, now)).toEqual({ settle: { authorization: "{}", currency: "USD", maxMicros: 10_000, attempted: false } });
    expect(await stub.beginX402Settlement(id, 5000, now)).toEqual({ refused: "payment_settling" });
    expect(await stub.completeX402Settlement(id, { ok: false }, now)).toBeNull();
    expect(await stub.beginX402Settlement(id, 5000, now)).toMatchObject({ settle: expect.any(Object) });
    // A call that died while settling: after its lease another may try (the facilitator settles an authorization once),
    // knowing the dead call's outcome is unknown.
    expect(await stub.beginX402Settlement(id, 5000, now + 61_000)).toMatchObject({ settle: { attempted: true } });
    expect(await stub.completeX402Settlement(id, { ok: true, micros: 5000, transaction: "0xtx" }, now)).toMatchObject({ state: "settled", micros: 5000, transaction: "0xtx" });
    expect(await stub.completeX402Settlement(id, { ok: true, micros: 5000, transaction: "0xother" }, now)).toMatchObject({ transaction: "0xtx" });
    expect((await stub.agentLedger()).charges).toEqual([expect.objectContaining({ id: "x402:0xtx", micros: 5000, reference: "0xtx" })]);
  });

  it("releases expired authorizations by alarm, and forgets finished ones a day after their expiry", async () => {
    const { stub } = freshMeter();
    const now = Date.now();
    const expired = (await store(stub, pending(now - 1000)))!.id;
    const old = (await store(stub, pending(now - 25 * 60 * 60 * 1000)))!.id;
    const live = (await store(stub, pending(now + 60 * 60 * 1000)))!.id;
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // Asked as if before its expiry: the alarm already released it, nothing can settle it.
    expect(await stub.beginX402Settlement(expired, 1000, now - 2000)).toEqual({ refused: "payment_expired" });
    expect(await stub.beginX402Settlement(old, 1000, now - 26 * 60 * 60 * 1000)).toEqual({ refused: "payment_not_found" });
    expect(await stub.beginX402Settlement(live, 1000, now)).toMatchObject({ settle: expect.any(Object) });
    expect((await stub.agentLedger()).charges).toEqual([]);
  });
});
