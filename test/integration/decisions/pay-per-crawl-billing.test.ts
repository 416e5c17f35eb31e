/**
 * Invoicing pay-per-crawl through Stripe: with `settings.payPerCrawl.stripeMeterEvent`, each charge a verified agent's
 * signature agreed to is reported to its operator's Stripe customer (linked with the admin customers route,
 * `?agent=true`) as a Billing Meter event valued in micro-units — once per logical request. x402 payments (settled
 * already) are not reported, nor is anything without the setting; an operator with no customer is recorded as
 * `no_customer`. The consumer never looks a customer up outside the environment's store and its agents partition.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UsageReportMessage } from "../../../workers/payments/usage";
import { encodePaymentSignature, decodePaymentRequired } from "../../../workers/payments/x402";
import { newAgent, type TestAgent } from "../../support/agents";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, deliverPaymentMessages, type StripeAccount } from "../../support/payments";
import { fakeStripe, meterEventsOf } from "../../support/stripe";
import { createTestWallet, FAKE_ASSET, FAKE_NETWORK, facilitatorBase, fund, settlementsTo } from "../../fake-facilitator/wallet";

const PAGE = "https://news.example/articles/7";
const EVENT_NAME = "crawl_micro_usd";

function pricedNewsSite(invoiced: boolean) {
  const doc = newsSite();
  doc.plans["ai-agents"].payPerCrawl = { "article-page": "USD 0.01" };
  if (invoiced) doc.settings = { ...doc.settings, payPerCrawl: { stripeMeterEvent: EVENT_NAME } };
  return doc;
}

// Stripe test-mode keys belong to a preview environment (its user data store is `preview`).
async function billedOrg(invoiced = true): Promise<{ org: TestOrganization; stripe: StripeAccount }> {
  const org = await createOrganization("Invoiced crawls");
  await publish(org.adminKey, pricedNewsSite(invoiced), [org.preview.id]);
  return { org, stripe: await connectStripe(org, org.preview.id) };
}

function crawl(org: TestOrganization, headers: Record<string, string>, options: { idempotencyKey?: string; identity?: Record<string, unknown> } = {}) {
  return call("POST", "/api/v1/surface-decisions", {
    key: org.preview.secretKey,
    headers: options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {},
    body: { surfaceSlug: "article-page", identity: options.identity ?? { anonymousIdentifier: "cookie" }, resource: { id: "article-7" }, http: { url: PAGE, headers } },
  });
}

const signedToPay = (agent: TestAgent) => agent.sign(PAGE, { covered: { "crawler-max-price": "USD 0.05" } });

/** Links the agent's operator to a new customer of the fake Stripe account, in the agents partition. */
async function linkOperator(org: TestOrganization, stripe: StripeAccount, agent: TestAgent): Promise<string> {
  const { data } = await fakeStripe<{ data: { id: string }[] }>("customers", { key: stripe.key, body: { customers: [{ email: `ops@${new URL(agent.origin).port}.example` }] } });
  const customerId = data[0]!.id;
  const put = await call("PUT", `/api/v1/admin/environments/${org.preview.id}/customers/${encodeURIComponent(agent.origin)}?agent=true`, {
    key: org.adminKey,
    body: { stripeCustomerId: customerId, stripeProductIds: [] },
  });
  expect(put.status).toBe(200);
  return customerId;
}

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => {
  payments.restore();
});

async function usageSent(identifier: string): Promise<UsageReportMessage[]> {
  await waitForBackgroundWork();
  return (payments.sent as unknown as { kind?: string; identifier?: string }[]).filter(
    (message): message is UsageReportMessage => message.kind === "usage" && message.identifier === identifier,
  );
}

const usageEvents = async (org: TestOrganization, identifier: string) =>
  (await call("GET", `/api/v1/admin/events?environmentId=${org.preview.id}&kind=usage&identifier=${encodeURIComponent(identifier)}`, { key: org.adminKey })).body.events as {
    outcome: string;
    record: Record<string, unknown>;
  }[];

