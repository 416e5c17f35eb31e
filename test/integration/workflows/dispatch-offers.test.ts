/**
 * The two utils of offers in the production runtime (Workers for Platforms), which cannot be served from a capability
 * alone: `utils.offers.list` (the platform resolves the eligible offers before the call, the script filters them) and
 * a redemption workflow's staged writes (staged in the script, returned with its result, applied by the platform only
 * once it succeeded). Each runs the real pipeline twice — Worker Loader and dispatch — against a stub namespace that
 * serves the uploaded scripts through the Worker Loader, as dispatch.test.ts does.
 */
import { env, exports } from "cloudflare:workers";
import type { Context } from "hono";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { meterStub, userStoreKey } from "../../../durable-objects/meter/client";
import type { AppEnv } from "../../../workers/context";
import { runDecision } from "../../../workers/decision/pipeline";
import { runRedemptionWorkflow } from "../../../workers/decision/redemptionWorkflow";
import { identify, loadConfig } from "../../../workers/decision/stages";
import type { OfferTokenClaims } from "../../../workers/engine/offerTypes";
import { buildServices, type ServiceOverrides } from "../../../workers/middleware/services";
import { verifyOfferToken } from "../../../workers/offers/tokens";
import { preparedSnapshotFor } from "../../../workers/services/snapshots";
import { uploadWorkflowScripts } from "../../../workers/workflows/dispatchRunner";
import { UTILS_HOST } from "../../../workers/workflows/capability";
import { STAGED_BYTES_MESSAGE, STAGED_KEYS_MESSAGE } from "../../../workers/workflows/scopedUtils";
import { createOrganization, publish, type TestOrganization } from "../../support/api";
import { trackedExecutionContext } from "../../support/background";
import { newsSite } from "../../support/examples";
import { type CapturedTriggers, captureTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

/**
 * A dispatch namespace holding what the deploy path uploaded for `environmentId`, each call in a Worker Loader isolate
 * whose outbound side is the platform's WorkflowOutbound bound to the call's capability (the outbound Worker's job).
 */
async function dispatchEnv(versionId: string, environmentId: string): Promise<{ env: Env; calls: string[] }> {
  const { snapshot } = await preparedSnapshotFor(env.DB, versionId);
  const scripts = new Map<string, { metadata: { compatibility_date: string; compatibility_flags: string[] }; modules: Record<string, string> }>();
  const fakeApi = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    const form = await request.formData();
    const modules: Record<string, string> = {};
    let metadata = { compatibility_date: "", compatibility_flags: [] as string[] };
    for (const [name, value] of form.entries()) {
      const text = await (value as unknown as File).text();
      if (name === "metadata") metadata = JSON.parse(text);
      else modules[name] = text;
    }
    scripts.set(new URL(request.url).pathname.split("/").at(-1)!, { metadata, modules });
    return Response.json({ success: true, errors: [], messages: [], result: {} });
  }) as typeof fetch;
  await uploadWorkflowScripts(snapshot, environmentId, { accountId: "acc", namespace: "ns", apiToken: "token", fetch: fakeApi });
  const calls: string[] = [];
  const namespace = {
    get(name: string, _args?: unknown, options?: { outbound?: { mos?: string } }) {
      const script = scripts.get(name);
      if (!script) throw new Error(`Worker ${name} not found in dispatch namespace`);
      calls.push(name);
      const mos = options?.outbound?.mos;
      const worker = env.LOADER.get(`dispatch-offers:${name}:${mos ? crypto.randomUUID() : "closed"}`, () => ({
        compatibilityDate: script.metadata.compatibility_date,
        compatibilityFlags: script.metadata.compatibility_flags,
        mainModule: "harness.js",
        modules: script.modules,
        env: {},
        globalOutbound: mos ? exports.WorkflowOutbound({ props: { capability: mos } }) : null,
      }));
      return { fetch: (input: RequestInfo | URL, init?: RequestInit) => worker.getEntrypoint().fetch(new Request(input, init)) } as unknown as Fetcher;
    },
  };
  return { env: { ...env, DISPATCHER: namespace, WORKFLOW_OUTBOUND_WORKER: "edge-monetization-outbound" } as unknown as Env, calls };
}

