/**
 * Custom redemptions (workers/decision/redemptionWorkflow.ts): the client's input checked against the offer's schema,
 * the redemption workflow run with the offer and the input, and its writes staged — applied all together once it
 * succeeded, dropped when it throws, times out, returns something else or refuses. Called directly (as the
 * redemption route does) and through `POST /api/v1/offer-redemptions`.
 */
import { env } from "cloudflare:workers";
import giftRedemption from "../../../examples/workflows/gift-redemption.ts?raw";
import type { Context } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type MeterClient, meterStub, userStoreKey } from "../../../durable-objects/meter/client";
import type { CustomDataApplyResult, CustomDataExpectation, CustomDataWrite } from "../../../durable-objects/meter/MeterObject";
import type { AppEnv } from "../../../workers/context";
import type { OfferTokenClaims } from "../../../workers/engine/offerTypes";
import { redeemOffer } from "../../../workers/decision/offerRedemption";
import { checkRedemptionInput, redemptionWorkflowError, runRedemptionWorkflow } from "../../../workers/decision/redemptionWorkflow";
import type { Services } from "../../../workers/decision/services";
import { identify, loadConfig } from "../../../workers/decision/stages";
import { buildServices, type ServiceOverrides } from "../../../workers/middleware/services";
import { mintOfferToken } from "../../../workers/offers/tokens";
import { MAX_STAGED_KEYS, remoteScopeOf, scopedUtils, STAGED_BYTES_MESSAGE, STAGED_KEYS_MESSAGE, StagedWrites } from "../../../workers/workflows/scopedUtils";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { workerWith } from "../../support/faults";
import { trackedExecutionContext } from "../../support/background";
import { newsSite } from "../../support/examples";
import { type CapturedTriggers, captureTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

let triggers: CapturedTriggers;
beforeEach(() => {
  triggers = captureTriggers();
});
afterEach(() => triggers.restore());

const BUYER = "buyer@example.com";

/**
 * One workflow for every case, chosen by `input.kind`: it always writes first (sets `gift`, deletes `old`, fires
 * gift.redeemed), then succeeds, throws, refuses, answers a bad result, hangs past its deadline or tries a counter.
 */
const REDEEM_SOURCE = `export default async ({ input, offer, identity, utils }: any) => {
  await utils.customData.set("gift", { kind: input.kind, offer: offer.slug, title: offer.title, price: offer.price, who: identity.identifier });
  const deleted = await utils.customData.delete("old");
  await utils.triggers.fire("gift.redeemed", { kind: input.kind });
  if (input.kind === "throw") throw new Error("out of stock");
  if (input.kind === "fail") return { fail: { message: "sold out today" } };
  if (input.kind === "bad") return 42;
  if (input.kind === "slow") await new Promise((resolve) => setTimeout(resolve, 5_000));
  if (input.kind === "many" || input.kind === "big") {
    // Past the stage's bounds: 100 keys, 512 KiB of values (each value here is about 60 KiB).
    const value = input.kind === "big" ? "x".repeat(60_000) : 1;
    try {
      for (let i = 0; i < 120; i++) await utils.customData.set("k" + i, value);
    } catch (error) {
      return { result: { stageError: (error as Error).message } };
    }
  }
  if (input.kind === "counter") {
    try {
      await utils.counters.consume(input.counterId);
      return { result: { counted: true } };
    } catch (error) {
      return { result: { counterError: (error as Error).message } };
    }
  }
  // Reads see the workflow's own writes before they are applied.
  return { result: { granted: true, gift: await utils.customData.get("gift"), old: await utils.customData.get("old"), deleted } };
};`;

interface Shop {
  org: TestOrganization;
  versionId: string;
}

async function shop(options: { required?: boolean; source?: string } = {}): Promise<Shop> {
  const org = await createOrganization("Redemption workflows");
  const document = newsSite();
  document.workflows = {
    redeem: { type: "redemption", source: options.source ?? REDEEM_SOURCE, deadlineMs: 1_000, ...(options.required ? { required: true } : {}) },
    "record-gifts": recordTriggersAction(["gift.redeemed", "gift.claimed"]),
  };
  document.triggers = {
    "gift.redeemed": { schema: { type: "object", properties: { kind: { type: "string" } } } },
    "gift.claimed": { schema: { type: "object", required: ["offer"] } },
  };
  document.offers = {
    gift: {
      presentation: { title: "A free gift" },
      price: { currency: "usd", amount: 0 },
      redemption: {
        method: "workflow",
        workflow: "redeem",
        schema: {
          type: "object",
          properties: {
            kind: { enum: ["ok", "throw", "fail", "bad", "slow", "counter", "many", "big"] },
            nested: {},
            counterId: { type: "string" },
            note: { type: "string", maxLength: 5 },
            address: { type: "string" },
          },
          required: options.source ? [] : ["kind"],
          additionalProperties: false,
        },
      },
    },
  };
  const versionId = await publish(org.adminKey, document, [org.preview.id]);
  return { org, versionId };
}

/** The Services and the resolved subject of a redemption request for BUYER, as the route builds them. */
async function subjectOf(shop_: Shop, overrides: ServiceOverrides = {}) {
  const context = { env, executionCtx: trackedExecutionContext(), get: () => undefined } as unknown as Context<AppEnv>;
  const services = buildServices(context, overrides);
  const environment = (await services.lookupEnvironment(shop_.org.preview.id))!;
  const request = { environment, keyType: "secret" as const, body: { identity: { userIdentifier: BUYER } }, transport: {} };
  const subject = await identify(services, await loadConfig(services, request));
  const offer = subject.prepared.snapshot.offers!.find((candidate) => candidate.slug === "gift")!;
  return { services, subject, offer };
}

function claimsFor(shop_: Shop, fingerprint: string): OfferTokenClaims {
  const now = Math.floor(Date.now() / 1000);
  return { env: shop_.org.preview.id, offer: "gift", variant: null, group: null, slot: null, sub: BUYER, anon: false, amt: 0, cur: "usd", int: null, fp: fingerprint, jti: `jti_${crypto.randomUUID()}`, iat: now, exp: now + 1800 };
}

async function redeemDirectly(shop_: Shop, input: unknown, overrides: ServiceOverrides = {}, adjust: (services: Services) => Services = (services) => services) {
  const { services, subject, offer } = await subjectOf(shop_, overrides);
  return runRedemptionWorkflow(adjust(services), subject, offer, claimsFor(shop_, offer.fingerprint), input);
}

type MeterStub = ReturnType<MeterClient["stub"]>;

/**
 * The real meter, with `customDataApply` (where a redemption's staged writes land) going through `around`: a write
 * another request makes meanwhile, a barrier, or a failure of the object.
 */
function aroundApply(around: (apply: () => Promise<CustomDataApplyResult>, user: MeterStub) => Promise<CustomDataApplyResult>): ServiceOverrides {
  return {
    meter: (real) => ({
      ...real,
      stub: (key) => {
        const user = real.stub(key);
        return {
          customDataGet: (dataKey: string) => user.customDataGet(dataKey),
          customDataApply: (writes: CustomDataWrite[], expected?: CustomDataExpectation[], applyId?: string) =>
            around(() => user.customDataApply(writes, expected, applyId) as Promise<CustomDataApplyResult>, user),
        } as unknown as MeterStub;
      },
    }),
  };
}

/** Holds each apply until `count` of them wait, so every redemption has read before any applies. */
function barrier(count: number) {
  let waiting = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return aroundApply(async (apply) => {
    if (++waiting === count) open();
    await opened;
    return apply();
  });
}

const buyerData = (shop_: Shop) => meterStub(env.METER, userStoreKey(shop_.org.id, "preview", true), BUYER);
const customData = (shop_: Shop, key: string) => buyerData(shop_).customDataGet(key) as Promise<unknown>;

async function seedOld(shop_: Shop) {
  await buyerData(shop_).customDataSet("old", { stale: true });
}

describe("redemption workflows, called directly", () => {
  it("a workflow that succeeds: its result, its writes applied together, its trigger sent", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    const outcome = await redeemDirectly(shop_, { kind: "ok" });
    const gift = { kind: "ok", offer: "gift", title: "A free gift", price: { amount: 0, currency: "usd" }, who: BUYER };
    // The workflow read its own write, and its own delete, before they were applied.
    expect(outcome).toEqual({ ok: true, result: { granted: true, gift, old: null, deleted: true } });
    expect(await customData(shop_, "gift")).toEqual(gift);
    expect(await customData(shop_, "old")).toBeNull();
    await triggers.deliver();
    expect(triggers.sent.map((message) => [message.trigger, message.payload])).toEqual([["gift.redeemed", { kind: "ok" }]]);
    expect(await customData(shop_, "seen:gift.redeemed")).toEqual([{ kind: "ok" }]);
  });

  it("a workflow that writes then throws, refuses, answers a bad result or times out leaves nothing behind", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    const expected = {
      throw: { kind: "threw", reason: expect.stringContaining("out of stock") },
      fail: { kind: "refused", reason: "sold out today" },
      bad: { kind: "bad_result", reason: expect.stringContaining("unexpected result from a redemption workflow: 42") },
      slow: { kind: "timeout", reason: expect.any(String) },
    } as const;
    for (const [kind, failure] of Object.entries(expected)) {
      const outcome = await redeemDirectly(shop_, { kind });
      expect(outcome, kind).toEqual({ ok: false, ...failure });
    }
    expect(await customData(shop_, "gift")).toBeNull();
    expect(await customData(shop_, "old")).toEqual({ stale: true });
    await triggers.deliver();
    expect(triggers.sent).toEqual([]);
  });

  it("refuses counters with a clear error", async () => {
    const shop_ = await shop();
    const { subject } = await subjectOf(shop_);
    const counterId = `preview:${subject.prepared.snapshot.features[0]!.id}.enabled`;
    const outcome = await redeemDirectly(shop_, { kind: "counter", counterId });
    expect(outcome).toMatchObject({ ok: true, result: { counterError: expect.stringContaining("not available to redemption workflows") } });
  });

  it("refuses input that does not match the offer's schema, naming the path, before anything runs", async () => {
    const shop_ = await shop();
    await expect(redeemDirectly(shop_, { kind: "ok", note: "far too long" })).rejects.toMatchObject({
      code: "validation_failed",
      status: 400,
      details: [{ path: "input.note", message: expect.any(String) }],
    });
    await expect(redeemDirectly(shop_, { kind: "nope" })).rejects.toMatchObject({ code: "validation_failed", details: [{ path: "input.kind" }] });
    await expect(redeemDirectly(shop_, undefined)).rejects.toMatchObject({ code: "validation_failed", details: [{ path: "input" }] });
    expect(await customData(shop_, "gift")).toBeNull();
  });

  it("refuses deeply nested input at path `input` before anything runs, instead of overflowing the stack", async () => {
    const shop_ = await shop();
    let nested: unknown = [];
    for (let i = 0; i < 20_000; i++) nested = [nested];
    const tooDeep = { path: "input", message: "must not be nested deeper than 64 levels" };
    await expect(redeemDirectly(shop_, { kind: "ok", nested })).rejects.toMatchObject({ code: "validation_failed", status: 400, details: [tooDeep] });
    expect(await customData(shop_, "gift")).toBeNull();
    // The check on its own, as the route can call it before it claims the redemption.
    const { offer } = await subjectOf(shop_);
    expect(() => checkRedemptionInput(offer, nested)).toThrow(expect.objectContaining({ code: "validation_failed", details: [tooDeep] }));
    expect(checkRedemptionInput(offer, { kind: "ok", nested: [[[1]]] })).toEqual({ kind: "ok", nested: [[[1]]] });
  });

  it("answers an input with thousands of schema errors at once, naming at most 10 of the deepest paths", async () => {
    const shop_ = await shop();
    const { offer } = await subjectOf(shop_);
    const input = { kind: "ok", ...Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`extra${i}`, { deeper: i }])) };
    const started = performance.now();
    let refused: unknown;
    try {
      checkRedemptionInput(offer, input);
    } catch (error) {
      refused = error;
    }
    const elapsed = performance.now() - started;
    expect(refused).toMatchObject({ code: "validation_failed", details: Array.from({ length: 10 }, (_, i) => ({ path: `input.extra${i}` })) });
    // Reporting every error used to take seconds (a quadratic search for the deepest ones) on the shared isolate.
    expect(elapsed).toBeLessThan(1_000);
  });

  it("applies nothing when a value it read changed meanwhile, so that write is never lost: a conflict", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    // Another request rewrites `old`, which the workflow read (deleting it), after the read and before the apply.
    const rewrite = aroundApply(async (apply, user) => {
      await user.customDataSet("old", { rewritten: true });
      return apply();
    });
    expect(await redeemDirectly(shop_, { kind: "ok" }, rewrite)).toEqual({ ok: false, kind: "conflict", reason: expect.stringContaining('"old" changed while the workflow ran') });
    expect(await customData(shop_, "old")).toEqual({ rewritten: true });
    expect(await customData(shop_, "gift")).toBeNull();
    // Unchanged meanwhile, the same redemption applies.
    expect(await redeemDirectly(shop_, { kind: "ok" })).toMatchObject({ ok: true, result: { granted: true } });
    expect(await customData(shop_, "old")).toBeNull();
    await triggers.deliver();
    expect(triggers.sent.map((message) => message.payload)).toEqual([{ kind: "ok" }]);
  });

  it("a meter object that fails while applying the writes is `unavailable`, not the workflow's failure; nothing is applied", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    const broken = aroundApply(() => Promise.reject(new Error("Durable Object is overloaded. Requests queued for too long.")));
    expect(await redeemDirectly(shop_, { kind: "ok" }, broken)).toEqual({ ok: false, kind: "unavailable", reason: expect.stringContaining("could not be reached") });
    expect(await customData(shop_, "gift")).toBeNull();
    expect(await customData(shop_, "old")).toEqual({ stale: true });
    await triggers.deliver();
    expect(triggers.sent).toEqual([]);
  });

  it("the platform failing to run the workflow (its settings, the runtime) is a 503 to retry, not the workflow's 531", async () => {
    const shop_ = await shop();
    const warnings: string[] = [];
    const settingsDown = (services: Services): Services => ({
      ...services,
      logger: { warn: (event) => warnings.push(event), error: (event) => warnings.push(event) },
      workflowEnvironment: () => Promise.reject(new Error("D1_ERROR: Network connection lost.")),
    });
    const outcome = await redeemDirectly(shop_, { kind: "ok" }, {}, settingsDown);
    expect(outcome).toEqual({ ok: false, kind: "settings_unavailable", reason: expect.any(String) });
    expect(warnings).toContain("workflow_settings_unavailable");
    expect(await customData(shop_, "gift")).toBeNull();
    for (const kind of ["settings_unavailable", "runtime_unavailable"]) {
      const error = redemptionWorkflowError("gift", { kind, reason: "unreachable" });
      expect(error, kind).toMatchObject({ code: "service_unavailable", status: 503, retryAfterSeconds: 1, message: expect.stringContaining("retry with the same token") });
    }
    // Customer code failing stays the workflow's 531.
    expect(redemptionWorkflowError("gift", { kind: "threw", reason: "out of stock" })).toMatchObject({ code: "workflow_error", status: 531 });
  });

  it("bounds what a workflow stages: a set past 100 keys or 512 KiB of values is refused with a clear error", async () => {
    const shop_ = await shop();
    expect(await redeemDirectly(shop_, { kind: "many" })).toEqual({ ok: true, result: { stageError: STAGED_KEYS_MESSAGE } });
    // `gift`, `old` (deleted) and k0…k97 made 100 keys; what was staged before the refusal is applied with the result.
    expect(await customData(shop_, "k97")).toBe(1);
    expect(await customData(shop_, "k98")).toBeNull();
    expect(await redeemDirectly(shop_, { kind: "big" })).toEqual({ ok: true, result: { stageError: STAGED_BYTES_MESSAGE } });

    const staged = new StagedWrites();
    for (let i = 0; i < MAX_STAGED_KEYS; i++) staged.set(`key${i}`, i);
    expect(() => staged.set("one-more", 1)).toThrow(STAGED_KEYS_MESSAGE);
    expect(() => staged.delete("one-more")).toThrow(STAGED_KEYS_MESSAGE);
    staged.set("key0", "x".repeat(500 * 1024)); // a key already staged may change
    expect(() => staged.set("key1", "x".repeat(20 * 1024))).toThrow(STAGED_BYTES_MESSAGE);
    staged.delete("key0"); // its bytes are freed
    staged.set("key1", "x".repeat(20 * 1024));
    expect(staged.customDataWrites()).toHaveLength(MAX_STAGED_KEYS);
  });

  it("sends its triggers before answering; what the queue does not take is logged and reported, the redemption stands", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    const warnings: string[] = [];
    const queueDown = (services: Services): Services => ({
      ...services,
      logger: { ...services.logger, warn: (event, fields) => warnings.push(JSON.stringify({ event, ...fields })) },
      triggers: { enqueue: () => Promise.reject(new Error("queue unavailable")) },
    });
    const outcome = await redeemDirectly(shop_, { kind: "ok" }, {}, queueDown);
    expect(outcome).toMatchObject({ ok: true, result: { granted: true }, unsentTriggers: [{ trigger: "gift.redeemed", reason: expect.stringContaining("queue unavailable") }] });
    expect(await customData(shop_, "gift")).toMatchObject({ kind: "ok" });
    expect(warnings).toEqual([expect.stringContaining('"event":"redemption_triggers_unsent"')]);
  });

  it("a required workflow that fails answers 531, and still applies nothing", async () => {
    const shop_ = await shop({ required: true });
    await expect(redeemDirectly(shop_, { kind: "throw" })).rejects.toMatchObject({ code: "workflow_error", status: 531 });
    expect(await customData(shop_, "gift")).toBeNull();
  });
});

