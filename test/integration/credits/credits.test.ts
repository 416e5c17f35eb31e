/**
 * Credits end to end through HTTP against examples/ai-tools.yaml: a `tokens` balance per user that the free plan
 * grants once a month (20), that surface decisions on `ai-playground` spend at the price of their action and resource
 * (base 1, summarize 2, generate 5; ×5 for a model, ×2 for a premium tag), and that access checks only read.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { createMeterClient, meterStub } from "../../../durable-objects/meter/client";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";
import { aiTools } from "../../support/examples";
import { creditLedger } from "../meter/helpers";
import { faultyMeter, workerWith } from "../../support/faults";

let org: TestOrganization;
let featureId: string;
let creditId: string;

const user = (label: string) => `${label}-${crypto.randomUUID()}@example.com`;
const premiumModel = { id: "gpt-large", meta: { type: "model", tags: ["premium"] } };

const surfaceDecision = (identifier: string, extra: Record<string, unknown> = {}, surfaceSlug = "ai-playground", key = org.live.secretKey) =>
  call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug, identity: { userIdentifier: identifier }, ...extra } });
const accessCheck = (identifier: string, extra: Record<string, unknown> = {}, key = org.live.secretKey) =>
  call("POST", "/api/v1/access-checks", { key, body: { identity: { userIdentifier: identifier }, ...extra } });
const tokensOf = (body: any) => body.features["ai-tools"].properties.tokens;
const stubOf = (organization: TestOrganization, identifier: string) => meterStub(env.METER, `${organization.id}:default:u`, identifier);

beforeAll(async () => {
  org = await createOrganization("AI tools");
  await publish(org.adminKey, aiTools(), [org.live.id]);
  featureId = (await call("GET", "/api/v1/admin/features/ai-tools", { key: org.live.secretKey })).body.id;
  creditId = `default:${featureId}.tokens`;
});

describe("examples/ai-tools.yaml", () => {
  it("applies cleanly through PUT /api/v1/admin/config and exports the credits property and allowances", async () => {
    const other = await createOrganization("AI tools apply");
    const applied = await call("PUT", "/api/v1/admin/config", { key: other.adminKey, body: aiTools() });
    expect(applied.status).toBe(200);
    const exported = await call("GET", "/api/v1/admin/config", { key: other.live.secretKey });
    expect(exported.status).toBe(200);
    const document = exported.body.document ?? exported.body;
    expect(document.features["ai-tools"].properties.tokens).toMatchObject({
      type: "credits",
      costs: { base: 1, actions: { summarize: 2, generate: 5 } },
      conflict: "higher",
      onMeterFailure: "closed",
    });
    expect(document.plans.free.features["ai-tools"].tokens).toEqual({ credits: { amount: 20, period: "month" } });
    expect(document.surfaces["ai-playground"].consumes).toEqual(["ai-tools.tokens"]);
  });

  it("refuses an invalid allowance with the JSON path of the value", async () => {
    const document = aiTools();
    document.plans.free.features["ai-tools"].tokens = { credits: { amount: -5 } };
    const refused = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(refused.status).toBe(400);
    expect(refused.body.details.map((detail: { path: string }) => detail.path)).toContain("plans.free.features.ai-tools.tokens");
  });
});

describe("credits through surface decisions and access checks", () => {
  it("grants the monthly allowance once and deducts each decision at the price of its action and resource", async () => {
    const identifier = user("spender");
    const first = await accessCheck(identifier);
    expect(first.status).toBe(200);
    expect(tokensOf(first.body)).toEqual({ type: "credits", creditId, hasAccess: true, isFallback: false, balance: 20, cost: 1, deductedInRequest: false });

    // generate on a premium model: 5 × 5 × 2 = 50 > 20 → refused, nothing deducted.
    const refused = await surfaceDecision(identifier, { action: "generate", resource: premiumModel });
    expect(refused.status).toBe(200);
    expect(tokensOf(refused.body)).toEqual({
      type: "credits",
      creditId,
      hasAccess: false,
      isFallback: false,
      balance: 20,
      cost: 50,
      deductedInRequest: false,
      reason: "insufficient_credits",
    });

    // summarize on a premium article: 2 × 2 = 4; a plain decision: base 1; generate on a model: 25 > 15.
    const summarized = await surfaceDecision(identifier, { action: "summarize", resource: { id: "a1", meta: { tags: ["premium"] } } });
    expect(tokensOf(summarized.body)).toMatchObject({ hasAccess: true, balance: 16, cost: 4, deductedInRequest: true });
    const plain = await surfaceDecision(identifier);
    expect(tokensOf(plain.body)).toMatchObject({ hasAccess: true, balance: 15, cost: 1, deductedInRequest: true });
    const tooMuch = await surfaceDecision(identifier, { action: "generate", resource: { type: "model" } });
    expect(tokensOf(tooMuch.body)).toMatchObject({ hasAccess: false, balance: 15, cost: 25, reason: "insufficient_credits" });

    // The allowance was granted once for this month, not on every decision.
    expect((await accessCheck(identifier)).body.features["ai-tools"].properties.tokens.balance).toBe(15);
    const ledger = await creditLedger(stubOf(org, identifier), creditId);
    expect(ledger.filter((entry) => entry.reason.startsWith("periodic_grant:month:"))).toHaveLength(1);
    expect(ledger.filter((entry) => entry.reason === "consume").map((entry) => entry.delta)).toEqual([-1, -4]);
  });

  it("records insufficient_credits as the denial of the decision, with the action", async () => {
    const identifier = user("denied");
    const refused = await surfaceDecision(identifier, { action: "generate", resource: premiumModel });
    const events = await eventsFor(org.live.secretKey, `identifier=${encodeURIComponent(identifier)}`);
    const event = events.find((candidate) => candidate.id === refused.body.eventId);
    expect(event).toMatchObject({ outcome: "denied", surfaceSlug: "ai-playground" });
    expect(event.record.denials).toEqual([{ featureSlug: "ai-tools", property: "tokens", reason: "insufficient_credits" }]);
    expect(event.record.action).toBe("generate");
    expect(event.record.meter).toEqual({ status: "ok" });
  });

  it("access checks only read: hasAccess is whether the balance covers the price, and nothing is deducted", async () => {
    const identifier = user("reader");
    for (let i = 0; i < 3; i++) {
      const covered = await accessCheck(identifier, { action: "generate", resource: { meta: { tags: ["premium"] } } });
      expect(tokensOf(covered.body)).toMatchObject({ hasAccess: true, balance: 20, cost: 10, deductedInRequest: false });
      const notCovered = await accessCheck(identifier, { action: "generate", resource: premiumModel });
      expect(tokensOf(notCovered.body)).toMatchObject({ hasAccess: false, balance: 20, cost: 50, deductedInRequest: false, reason: "insufficient_credits" });
    }
    expect(await stubOf(org, identifier).getBalance(creditId)).toBe(20);
  });

  it("50 concurrent decisions costing 1 against a balance of 20: exactly 20 granted, balance 0, never negative", async () => {
    const identifier = user("burst");
    // 50 transactions queue on one object: under a loaded CI machine the last could pass the 200 ms meter deadline and
    // fall back, which is not what this test is about — its Worker waits as long as the object takes.
    const patient = workerWith({ meter: () => createMeterClient(env.METER, 30_000) });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => patient("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "ai-playground", identity: { userIdentifier: identifier } } })),
    );
    for (const result of results) expect(result.status).toBe(200);
    const tokens = results.map((result) => tokensOf(result.body));
    expect(tokens.filter((t) => t.hasAccess && t.deductedInRequest)).toHaveLength(20);
    expect(tokens.filter((t) => !t.hasAccess && t.reason === "insufficient_credits")).toHaveLength(30);
    for (const t of tokens) expect(t.balance).toBeGreaterThanOrEqual(0);
    expect(new Set(tokens.filter((t) => t.deductedInRequest).map((t) => t.balance))).toEqual(new Set(Array.from({ length: 20 }, (_, i) => i)));
    expect(await stubOf(org, identifier).getBalance(creditId)).toBe(0);
    expect(tokensOf((await accessCheck(identifier)).body)).toMatchObject({ hasAccess: false, balance: 0, reason: "insufficient_credits" });
  });

  it("a top-up raises the balance (meter object grant) and pays for what the allowance could not", async () => {
    const identifier = user("topup");
    expect(tokensOf((await surfaceDecision(identifier, { action: "generate", resource: premiumModel })).body)).toMatchObject({ hasAccess: false, balance: 20 });
    const granted = await stubOf(org, identifier).grantCredits({ creditId, amount: 100, reason: "top-up" });
    expect(granted).toEqual({ ok: true, balance: 120 });
    const paid = await surfaceDecision(identifier, { action: "generate", resource: premiumModel });
    expect(tokensOf(paid.body)).toMatchObject({ hasAccess: true, balance: 70, cost: 50, deductedInRequest: true });
  });

  it("an admin top-up (POST …/identities/{identifier}/credits/{creditId}/grants) raises the balance once per Idempotency-Key", async () => {
    const identifier = user("admin-topup");
    const path = `/api/v1/admin/environments/${org.live.id}/identities/${encodeURIComponent(identifier)}/credits/${encodeURIComponent(creditId)}`;
    expect(tokensOf((await accessCheck(identifier)).body).balance).toBe(20);
    const topUp = () => call("POST", `${path}/grants`, { key: org.live.secretKey, headers: { "idempotency-key": "topup-1" }, body: { amount: 40, reason: "bought 40 tokens" } });
    const first = await topUp();
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ identifier, creditId, balance: 60 });
    expect((await topUp()).body.balance).toBe(60);
    expect((await call("GET", path, { key: org.live.secretKey })).body.balance).toBe(60);
    const paid = await surfaceDecision(identifier, { action: "generate", resource: premiumModel });
    expect(tokensOf(paid.body)).toMatchObject({ hasAccess: true, balance: 10, cost: 50, deductedInRequest: true });
  });

  it("one Idempotency-Key used for top-ups in two production environments (one shared store) grants once", async () => {
    const identifier = user("admin-topup-two-envs");
    const created = await call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: `prod-b-${crypto.randomUUID().slice(0, 8)}`, type: "production" } });
    expect(created.status).toBe(201);
    const pathIn = (environmentId: string) =>
      `/api/v1/admin/environments/${environmentId}/identities/${encodeURIComponent(identifier)}/credits/${encodeURIComponent(creditId)}/grants`;
    const topUp = (environmentId: string) =>
      call("POST", pathIn(environmentId), { key: org.adminKey, headers: { "idempotency-key": "shared-key" }, body: { amount: 40, reason: "top-up" } });
    expect((await topUp(org.live.id)).body.balance).toBe(40);
    // The key names a grant to the balance, which the two environments share: the second is a replay of the first.
    expect((await topUp(created.body.environment.id)).body.balance).toBe(40);
    expect((await topUp(org.live.id)).body.balance).toBe(40);
    const balancePath = `/api/v1/admin/environments/${org.live.id}/identities/${encodeURIComponent(identifier)}/credits/${encodeURIComponent(creditId)}`;
    expect((await call("GET", balancePath, { key: org.adminKey })).body.balance).toBe(40);
  });

  it("a user without any allowance spends top-ups only", async () => {
    const other = await createOrganization("AI tools without allowance");
    const document = aiTools();
    delete document.plans.free.features["ai-tools"].tokens;
    await publish(other.adminKey, document, [other.live.id]);
    const identifier = user("no-allowance");
    const before = await surfaceDecision(identifier, {}, "ai-playground", other.live.secretKey);
    expect(tokensOf(before.body)).toMatchObject({ hasAccess: false, balance: 0, cost: 1, reason: "insufficient_credits" });
    const otherCreditId = tokensOf(before.body).creditId;
    await stubOf(other, identifier).grantCredits({ creditId: otherCreditId, amount: 2 });
    const after = await surfaceDecision(identifier, {}, "ai-playground", other.live.secretKey);
    expect(tokensOf(after.body)).toMatchObject({ hasAccess: true, balance: 1, deductedInRequest: true });
  });

  it("rejects an action longer than 100 characters with a 400", async () => {
    const result = await surfaceDecision(user("long-action"), { action: "x".repeat(101) });
    expect(result.status).toBe(400);
  });
});

describe("all-or-nothing with a metered counter", () => {
  let combo: TestOrganization;
  let comboCreditId: string;
  let comboCounterId: string;

  beforeAll(async () => {
    combo = await createOrganization("AI tools combo");
    const document = aiTools();
    // Two uses a day on the free plan, and a surface that consumes both the counter and the tokens.
    document.plans.free.features["ai-tools"].enabled = { metered: { limit: 2, period: "day" } };
    document.surfaces.combo = { consumes: ["ai-tools.enabled", "ai-tools.tokens"] };
    await publish(combo.adminKey, document, [combo.live.id]);
    const id = (await call("GET", "/api/v1/admin/features/ai-tools", { key: combo.live.secretKey })).body.id;
    comboCreditId = `default:${id}.tokens`;
    comboCounterId = `default:${id}.enabled`;
  });

  const comboDecision = (identifier: string, extra: Record<string, unknown> = {}) => surfaceDecision(identifier, extra, "combo", combo.live.secretKey);

  it("credits that do not cover the price consume no unit of the counter", async () => {
    const identifier = user("combo-credits");
    const refused = await comboDecision(identifier, { action: "generate", resource: premiumModel });
    const properties = refused.body.features["ai-tools"].properties;
    expect(properties.tokens).toMatchObject({ hasAccess: false, balance: 20, deductedInRequest: false, reason: "insufficient_credits" });
    expect(properties.enabled).toMatchObject({ counterId: comboCounterId, hasAccess: false, consumedUnits: 0, consumedInRequest: false });

    const granted = await comboDecision(identifier, { action: "summarize" });
    expect(granted.body.features["ai-tools"].properties.tokens).toMatchObject({ hasAccess: true, balance: 18, deductedInRequest: true });
    expect(granted.body.features["ai-tools"].properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, consumedInRequest: true });
  });

  it("a counter at its limit deducts no credits", async () => {
    const identifier = user("combo-limit");
    for (let i = 0; i < 2; i++) expect((await comboDecision(identifier)).body.features["ai-tools"].properties.enabled.hasAccess).toBe(true);
    const refused = await comboDecision(identifier, { action: "summarize" });
    const properties = refused.body.features["ai-tools"].properties;
    expect(properties.enabled).toMatchObject({ hasAccess: false, consumedUnits: 2, remainingUnits: 0 });
    expect(properties.tokens).toMatchObject({ hasAccess: false, balance: 18, cost: 2, deductedInRequest: false });
    expect(properties.tokens.reason).toBeUndefined();
    expect(await stubOf(combo, identifier).getBalance(comboCreditId)).toBe(18);
  });
});

describe("unreachable meter", () => {
  it("fails closed (onMeterFailure: closed) with isFallback true and the price, and deducts nothing", async () => {
    const identifier = user("unreachable");
    const callFailing = workerWith({ meter: faultyMeter("error", [identifier]) });
    const result = await callFailing("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      body: { surfaceSlug: "ai-playground", identity: { userIdentifier: identifier }, action: "summarize" },
    });
    expect(result.status).toBe(200);
    expect(tokensOf(result.body)).toEqual({ type: "credits", creditId, hasAccess: false, isFallback: true, cost: 2, deductedInRequest: false });
    expect(tokensOf((await accessCheck(identifier)).body)).toMatchObject({ isFallback: false, balance: 20 });
  });
});