/** The request's Services, as the route builds them, over `bindings` (the Worker's own, or with a dispatch namespace). */
function servicesOver(bindings: Env, overrides: ServiceOverrides = {}) {
  return buildServices({ env: bindings, executionCtx: trackedExecutionContext(), get: () => undefined } as unknown as Context<AppEnv>, overrides);
}

/** A view without what differs between two mints of the same offer: its token and when the token expires. */
function unsigned(view: Record<string, unknown>) {
  const { token: _, expiresAt: __, ...rest } = view;
  return rest;
}

describe("utils.offers.list in dispatched surface and component workflows", () => {
  const LISTER = `export default async ({ utils }: any) => {
    const all = await utils.offers.list();
    const inGroups = await utils.offers.list({ groups: ["sidebar-group", "paywall", "nope"] });
    const named = await utils.offers.list({ offers: ["yearly", "used-up", "nope"] });
    const both = await utils.offers.list({ groups: ["paywall"], offers: ["germany", "yearly"] });
    let refused = "";
    try { await utils.offers.list({ groups: "paywall" }); } catch (error) { refused = (error as Error).message; }
    all[0].title = "changed by the workflow";
    const again = await utils.offers.list();
    return { properties: { all: again, inGroups, named, both, refused } };
  };`;

  const SIDEBAR = `export default async ({ utils, offers }: any) => ({ properties: { listed: await utils.offers.list({ groups: Object.keys(offers) }) } });`;

  const EARLY = `export default async ({ utils }: any) => {
    try {
      await utils.offers.list();
      return { label: "listed" };
    } catch (error) {
      return { label: String((error as Error).message).slice(0, 200) };
    }
  };`;

  let org: TestOrganization;
  let versionId: string;

  beforeAll(async () => {
    org = await createOrganization("Dispatched offers");
    const checkout = (stripePriceId: string) => ({ method: "checkout", plan: "premium", stripePriceId });
    versionId = await publish(
      org.adminKey,
      {
        features: {
          articles: {
            properties: {
              enabled: { type: "enabled", fallback: "off", onMeterFailure: "open" },
              label: { type: "string", fallback: "" },
            },
          },
        },
        plans: {
          anonymous: { autoAssign: ["anonymous"], features: { articles: { enabled: { metered: { limit: 100, period: "month" } } } } },
          premium: { stripeProductIds: ["prod_premium"], features: { articles: { enabled: "on" } } },
        },
        surfaces: {
          "article-page": { consumes: ["articles.enabled"], offerGroups: ["paywall"], components: { sidebar: { cssSelector: "#sidebar", offerGroups: ["sidebar-group"] } } },
        },
        offers: {
          "used-up": {
            presentation: { title: "Keep reading" },
            price: { currency: "usd", amount: 999, interval: "month" },
            redemption: checkout("price_monthly"),
            targeting: { featureState: { property: "articles.enabled", hasAccess: false } },
          },
          yearly: {
            presentation: { title: "A year of reading", callToAction: "Subscribe" },
            price: { currency: "usd", amount: 9900, interval: "year" },
            redemption: checkout("price_yearly"),
            targeting: { plans: { include: ["anonymous"], exclude: ["premium"] } },
            variants: { everyone: { testGroups: { from: 0, to: 99 }, presentation: { title: "A year, for everyone" }, price: { currency: "usd", amount: 8900, interval: "year" }, stripePriceId: "price_everyone" } },
          },
          germany: {
            presentation: { title: "Angebot für Deutschland" },
            price: { currency: "eur", amount: 500, interval: "month" },
            redemption: checkout("price_eur"),
            targeting: { countries: ["DE"] },
          },
        },
        offerGroups: {
          paywall: { slots: [{ offers: ["used-up", "yearly"] }, { offers: ["germany", "yearly"] }] },
          "sidebar-group": { slots: [{ offers: ["germany"] }] },
        },
        workflows: {
          lister: { type: "surface", surface: "article-page", source: LISTER, deadlineMs: 5_000 },
          sidebar: { type: "component", surface: "article-page", component: "sidebar", source: SIDEBAR, deadlineMs: 5_000 },
          early: { type: "feature", feature: "articles", source: EARLY, deadlineMs: 5_000 },
        },
      },
      [org.live.id],
    );
  });

  async function decide(bindings: Env, identifier: string) {
    const services = servicesOver(bindings);
    const environment = (await services.lookupEnvironment(org.live.id))!;
    return runDecision(services, {
      environment,
      keyType: "secret",
      body: { identity: { anonymousIdentifier: identifier }, cloudflare: { cf: { country: "DE" } } },
      transport: {},
      kind: "surface_decision",
      surfaceSlug: "article-page",
    }) as Promise<Record<string, any>>;
  }

  it("answers the same views as the loader runtime, each with a token minted by the platform for this identity", async () => {
    const dispatch = await dispatchEnv(versionId, org.live.id);
    const identifier = `visitor-${crypto.randomUUID()}`;
    const loaded = await decide(env, identifier);
    const dispatched = await decide(dispatch.env, identifier);
    // All three workflows really ran as dispatched scripts.
    expect(new Set(dispatch.calls).size).toBe(3);

    const listed = (decision: Record<string, any>) => {
      const { all, inGroups, named, both, refused } = decision.surfaceBehavior.properties;
      return {
        all: all.map(unsigned),
        inGroups: inGroups.map(unsigned),
        named: named.map(unsigned),
        both: both.map(unsigned),
        refused,
        sidebar: decision.componentBehaviors.sidebar.properties.listed.map(unsigned),
        early: decision.features.articles.properties.label.value,
      };
    };
    const expected = listed(loaded);
    expect(expected.all.map((view: { offer: string }) => view.offer)).toEqual(["germany", "yearly"]);
    expect(expected.inGroups.map((view: { offer: string }) => view.offer)).toEqual(["germany", "yearly"]);
    expect(expected.named.map((view: { offer: string }) => view.offer)).toEqual(["yearly"]);
    expect(expected.both.map((view: { offer: string }) => view.offer)).toEqual(["yearly", "germany"]);
    expect(expected.all[1]).toMatchObject({ offer: "yearly", variant: "everyone", title: "A year, for everyone", price: { amount: 8900 } });
    expect(expected.refused).toBe("groups must be a list of at most 100 slugs");
    expect(expected.sidebar.map((view: { offer: string }) => view.offer)).toEqual(["germany"]);
    expect(expected.early).toMatch(/available to surface and component workflows only/);
    expect(listed(dispatched)).toEqual(expected);

    for (const view of [...dispatched.surfaceBehavior.properties.all, ...dispatched.componentBehaviors.sidebar.properties.listed]) {
      const checked = await verifyOfferToken(env.SECRETS_KEY, org.live.id, view.token, Date.now());
      expect(checked.ok && checked.claims).toMatchObject({ offer: view.offer, variant: view.variant, group: null, slot: null, sub: identifier, anon: true });
    }
  });
});