describe("pay-per-crawl invoiced through Stripe", () => {
  it("reports each paid crawl of a linked operator to its Stripe customer as a meter event of its micro-units", async () => {
    const { org, stripe } = await billedOrg();
    const agent = await newAgent();
    const customerId = await linkOperator(org, stripe, agent);

    const answers = [await crawl(org, await signedToPay(agent)), await crawl(org, await signedToPay(agent))];
    for (const answer of answers) expect(answer.body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });

    const sent = await usageSent(agent.origin);
    expect(sent).toEqual(
      answers.map((answer) =>
        expect.objectContaining({
          kind: "usage",
          environmentId: org.preview.id,
          counterId: "crawl:article-page",
          eventName: EVENT_NAME,
          value: 10_000,
          eventId: answer.body.eventId,
          store: "preview~agents",
        }),
      ),
    );
    await payments.deliver();
    const events = await meterEventsOf(stripe.key);
    expect(events.map((event) => [event.event_name, event.payload.stripe_customer_id, event.payload.value])).toEqual([
      [EVENT_NAME, customerId, "10000"],
      [EVENT_NAME, customerId, "10000"],
    ]);
    expect(new Set(events.map((event) => event.identifier)).size).toBe(2);

    const recorded = await usageEvents(org, agent.origin);
    expect(recorded.map((event) => event.outcome)).toEqual(["reported", "reported"]);
    expect(recorded[0]!.record).toMatchObject({ customerId, counterId: "crawl:article-page", eventName: EVENT_NAME, value: 10_000 });

    // The link lives in the agents partition: the same name as a signed-in user's is another customer.
    const asAgent = await call("GET", `/api/v1/admin/environments/${org.preview.id}/customers/${encodeURIComponent(agent.origin)}?agent=true`, { key: org.adminKey });
    expect(asAgent.body).toMatchObject({ identifier: agent.origin, stripeCustomerId: customerId });
    const asUser = await call("GET", `/api/v1/admin/environments/${org.preview.id}/customers/${encodeURIComponent(agent.origin)}`, { key: org.adminKey });
    expect(asUser.status).toBe(404);
    const listed = await call("GET", `/api/v1/admin/environments/${org.preview.id}/customers?agent=true`, { key: org.adminKey });
    expect(listed.body.customers.map((customer: { identifier: string }) => customer.identifier)).toEqual([agent.origin]);
  });

  it("an unlinked operator: served, its charges recorded as no_customer, nothing at Stripe", async () => {
    const { org, stripe } = await billedOrg();
    const agent = await newAgent();
    expect((await crawl(org, await signedToPay(agent))).body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });
    expect(await usageSent(agent.origin)).toHaveLength(1);
    await payments.deliver();
    expect(await meterEventsOf(stripe.key)).toEqual([]);
    expect((await usageEvents(org, agent.origin)).map((event) => [event.outcome, event.record.customerId])).toEqual([["no_customer", null]]);
  });

  it("a retry under its Idempotency-Key is one charge and one meter event", async () => {
    const { org, stripe } = await billedOrg();
    const agent = await newAgent();
    const customerId = await linkOperator(org, stripe, agent);
    const headers = await signedToPay(agent);
    const first = await crawl(org, headers, { idempotencyKey: "invoiced-retry" });
    const retry = await crawl(org, headers, { idempotencyKey: "invoiced-retry" });
    expect(retry.body.eventId).toBe(first.body.eventId);
    expect(retry.body.surfaceBehavior.http).toEqual(first.body.surfaceBehavior.http);
    expect((await usageSent(agent.origin)).map((message) => message.eventId)).toEqual([first.body.eventId]);
    await payments.deliver();
    expect((await meterEventsOf(stripe.key)).map((event) => [event.payload.stripe_customer_id, event.payload.value])).toEqual([[customerId, "10000"]]);
  });

  it("a signed-in user's agent is invoiced to that user's customer, in the environment's store", async () => {
    const { org, stripe } = await billedOrg();
    const agent = await newAgent();
    const user = `reader-${crypto.randomUUID()}@example.com`;
    const { data } = await fakeStripe<{ data: { id: string }[] }>("customers", { key: stripe.key, body: { customers: [{ email: user }] } });
    const put = await call("PUT", `/api/v1/admin/environments/${org.preview.id}/customers/${encodeURIComponent(user)}`, {
      key: org.adminKey,
      body: { stripeCustomerId: data[0]!.id, stripeProductIds: [] },
    });
    expect(put.status).toBe(200);
    // The agent acts for the signed-in user: the user pays (its ledger), so the user's customer is invoiced.
    const answer = await crawl(org, await signedToPay(agent), { identity: { userIdentifier: user } });
    expect(answer.body.identity).toMatchObject({ identifier: user });
    expect(answer.body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });
    expect(await usageSent(user)).toEqual([expect.objectContaining({ store: "preview", value: 10_000, eventId: answer.body.eventId })]);
    await payments.deliver();
    expect((await meterEventsOf(stripe.key)).map((event) => event.payload.stripe_customer_id)).toEqual([data[0]!.id]);
  });

  it("an x402 payment is settled already: no meter event", async () => {
    const { org, stripe } = await billedOrg();
    const payTo = `0x${crypto.randomUUID().replaceAll("-", "")}`;
    const settings = await call("PUT", `/api/v1/admin/environments/${org.preview.id}/payments/x402`, {
      key: org.adminKey,
      body: { facilitatorUrl: `${facilitatorBase()}/`, network: FAKE_NETWORK, asset: FAKE_ASSET, payTo },
    });
    expect(settings.status).toBe(200);
    const agent = await newAgent();
    await linkOperator(org, stripe, agent);
    const discovery = await crawl(org, await agent.sign(PAGE));
    const required = decodePaymentRequired(discovery.body.surfaceBehavior.http.headers["payment-required"]);
    if (!required.ok) throw new Error(required.error.message);
    const wallet = await createTestWallet();
    await fund(wallet.address, "1000000");
    const payment = encodePaymentSignature(await wallet.pay(required.value.accepts.find((accept) => accept.scheme === "exact")!));
    if (!payment.ok) throw new Error(payment.error.message);

    const bought = await crawl(org, { ...(await agent.sign(PAGE)), "payment-signature": payment.value });
    expect(bought.body.surfaceBehavior.http.addHeaders.map((header: { name: string }) => header.name)).toContain("payment-response");
    expect(await settlementsTo(payTo)).toHaveLength(1);
    expect(await usageSent(agent.origin)).toEqual([]);
    await payments.deliver();
    expect(await meterEventsOf(stripe.key)).toEqual([]);
  });

  it("without settings.payPerCrawl nothing is queued", async () => {
    const { org, stripe } = await billedOrg(false);
    const agent = await newAgent();
    await linkOperator(org, stripe, agent);
    expect((await crawl(org, await signedToPay(agent))).body.surfaceBehavior.http).toEqual({ addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }] });
    expect(await usageSent(agent.origin)).toEqual([]);
    await payments.deliver();
    expect(await meterEventsOf(stripe.key)).toEqual([]);
  });

  it("refuses a malformed meter event name (400)", async () => {
    const org = await createOrganization("Invoiced crawls, misconfigured");
    const doc = pricedNewsSite(false);
    const put = (stripeMeterEvent: string) => call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: { ...doc, settings: { ...doc.settings, payPerCrawl: { stripeMeterEvent } } } });
    expect((await put("crawl usd!")).status).toBe(400);
    expect((await put(EVENT_NAME)).status).toBe(200);
  });

  it("the consumer looks customers up only in the environment's store or its agents partition", async () => {
    const { org, stripe } = await billedOrg();
    const victim = await createOrganization("Someone else");
    const identifier = "https://crawler.example";
    const { data } = await fakeStripe<{ data: { id: string }[] }>("customers", { key: stripe.key, body: { customers: [{ email: "crawler@example.com" }] } });
    // Linked in the environment's production store (`default`): not where a preview message may look.
    const linked = await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/${encodeURIComponent(identifier)}?agent=true`, {
      key: org.adminKey,
      body: { stripeCustomerId: data[0]!.id, stripeProductIds: [] },
    });
    expect(linked.status).toBe(200);
    const message = (store: string, eventId: string): UsageReportMessage => ({
      kind: "usage",
      organizationId: org.id,
      environmentId: org.preview.id,
      identifier,
      counterId: "crawl:article-page",
      eventName: EVENT_NAME,
      value: 10_000,
      eventId,
      store,
    });
    const result = await deliverPaymentMessages([message("default~agents", "evt_foreign_1"), message(`${victim.id}:preview~agents`, "evt_foreign_2"), message("preview~x402", "evt_foreign_3")]);
    expect(result.retryMessages).toEqual([]);
    expect(await meterEventsOf(stripe.key)).toEqual([]);
    expect(await usageEvents(org, identifier)).toEqual([]);
  });
});