describe("staged utils", () => {
  it("tell a runtime that rebuilds utils elsewhere (dispatch) that writes are staged: they never reach the meter from there", async () => {
    const shop_ = await shop();
    const { services, subject } = await subjectOf(shop_);
    const build = (staged?: StagedWrites) =>
      scopedUtils({
        meter: services.meter,
        organizationId: shop_.org.id,
        store: "preview",
        prepared: subject.prepared,
        identifier: () => BUYER,
        authenticated: () => true,
        readOnly: false,
        fireTrigger: () => {},
        ...(staged ? { staged } : {}),
      });
    expect(await remoteScopeOf(build())).not.toHaveProperty("staged");
    expect(await remoteScopeOf(build(new StagedWrites()))).toMatchObject({ readOnly: false, staged: true, identifier: BUYER });
  });
});

describe("the gift-redemption example (examples/workflows/gift-redemption.ts)", () => {
  it("claims once: the second claim is refused and changes nothing", async () => {
    const shop_ = await shop({ source: giftRedemption });
    const first = await redeemDirectly(shop_, { address: "1 Main St" });
    expect(first).toEqual({ ok: true, result: { claimed: true, title: "A free gift" } });
    expect(await customData(shop_, "claimed:gift")).toMatchObject({ address: "1 Main St" });
    const second = await redeemDirectly(shop_, { address: "2 Other St" });
    expect(second).toEqual({ ok: false, kind: "refused", reason: "You already claimed this gift" });
    expect(await customData(shop_, "claimed:gift")).toMatchObject({ address: "1 Main St" });
    await triggers.deliver();
    expect(triggers.sent.map((message) => message.payload)).toEqual([{ offer: "gift", identifier: BUYER }]);
  });

  it("claims once under concurrency: of two claims that both saw it unclaimed (two tokens), one wins, the other is a conflict", async () => {
    const shop_ = await shop({ source: giftRedemption });
    // Both workflows have read "not claimed" before either applies its writes.
    const bothRead = barrier(2);
    const outcomes = await Promise.all([redeemDirectly(shop_, { address: "1 Main St" }, bothRead), redeemDirectly(shop_, { address: "2 Other St" }, bothRead)]);
    const won = outcomes.findIndex((outcome) => outcome.ok);
    expect(won).not.toBe(-1);
    expect(outcomes[won]).toEqual({ ok: true, result: { claimed: true, title: "A free gift" } });
    expect(outcomes[1 - won]).toEqual({ ok: false, kind: "conflict", reason: expect.stringContaining('"claimed:gift" changed while the workflow ran') });
    expect(await customData(shop_, "claimed:gift")).toMatchObject({ address: won === 0 ? "1 Main St" : "2 Other St" });
    await triggers.deliver();
    expect(triggers.sent.map((message) => message.payload)).toEqual([{ offer: "gift", identifier: BUYER }]);
  });
});