const BUYER = "buyer@example.com";

/** Writes first (sets `gift`, deletes `old`, fires gift.redeemed), then succeeds or fails as `input.kind` says. */
const REDEEM_SOURCE = `export default async ({ input, offer, identity, utils }: any) => {
  const before = await utils.customData.get("old");
  await utils.customData.set("gift", { kind: input.kind, offer: offer.slug, who: identity.identifier });
  const deleted = await utils.customData.delete("old");
  await utils.triggers.fire("gift.redeemed", { kind: input.kind });
  if (input.kind === "throw") throw new Error("out of stock");
  if (input.kind === "fail") return { fail: { message: "sold out today" } };
  if (input.kind === "slow") await new Promise((resolve) => setTimeout(resolve, 5_000));
  if (input.kind === "counter") {
    try {
      await utils.counters.consume(input.counterId);
      return { result: { counted: true } };
    } catch (error) {
      return { result: { counterError: (error as Error).message } };
    }
  }
  if (input.kind === "claim") {
    // Claim once: what it read decides what it writes.
    if (await utils.customData.get("claimed")) return { fail: { message: "already claimed" } };
    await utils.customData.set("claimed", identity.identifier);
    return { result: { claimed: true } };
  }
  if (input.kind === "many" || input.kind === "big") {
    // Past the stage's bounds: 100 keys, 512 KiB of values (each value here is about 60 KiB).
    const value = input.kind === "big" ? "x".repeat(60_000) : 1;
    try {
      for (let i = 0; i < 120; i++) await utils.customData.set("k" + i, value);
    } catch (error) {
      return { result: { stageError: (error as Error).message } };
    }
  }
  if (input.kind === "checkout") {
    try {
      return { result: { checkout: await utils.payments.createCheckoutSession({ plan: "premium", successUrl: "https://shop.test/ok", cancelUrl: "https://shop.test/no" }) } };
    } catch (error) {
      return { result: { checkoutError: (error as Error).message } };
    }
  }
  if (input.kind === "bypass") {
    // Around the harness, straight to the platform: refused, since the stage is the script's.
    const response = await fetch("https://${UTILS_HOST}/v1/customDataSet", { method: "POST", body: JSON.stringify({ args: ["sneaky", 1] }) });
    return { result: { bypass: await response.json() } };
  }
  if (input.kind === "tamper") {
    // Customer code shares the harness's globals: a write it slips past the harness's checks fails the whole call.
    const set = Map.prototype.set;
    Map.prototype.set = function (key: unknown, value: unknown) { return set.call(this, "k".repeat(2_000), value); };
    await utils.customData.set("other", 1);
    Map.prototype.set = set;
  }
  return { result: { granted: true, before, gift: await utils.customData.get("gift"), old: await utils.customData.get("old"), deleted } };
};`;

