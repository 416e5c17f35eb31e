/**
 * The client's `settleX402`: a surface decision granted on an x402 `upto` payment names it (`payment`), and the
 * business settles the actual cost by its id — against the real platform in-process and the fake facilitator.
 */
import { createClient } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";
import { decodePaymentRequired, encodePaymentSignature } from "../../../workers/payments/x402";
import { call, createOrganization, fetchWorker, publish } from "../../../test/support/api";
import { newsSite } from "../../../test/support/examples";
import { createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, fund, settlementsTo } from "../../../test/fake-facilitator/wallet";
import { BASE_URL } from "./site";

const PAGE = "https://news.example/articles/7";

describe("settleX402", () => {
  it("settles the payment a surface decision was granted on, for the actual amount, once", async () => {
    const org = await createOrganization("Client upto");
    const doc = newsSite();
    doc.plans["ai-agents"].payPerCrawl = { "article-page": "USD 0.01" };
    await publish(org.adminKey, doc, [org.live.id]);
    const payTo = `0x${crypto.randomUUID().replaceAll("-", "")}`;
    await call("PUT", `/api/v1/admin/environments/${org.live.id}/payments/x402`, {
      key: org.adminKey,
      body: { facilitatorUrl: `${facilitatorBase()}/`, network: FAKE_NETWORK, asset: FAKE_ASSET, payTo },
    });
    const requests: Request[] = [];
    const client = createClient({
      baseUrl: BASE_URL,
      apiKey: org.live.secretKey,
      failureMode: "closed",
      fetch: (request) => {
        requests.push(request.clone());
        return fetchWorker(request);
      },
    });
    const identity = { anonymousIdentifier: "reader" };
    const decide = (headers: Record<string, string>) => client.surfaceDecision({ surfaceSlug: "article-page", identity, http: { url: PAGE, headers } });

    const offered = await decide({ "payment-signature": "none" });
    if (!offered.ok) throw new Error(JSON.stringify(offered.error));
    const required = decodePaymentRequired((offered.data.surfaceBehavior.http as { headers: Record<string, string> }).headers["payment-required"]);
    if (!required.ok) throw new Error(required.error.message);
    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const payment = encodePaymentSignature(await wallet.pay(required.value.accepts.find((offer) => offer.scheme === "upto")!));
    if (!payment.ok) throw new Error(payment.error.message);

    const granted = await decide({ "payment-signature": payment.value });
    if (!granted.ok || !granted.data.payment) throw new Error(JSON.stringify(granted));
    const id = granted.data.payment.id;
    expect(granted.data.payment).toMatchObject({ method: "x402", scheme: "upto", maxAmount: "USD 0.01" });

    const settled = await client.settleX402(id, { identity, amount: "USD 0.006" });
    expect(settled).toMatchObject({ ok: true, data: { payment: { id, status: "settled", amount: "USD 0.006", transaction: expect.any(String) } } });
    const sent = requests.at(-1)!;
    expect(sent.url).toBe(`${BASE_URL}/api/v1/x402-settlements/${id}`);
    expect(await sent.json()).toEqual({ identity, amount: "USD 0.006" });
    expect(await settlementsTo(payTo)).toEqual([expect.objectContaining({ amount: "6000" })]);

    const other = await client.settleX402(id, { identity, amount: "USD 0.007" });
    expect(other).toMatchObject({ ok: false, attempts: 1, error: { kind: "api", status: 409, code: "payment_settled" } });
  });
});
