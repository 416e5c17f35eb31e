/** Charging credits through POST /api/v1/counter-updates: an action priced by the property's cost rules. */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { aiTools } from "../../support/examples";

let org: TestOrganization;
let creditId: string;

beforeAll(async () => {
  org = await createOrganization("Credits via counter updates");
  await publish(org.adminKey, aiTools(), [org.live.id]);
  creditId = `default:${(await call("GET", "/api/v1/admin/features/ai-tools", { key: org.live.secretKey })).body.id}.tokens`;
});

const charge = (identifier: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  call("POST", "/api/v1/counter-updates", { key: org.live.secretKey, body: { identity: { userIdentifier: identifier }, counterId: creditId, ...body }, headers });

describe("counter updates on a credits property", () => {
  it("deducts the action's price from the monthly allowance and refuses what the balance cannot cover", async () => {
    const identifier = `charge-${crypto.randomUUID()}`;
    const summarize = await charge(identifier, { action: "summarize" });
    expect(summarize.status, JSON.stringify(summarize.body)).toBe(200);
    expect(summarize.body).toMatchObject({ status: "success", credit: { creditId, cost: 2, balance: 18, deductedInRequest: true, hasAccess: true } });
    const model = await charge(identifier, { action: "generate", resource: { id: "m", meta: { type: "model" } } });
    expect(model.status).toBe(409);
    expect(model.body.message).toMatch(/costs 25, the balance is 18/);
    expect((await charge(identifier, { action: "generate" })).body.credit).toMatchObject({ cost: 5, balance: 13 });
  });

  it("answers 409 insufficient_credits and leaves the balance as it was", async () => {
    const identifier = `poor-${crypto.randomUUID()}`;
    const refused = await charge(identifier, { action: "generate", resource: { id: "m", meta: { type: "model", tags: ["premium"] } } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ status: "error", statusCode: 409, code: "insufficient_credits" });
    expect(refused.body.message).toContain("50");
    const check = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userIdentifier: identifier } } });
    expect(check.body.features["ai-tools"].properties.tokens.balance).toBe(20);
  });

  it("charges once per Idempotency-Key", async () => {
    const identifier = `retry-${crypto.randomUUID()}`;
    const headers = { "idempotency-key": "charge-1" };
    const results = await Promise.all(Array.from({ length: 10 }, () => charge(identifier, { action: "generate" }, headers)));
    for (const result of results) expect(result.body.credit).toEqual(results[0]!.body.credit);
    expect(results[0]!.body.credit.balance).toBe(15);
    expect((await charge(identifier, { action: "summarize" }, headers)).status).toBe(422);
  });
});

describe("feature workflows and credits", () => {
  it("may deny access to a credits property without touching the balance", async () => {
    const organization = await createOrganization("Credits workflow");
    const document = aiTools();
    document.workflows = {
      "no-tokens-for-bots": { type: "feature", feature: "ai-tools", source: `export default ({ identity }) => (identity.identifier.startsWith("bot-") ? { tokens: false } : {});` },
    };
    await publish(organization.adminKey, document, [organization.live.id]);
    const check = (identifier: string) =>
      call("POST", "/api/v1/access-checks", { key: organization.live.secretKey, body: { identity: { userIdentifier: identifier } } });
    const human = await check("human@example.com");
    expect(human.body.features["ai-tools"].properties.tokens).toMatchObject({ type: "credits", hasAccess: true, balance: 20 });
    const bot = await check("bot-1@example.com");
    expect(bot.body.features["ai-tools"].properties.tokens).toMatchObject({ type: "credits", hasAccess: false, balance: 20, isFallback: false });
  });
});
