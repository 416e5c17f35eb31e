/**
 * Pay-per-crawl and x402 on surface decisions: a plan prices a surface for its crawlers and agents
 * (`plans.*.payPerCrawl`); a test crawler with an Ed25519 key (its directory served locally) is answered 402 with
 * `crawler-price`, pays on a signed retry within `crawler-max-price`, is served with `crawler-charged`, and its
 * operator's ledger shows the charge — once, whatever is replayed or raced. Every price error answers as the protocol
 * says; an x402 payment settles through the (fake) facilitator before anything is served.
 */
import { describe, expect, it } from "vitest";
import { decodePaymentRequired, decodePaymentResponse, encodePaymentSignature } from "../../../workers/payments/x402";
import { generateNonce } from "web-bot-auth";
import { newAgent, type TestAgent } from "../../support/agents";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { faultyMeter, workerWith } from "../../support/faults";
import { eventsFor } from "../../support/events";
import { newsSite } from "../../support/examples";
import { createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, fund, settlementsTo } from "../../fake-facilitator/wallet";

const PAGE = "https://news.example/articles/7";

function pricedNewsSite() {
  const doc = newsSite();
  doc.surfaces.archive = { name: "Archive", consumes: ["articles.enabled"] };
  doc.plans["ai-agents"].payPerCrawl = { "article-page": "USD 0.01", archive: "forbidden" };
  return doc;
}

async function pricedOrg(): Promise<TestOrganization> {
  const org = await createOrganization("Priced news");
  await publish(org.adminKey, pricedNewsSite(), [org.live.id]);
  return org;
}

interface Visit {
  headers?: Record<string, string>;
  identity?: Record<string, unknown>;
  surfaceSlug?: string;
  cf?: Record<string, unknown>;
  userAgent?: string;
  idempotencyKey?: string;
}

function visit(org: TestOrganization, { headers, identity, surfaceSlug, cf, userAgent, idempotencyKey }: Visit) {
  return call("POST", "/api/v1/surface-decisions?trace=true", {
    key: org.live.secretKey,
    headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : {},
    body: {
      surfaceSlug: surfaceSlug ?? "article-page",
      identity: identity ?? { anonymousIdentifier: "cookie" },
      resource: { id: "article-7" },
      http: { url: PAGE, ...(headers ? { headers } : {}), ...(userAgent ? { userAgent } : {}) },
      ...(cf ? { cloudflare: { cf } } : {}),
    },
  });
}