describe("redemption workflows' staged writes in the dispatch runtime", () => {
  let triggers: CapturedTriggers;
  beforeEach(() => {
    triggers = captureTriggers();
  });
  afterEach(() => triggers.restore());

  async function shop() {
    const org = await createOrganization("Dispatched redemptions");
    const document = newsSite();
    document.workflows = {
      redeem: { type: "redemption", source: REDEEM_SOURCE, deadlineMs: 2_000 },
      "record-gifts": recordTriggersAction(["gift.redeemed"]),
    };
    document.triggers = { "gift.redeemed": { schema: { type: "object", properties: { kind: { type: "string" } } } } };
    document.offers = {
      gift: {
        presentation: { title: "A free gift" },
        price: { currency: "usd", amount: 0 },
        redemption: { method: "workflow", workflow: "redeem", schema: { type: "object", required: ["kind"] } },
      },
    };
    const versionId = await publish(org.adminKey, document, [org.preview.id]);
    const dispatch = await dispatchEnv(versionId, org.preview.id);
    const buyer = meterStub(env.METER, userStoreKey(org.id, "preview", true), BUYER);
    await buyer.customDataSet("old", { stale: true });

    const redeem = async (input: Record<string, unknown>, bindings = dispatch.env, overrides: ServiceOverrides = {}) => {
      const services = servicesOver(bindings, overrides);
      const environment = (await services.lookupEnvironment(org.preview.id))!;
      const subject = await identify(services, await loadConfig(services, { environment, keyType: "secret", body: { identity: { userIdentifier: BUYER } }, transport: {} }));
      const offer = subject.prepared.snapshot.offers!.find((candidate) => candidate.slug === "gift")!;
      const now = Math.floor(Date.now() / 1000);
      const claims: OfferTokenClaims = { env: org.preview.id, offer: "gift", variant: null, group: null, slot: null, sub: BUYER, anon: false, amt: 0, cur: "usd", int: null, fp: offer.fingerprint, jti: `jti_${crypto.randomUUID()}`, iat: now, exp: now + 1800 };
      const counterId = `preview:${subject.prepared.snapshot.features[0]!.id}.enabled`;
      return runRedemptionWorkflow(services, subject, offer, claims, { counterId, ...input });
    };
    return { redeem, dispatch, buyer, customData: (key: string) => buyer.customDataGet(key) as Promise<unknown> };
  }

  /** The real meter, with a write to `claimed` made by another request right before the redemption's writes are applied. */
  let rewrites = 0;
  const claimedMeanwhile: ServiceOverrides = {
    meter: (real) => ({
      ...real,
      stub: (key) => {
        const user = real.stub(key);
        return {
          customDataGet: (dataKey: string) => user.customDataGet(dataKey),
          customDataApply: async (writes: unknown[], expected?: unknown[]) => {
            await user.customDataSet("claimed", `someone-else-${++rewrites}`);
            return user.customDataApply(writes as never, expected as never);
          },
        } as unknown as ReturnType<typeof real.stub>;
      },
    }),
  };

  it("a workflow that succeeds: reads see its own writes, which the platform applies together, and its trigger is sent", async () => {
    const { redeem, dispatch, customData } = await shop();
    const outcome = await redeem({ kind: "ok" });
    const gift = { kind: "ok", offer: "gift", who: BUYER };
    expect(outcome).toEqual({ ok: true, result: { granted: true, before: { stale: true }, gift, old: null, deleted: true } });
    expect(dispatch.calls).toHaveLength(2); // the outbound probe, then the call
    expect(await customData("gift")).toEqual(gift);
    expect(await customData("old")).toBeNull();
    await triggers.deliver();
    expect(triggers.sent.map((message) => [message.trigger, message.payload])).toEqual([["gift.redeemed", { kind: "ok" }]]);
  });

  it("a workflow that writes then throws, refuses, times out or slips a bad write past the harness leaves nothing behind", async () => {
    const { redeem, customData } = await shop();
    const expected = {
      throw: { kind: "threw", reason: expect.stringContaining("out of stock") },
      fail: { kind: "refused", reason: "sold out today" },
      slow: { kind: "timeout", reason: expect.any(String) },
      tamper: { kind: "threw", reason: "custom data keys must be strings of 1-999 characters" },
    } as const;
    for (const [kind, failure] of Object.entries(expected)) {
      expect(await redeem({ kind }), kind).toEqual({ ok: false, ...failure });
    }
    expect(await customData("gift")).toBeNull();
    expect(await customData("old")).toEqual({ stale: true });
    await triggers.deliver();
    expect(triggers.sent).toEqual([]);
  });

  it("refuses counters and serves payments as the loader runtime does; refuses writes sent around the harness", async () => {
    const { redeem, customData } = await shop();
    const counter = await redeem({ kind: "counter" });
    expect(counter).toMatchObject({ ok: true, result: { counterError: expect.stringContaining("not available to redemption workflows") } });
    expect(counter).toEqual(await redeem({ kind: "counter" }, env));
    // Payments are not read-only for redemptions (no Stripe here: the provider's own answer, in both runtimes).
    const checkout = await redeem({ kind: "checkout" });
    expect(JSON.stringify(checkout)).not.toContain("read-only");
    expect(checkout).toEqual(await redeem({ kind: "checkout" }, env));
    expect(await redeem({ kind: "bypass" })).toMatchObject({
      ok: true,
      result: { bypass: { ok: false, error: expect.stringContaining("staged in its script and travel with its result") } },
    });
    expect(await customData("sneaky")).toBeNull();
  });

  it("carries what the script read back with its writes: a value changed meanwhile is a conflict, as in the loader runtime", async () => {
    const { redeem, buyer, customData } = await shop();
    const conflict = { ok: false, kind: "conflict", reason: expect.stringContaining('"claimed" changed while the workflow ran') };
    // Both read "not claimed"; another request claims before their writes are applied.
    expect(await redeem({ kind: "claim" }, undefined, claimedMeanwhile)).toEqual(conflict);
    expect(await customData("claimed")).toBe(`someone-else-${rewrites}`);
    await buyer.customDataDelete("claimed");
    expect(await redeem({ kind: "claim" }, env, claimedMeanwhile)).toEqual(conflict);
    expect(await customData("claimed")).toBe(`someone-else-${rewrites}`);
    expect(await customData("gift")).toBeNull();
    expect(await customData("old")).toEqual({ stale: true });
    // Nobody claims meanwhile: the claim applies, and the next one is refused.
    await buyer.customDataDelete("claimed");
    expect(await redeem({ kind: "claim" })).toEqual({ ok: true, result: { claimed: true } });
    expect(await customData("claimed")).toBe(BUYER);
    expect(await redeem({ kind: "claim" })).toEqual({ ok: false, kind: "refused", reason: "already claimed" });
  });

  it("bounds what the script stages as the loader runtime does: 100 keys, 512 KiB of values, refused at set", async () => {
    const { redeem, customData } = await shop();
    const many = await redeem({ kind: "many" });
    expect(many).toEqual({ ok: true, result: { stageError: STAGED_KEYS_MESSAGE } });
    expect(many).toEqual(await redeem({ kind: "many" }, env));
    expect(await customData("k97")).toBe(1);
    expect(await customData("k98")).toBeNull();
    const big = await redeem({ kind: "big" });
    expect(big).toEqual({ ok: true, result: { stageError: STAGED_BYTES_MESSAGE } });
    expect(big).toEqual(await redeem({ kind: "big" }, env));
  });
});