describe("redemption workflows through POST /api/v1/offer-redemptions", () => {
  async function tokenFor(shop_: Shop) {
    const { offer } = await subjectOf(shop_);
    const { jti: _, iat: __, exp: ___, ...input } = claimsFor(shop_, offer.fingerprint);
    return (await mintOfferToken(env.SECRETS_KEY, input, Date.now())).token;
  }

  const redeem = (shop_: Shop, offerToken: string, input: unknown) =>
    call("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: BUYER }, offerToken, input } });

  it("answers the workflow's result and applies its writes; a repeat of the token answers the same without running it again", async () => {
    const shop_ = await shop();
    const token = await tokenFor(shop_);
    const first = await redeem(shop_, token, { kind: "ok" });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ status: "success", redemption: { offer: "gift", method: "workflow", state: "completed" }, result: { granted: true } });
    expect(await customData(shop_, "gift")).toMatchObject({ kind: "ok", who: BUYER });
    await buyerData(shop_).customDataDelete("gift");
    const again = await redeem(shop_, token, { kind: "ok" });
    expect(again.body).toMatchObject({ result: { granted: true } });
    expect(await customData(shop_, "gift")).toBeNull();
  });

  it("a failing workflow is an error answer and nothing is applied; bad input is a 400 naming the path", async () => {
    const shop_ = await shop();
    // A throw is failed customer code: 531, as a required workflow's failure (never logged as the platform's error).
    const thrown = await redeem(shop_, await tokenFor(shop_), { kind: "throw" });
    expect(thrown.status).toBe(531);
    expect(thrown.body).toMatchObject({ status: "error", code: "workflow_error", message: expect.stringContaining("out of stock") });
    const refused = await redeem(shop_, await tokenFor(shop_), { kind: "fail" });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: "rejected_by_workflow", message: expect.stringContaining("sold out today") });
    expect(await customData(shop_, "gift")).toBeNull();
    const invalid = await redeem(shop_, await tokenFor(shop_), { kind: "ok", extra: 1 });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ code: "validation_failed", details: [{ path: "input.extra" }] });
    expect(await customData(shop_, "gift")).toBeNull();
    const deep = await call("POST", "/api/v1/offer-redemptions", {
      key: shop_.org.preview.secretKey,
      rawBody: `{"identity":{"userIdentifier":"${BUYER}"},"offerToken":"${await tokenFor(shop_)}","input":{"kind":"ok","nested":${"[".repeat(20_000)}${"]".repeat(20_000)}}}`,
      headers: { "content-type": "application/json" },
    });
    expect(deep.status, JSON.stringify(deep.body)).toBe(400);
    expect(deep.body).toMatchObject({ code: "validation_failed", details: [{ path: "input" }] });
  });

  it("a conflict answers 409 `conflict` (retry), a meter object failing at the apply 503 `meter_unavailable`; nothing is applied", async () => {
    const shop_ = await shop();
    await seedOld(shop_);
    const rewriting = workerWith(
      aroundApply(async (apply, user) => {
        await user.customDataSet("old", { rewritten: true });
        return apply();
      }),
    );
    const body = async () => ({ identity: { userIdentifier: BUYER }, offerToken: await tokenFor(shop_), input: { kind: "ok" } });
    const conflict = await rewriting("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: await body() });
    expect(conflict.status, JSON.stringify(conflict.body)).toBe(409);
    expect(conflict.body).toMatchObject({ code: "conflict", message: expect.stringContaining("The data this redemption read changed meanwhile; try again") });
    expect(await customData(shop_, "old")).toEqual({ rewritten: true });

    const broken = workerWith(aroundApply(() => Promise.reject(new Error("Durable Object is overloaded. Requests queued for too long."))));
    const unavailable = await broken("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: await body() });
    expect(unavailable.status, JSON.stringify(unavailable.body)).toBe(503);
    expect(unavailable.body).toMatchObject({ code: "meter_unavailable" });
    expect(await customData(shop_, "gift")).toBeNull();
  });

  /** Counts its runs in custom data: a write applied twice shows as 2. */
  const COUNTING_SOURCE = `export default async ({ utils }: any) => {
  const count = ((await utils.customData.get("count")) ?? 0) + 1;
  await utils.customData.set("count", count);
  return { result: { count } };
};`;

  it("the meter failing after it applied the writes: 503 'may not have been applied' (Retry-After 1); the same token retried applies nothing twice", async () => {
    const shop_ = await shop({ source: COUNTING_SOURCE });
    const token = await tokenFor(shop_);
    // The object commits the writes, then the answer is lost on the way back (an RPC error after the commit).
    const answerLost = workerWith(
      aroundApply(async (apply) => {
        await apply();
        throw new Error("Network connection lost.");
      }),
    );
    const lost = await answerLost("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: BUYER }, offerToken: token, input: {} } });
    expect(lost.status, JSON.stringify(lost.body)).toBe(503);
    expect(lost.body).toMatchObject({ code: "meter_unavailable", message: expect.stringContaining("may not have been applied; retry with the same token") });
    expect(lost.headers.get("retry-after")).toBe("1");
    expect(await customData(shop_, "count")).toBe(1);

    // The retry runs the workflow again (it reads 1, writes 2): the apply is once per token, so 2 is never written.
    const retried = await redeem(shop_, token, {});
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    expect(retried.body).toMatchObject({ redemption: { state: "completed" }, result: { count: 2 } });
    expect(await customData(shop_, "count")).toBe(1);
    // Another token is another redemption: it applies.
    const other = await redeem(shop_, await tokenFor(shop_), {});
    expect(other.body).toMatchObject({ result: { count: 2 } });
    expect(await customData(shop_, "count")).toBe(2);
  });

  it("a result that cannot be recorded after the workflow ran is logged, and the outcome answered anyway (never a 500)", async () => {
    const shop_ = await shop();
    const { services } = await subjectOf(shop_);
    const environment = (await services.lookupEnvironment(shop_.org.preview.id))!;
    const warnings: string[] = [];
    // D1 refuses the update that stores the result (the redemption row and its `started` event are written).
    const db = new Proxy(env.DB, {
      get(target, property) {
        if (property === "prepare") {
          return (sql: string) => {
            if (sql.includes("SET result = COALESCE")) throw new Error("D1_ERROR: Network connection lost.");
            return target.prepare(sql);
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const answered = await redeemOffer(
      { ...services, db, logger: { ...services.logger, warn: (event) => warnings.push(event) } },
      {
        environment,
        keyType: "secret",
        transport: {},
        body: { identity: { userIdentifier: BUYER }, offerToken: await tokenFor(shop_), input: { kind: "ok" } },
        secretsKey: env.SECRETS_KEY,
        payments: () => Promise.reject(new Error("a workflow offer needs no payments")),
        webhooks: env,
      },
    );
    expect(answered).toMatchObject({ status: "success", redemption: { offer: "gift", method: "workflow", state: "completed" }, result: { granted: true } });
    expect(await customData(shop_, "gift")).toMatchObject({ kind: "ok", who: BUYER });
    expect(warnings).toContain("redemption_result_unrecorded");
  });
});