const ledgerOf = async (org: TestOrganization, agent: TestAgent) =>
  (await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/${encodeURIComponent(agent.origin)}/charges?agent=true`, { key: org.adminKey })).body;

const paid = (agent: TestAgent, covered: Record<string, string>) => agent.sign(PAGE, { covered });

describe("pay-per-crawl", () => {
  it("answers 402 with the price, serves a signed retry within the max price with crawler-charged, and books the charge on the operator", async () => {
    const org = await pricedOrg();
    const agent = await newAgent();

    const discovery = await visit(org, { headers: await agent.sign(PAGE) });
    expect(discovery.status).toBe(200);
    expect(discovery.body.identity).toMatchObject({ authType: "agent", identifier: agent.origin });
    expect(discovery.body.surfaceBehavior.http).toMatchObject({
      status: 402,
      headers: { "crawler-price": "USD 0.01", "crawler-error": "MissingCrawlerPrice", "cache-control": "private, no-store" },
      body: expect.stringContaining("USD 0.01"),
    });
    expect(discovery.body.componentsSkipped).toBe(true);
    expect(discovery.body.features.articles.properties.enabled).toMatchObject({ hasAccess: false, consumedInRequest: false });
    expect(discovery.body.trace.crawl).toEqual({ outcome: "refused", status: 402, code: "MissingCrawlerPrice", price: "USD 0.01" });

    const bought = await visit(org, { headers: await paid(agent, { "crawler-max-price": "USD 0.05" }) });
    expect(bought.body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });
    expect(bought.body.componentsSkipped).toBe(false);
    // Granted by the payment: the agent plan's daily meter is not touched.
    expect(bought.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, consumedInRequest: false, consumedUnits: 0 });
    expect(bought.body.trace.crawl).toMatchObject({ outcome: "paid", method: "crawl", charged: "USD 0.01" });

    const exact = await visit(org, { headers: await paid(agent, { "crawler-exact-price": "USD 0.01" }) });
    expect(exact.body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });

    const ledger = await ledgerOf(org, agent);
    expect(ledger.totals).toEqual([{ currency: "USD", micros: 20_000, count: 2 }]);
    expect(ledger.charges[0]).toMatchObject({ method: "crawl", currency: "USD", micros: 10_000, surface: "article-page", resource: "article-7", url: PAGE });

    // The decision records say what happened.
    const records = await eventsFor(org.live.secretKey, "kind=surface_decision&limit=10", 3);
    const byId = new Map(records.map((record: { id: string }) => [record.id, record]));
    expect(byId.get(discovery.body.eventId)).toMatchObject({ outcome: "denied", record: { crawl: { outcome: "refused" }, denials: [{ featureSlug: "articles", property: "enabled", reason: "payment_required" }] } });
    expect(byId.get(bought.body.eventId)).toMatchObject({ outcome: "granted", record: { crawl: { outcome: "paid", charged: "USD 0.01" } } });
  });

  it("answers every price error as the protocol says, and charges none of them", async () => {
    const org = await pricedOrg();
    const agent = await newAgent();
    const refusal = async (visitOptions: Visit, status: number, code: string | null) => {
      const answer = await visit(org, visitOptions);
      expect(answer.status).toBe(200);
      expect(answer.body.surfaceBehavior.http).toMatchObject({ status, headers: code ? { "crawler-error": code } : {} });
      if (!code) expect(answer.body.surfaceBehavior.http.headers["crawler-error"]).toBeUndefined();
      return answer.body.surfaceBehavior.http;
    };
    expect((await refusal({ headers: await paid(agent, { "crawler-max-price": "USD 0.001" }) }, 402, "InvalidCrawlerMaxPrice")).headers["crawler-price"]).toBe("USD 0.01");
    await refusal({ headers: await paid(agent, { "crawler-max-price": "EUR 0.05" }) }, 402, "InvalidCrawlerMaxPrice");
    await refusal({ headers: await paid(agent, { "crawler-exact-price": "USD 0.02" }) }, 402, "InvalidCrawlerExactPrice");
    await refusal({ headers: await paid(agent, { "crawler-exact-price": "USD 0.01", "crawler-max-price": "USD 0.05" }) }, 400, "ConflictingPriceHeaders");
    await refusal({ headers: await paid(agent, { "crawler-max-price": "USD lots" }) }, 400, "InvalidCrawlerPriceValue");
    // A price the signature does not cover could have been raised on the way.
    await refusal({ headers: { ...(await agent.sign(PAGE)), "crawler-max-price": "USD 0.05" } }, 400, "InvalidSignature");
    // Crawlers of this plan may not read the archive at any price.
    await refusal({ headers: await paid(agent, { "crawler-max-price": "USD 0.05" }), surfaceSlug: "archive" }, 403, "CrawlerForbidden");
    // An unsigned visitor offering to pay cannot: it has to prove who pays.
    await refusal({ headers: { "crawler-max-price": "USD 0.05" } }, 400, "StrongAuthRequired");
    // A crawler Cloudflare verified, unsigned, is asked the price (no error: it has not tried to pay).
    await refusal(
      { userAgent: "Mozilla/5.0 (compatible; GPTBot/1.1; +https://openai.com/gptbot)", cf: { verifiedBotCategory: "AI Crawler", botManagement: { verifiedBot: true } } },
      402,
      null,
    );
    expect((await ledgerOf(org, agent)).totals).toEqual([]);
    // A visitor who does not offer to pay is metered as before.
    const reader = await visit(org, { identity: { anonymousIdentifier: "reader" } });
    expect(reader.body.surfaceBehavior.http).toBeUndefined();
    expect(reader.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, consumedInRequest: true });
  });

  it("charges a signed request once: a replay is an unverified visitor, a raced copy too, a retry under its Idempotency-Key the same decision", async () => {
    const org = await pricedOrg();
    const agent = await newAgent();
    const headers = await paid(agent, { "crawler-max-price": "USD 0.05" });
    const answers = await Promise.all(Array.from({ length: 6 }, () => visit(org, { headers })));
    const charged = answers.filter((answer) => answer.body.surfaceBehavior.http?.addHeaders);
    expect(charged).toHaveLength(1);
    for (const answer of answers.filter((candidate) => !candidate.body.surfaceBehavior.http?.addHeaders)) {
      expect(answer.body.identity.authType).toBe("anonymous");
      expect(answer.body.surfaceBehavior.http).toMatchObject({ status: 400, headers: { "crawler-error": "InvalidSignature" } });
    }
    // Different signatures race: each is its own purchase.
    const many = await Promise.all(Array.from({ length: 5 }, async () => visit(org, { headers: await paid(agent, { "crawler-max-price": "USD 0.05" }) })));
    expect(many.every((answer) => answer.body.surfaceBehavior.http?.addHeaders?.[0]?.value === "USD 0.01")).toBe(true);

    const keyed = await paid(agent, { "crawler-max-price": "USD 0.05" });
    const first = await visit(org, { headers: keyed, idempotencyKey: "crawl-retry-1" });
    const retry = await visit(org, { headers: keyed, idempotencyKey: "crawl-retry-1" });
    expect(retry.body.eventId).toBe(first.body.eventId);
    expect(retry.body.identity.authType).toBe("agent");
    expect(retry.body.surfaceBehavior.http).toEqual(first.body.surfaceBehavior.http);
    expect((await ledgerOf(org, agent)).totals).toEqual([{ currency: "USD", micros: 70_000, count: 7 }]);
  });

  it("answers 503 and takes the charge back off the ledger when the meter answers too late (nothing was served)", async () => {
    const org = await pricedOrg();
    const agent = await newAgent();
    const slow = workerWith({ meter: faultyMeter("slow", [agent.origin]) });
    const decide = async (idempotencyKey: string, headers: Record<string, string>) =>
      slow("POST", "/api/v1/surface-decisions", {
        key: org.live.secretKey,
        headers: { "idempotency-key": idempotencyKey },
        body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "cookie" }, resource: { id: "article-7" }, http: { url: PAGE, headers } },
      });
    const headers = await paid(agent, { "crawler-max-price": "USD 0.05" });
    const late = await decide("late-1", headers);
    expect(late.body.surfaceBehavior.http).toMatchObject({ status: 503, headers: { "retry-after": "1" } });
    expect(late.body.features.articles.properties.enabled.hasAccess).toBe(false);
    await waitForBackgroundWork();
    expect((await ledgerOf(org, agent)).totals).toEqual([]);
    // A retry of that decision under its key decides anew (the voided payment is not replayed as paid): slow again, 503.
    const retried = await decide("late-1", headers);
    expect(retried.body.surfaceBehavior.http).toMatchObject({ status: 503 });
    await waitForBackgroundWork();
    expect((await ledgerOf(org, agent)).totals).toEqual([]);
  });

  it("charges each operator acting for one signed-in user, even when they pick the same nonce", async () => {
    const org = await pricedOrg();
    const nonce = generateNonce();
    const agents = await Promise.all([newAgent(), newAgent(), newAgent()]);
    for (const agent of agents) {
      const answer = await visit(org, { identity: { userIdentifier: "ada@example.com" }, headers: await agent.sign(PAGE, { nonce, covered: { "crawler-max-price": "USD 0.05" } }) });
      expect(answer.body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });
    }
    const ledger = (await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/ada%40example.com/charges`, { key: org.adminKey })).body;
    expect(ledger.totals).toEqual([{ currency: "USD", micros: 30_000, count: 3 }]);
  });
});

describe("x402 on priced surfaces", () => {
  async function x402Org() {
    const org = await pricedOrg();
    const payTo = `0x${crypto.randomUUID().replaceAll("-", "")}`;
    const settings = await call("PUT", `/api/v1/admin/environments/${org.live.id}/payments/x402`, {
      key: org.adminKey,
      body: { facilitatorUrl: `${facilitatorBase()}/`, network: FAKE_NETWORK, asset: FAKE_ASSET, payTo },
    });
    expect(settings.status).toBe(200);
    return { org, payTo };
  }

  it("offers the price in x402 on the 402, settles a payment before serving it, and refuses one that does not pay", async () => {
    const { org, payTo } = await x402Org();
    const agent = await newAgent();
    const discovery = await visit(org, { headers: await agent.sign(PAGE) });
    const required = decodePaymentRequired(discovery.body.surfaceBehavior.http.headers["payment-required"]);
    if (!required.ok) throw new Error(required.error.message);
    expect(required.value.accepts).toEqual([
      expect.objectContaining({ scheme: "exact", amount: "10000", network: FAKE_NETWORK, asset: FAKE_ASSET, payTo }),
      expect.objectContaining({ scheme: "upto", amount: "10000", network: FAKE_NETWORK, asset: FAKE_ASSET, payTo }),
    ]);
    expect(required.value.resource.url).toBe(PAGE);

    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const payment = encodePaymentSignature(await wallet.pay(required.value.accepts[0]!));
    if (!payment.ok) throw new Error(payment.error.message);
    // No signature needed: the payment speaks for itself, for an anonymous visitor too.
    const bought = await visit(org, { headers: { "payment-signature": payment.value }, identity: { anonymousIdentifier: "wallet-visitor" } });
    const added = bought.body.surfaceBehavior.http.addHeaders as { name: string; value: string }[];
    expect(added.map((header) => header.name)).toEqual(["payment-response"]);
    const settlement = decodePaymentResponse(added[0]!.value);
    expect(settlement).toMatchObject({ ok: true, value: { success: true, network: FAKE_NETWORK } });
    expect(bought.body.features.articles.properties.enabled).toMatchObject({ hasAccess: true, consumedInRequest: false });
    expect(await settlementsTo(payTo)).toHaveLength(1);

    // The same payment again: the facilitator refuses the used authorization; the price is offered again.
    const again = await visit(org, { headers: { "payment-signature": payment.value }, identity: { anonymousIdentifier: "wallet-visitor" } });
    expect(again.body.surfaceBehavior.http).toMatchObject({ status: 402, headers: { "payment-required": expect.any(String) } });
    expect(again.body.features.articles.properties.enabled.hasAccess).toBe(false);
    expect(await settlementsTo(payTo)).toHaveLength(1);

    const ledger = (await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/wallet-visitor/charges?anonymous=true`, { key: org.adminKey })).body;
    expect(ledger.charges).toEqual([expect.objectContaining({ method: "x402", micros: 10_000, currency: "USD", reference: expect.any(String) })]);

    const garbage = await visit(org, { headers: { "payment-signature": "not base64 json" } });
    expect(garbage.body.surfaceBehavior.http).toMatchObject({ status: 402, headers: { "payment-required": expect.any(String) } });
  });

  it("serves a settled payment whose decision's meter call failed, and books it once the object answers", async () => {
    const { org, payTo } = await x402Org();
    const discovery = await visit(org, { headers: { "payment-signature": "asking" } });
    const required = decodePaymentRequired(discovery.body.surfaceBehavior.http.headers["payment-required"]);
    if (!required.ok) throw new Error(required.error.message);
    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const payment = encodePaymentSignature(await wallet.pay(required.value.accepts.find((offer) => offer.scheme === "exact")!));
    if (!payment.ok) throw new Error(payment.error.message);
    const slowMeter = workerWith({ meter: faultyMeter("timeout", ["meter-lost-visitor"]) });
    const answer = await slowMeter("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "meter-lost-visitor" }, resource: { id: "article-7" }, http: { url: PAGE, headers: { "payment-signature": payment.value } } },
    });
    expect(answer.body.surfaceBehavior.http.addHeaders.map((header: { name: string }) => header.name)).toEqual(["payment-response"]);
    expect(answer.body.features.articles.properties.enabled.hasAccess).toBe(true);
    await waitForBackgroundWork();
    expect(await settlementsTo(payTo)).toHaveLength(1);
    const ledger = (await call("GET", `/api/v1/admin/environments/${org.live.id}/identities/meter-lost-visitor/charges?anonymous=true`, { key: org.adminKey })).body;
    expect(ledger.charges).toEqual([expect.objectContaining({ method: "x402", micros: 10_000 })]);
  });
});
