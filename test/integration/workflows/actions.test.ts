/**
 * Triggers and action workflows: the queue handler called directly with `createMessageBatch` (ack / retry per
 * message, utils scoped to the message's tenant and store), end to end with the queue captured (a surface workflow
 * fires a custom trigger during a decision; the test delivers what was enqueued to the consumer, which runs the
 * action), and once through Miniflare's local queue itself.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { meterStub } from "../../../durable-objects/meter/client";
import worker from "../../../workers/index";
import type { TriggerMessage } from "../../../workers/workflows/triggers";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { eventually } from "../../support/eventually";
import { captureTriggers, type CapturedTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

const ACTIONS = {
  "remember-signup": {
    type: "action",
    triggers: ["user.signed-up"],
    source: `export default async ({ trigger, payload, env, utils }: any) => {
      await utils.customData.set("signup", { trigger, plan: payload.plan, greeting: env.GREETING ?? null });
    };`,
  },
  "count-views": recordTriggersAction(["page.viewed", "decision.made", "counters.updated", "user.added", "plans.changed"]),
  "meter-action": {
    type: "action",
    triggers: ["meter.this"],
    source: `export default async ({ payload, utils }: any) => {
      try {
        const reading = await utils.counters.consume(payload.counterId);
        await utils.customData.set("meter-action", { used: reading.consumedUnits, total: reading.totalUnits });
      } catch (error) {
        await utils.customData.set("meter-action", { error: (error as Error).message });
      }
    };`,
  },
  "meter-on-update": {
    type: "action",
    triggers: ["counters.updated"],
    source: `export default async ({ payload, utils }: any) => {
      if (!payload.identifier.startsWith("limits")) return;
      const reading = await utils.counters.consume(payload.counters[0].counterId);
      await utils.customData.set("meter-on-update", { used: reading.consumedUnits, total: reading.totalUnits });
    };`,
  },
  "always-fails": { type: "action", triggers: ["flaky.thing"], source: `export default () => { throw new Error("downstream is down"); };` },
  chained: {
    type: "action",
    triggers: ["chain.start"],
    source: `export default async ({ utils }: any) => { await utils.triggers.fire("user.signed-up", { plan: "from-chain" }); };`,
  },
  "fire-on-view": {
    type: "surface",
    surface: "hello-world",
    source: `export default async ({ identity, utils }: any) => { await utils.triggers.fire("page.viewed", { who: identity.identifier }); return { properties: { fired: true } }; };`,
  },
};

/** Custom triggers are declared with the JSON Schema of their payload. */
const TRIGGERS = {
  "user.signed-up": { schema: { type: "object", properties: { plan: { type: "string" } }, required: ["plan"] } },
  "page.viewed": { schema: { type: "object", properties: { who: { type: "string" } }, required: ["who"], additionalProperties: false } },
  "flaky.thing": {},
  "chain.start": {},
  "meter.this": {},
};

let org: TestOrganization;
let other: TestOrganization;
let versionId: string;

beforeAll(async () => {
  org = await createOrganization("Actions");
  other = await createOrganization("Actions other");
  const document = helloWorld();
  document.workflows = ACTIONS;
  document.triggers = TRIGGERS;
  document.plans.premium.stripeProductIds = ["prod_premium"];
  versionId = await publish(org.adminKey, document, [org.live.id, org.preview.id]);
  await publish(other.adminKey, document, [other.live.id]);
  await call("PUT", `/api/v1/admin/environments/${org.live.id}/variables/GREETING`, { key: org.live.secretKey, body: { value: "welcome", secret: true } });
});

let sequence = 0;
function message(body: Partial<TriggerMessage> & Pick<TriggerMessage, "trigger" | "identifier">, attempts = 1) {
  sequence += 1;
  return {
    id: `msg-${sequence}`,
    timestamp: new Date(),
    attempts,
    body: { organizationId: org.id, environmentId: org.live.id, versionId, payload: {}, firedAt: new Date().toISOString(), ...body } as TriggerMessage,
  };
}

async function deliver(messages: ReturnType<typeof message>[]) {
  const batch = createMessageBatch<TriggerMessage>("edge-monetization-triggers", messages);
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

const customData = (organizationId: string, store: string, identifier: string, key: string) =>
  meterStub(env.METER, `${organizationId}:${store}:u`, identifier).customDataGet(key);

describe("the trigger queue handler", () => {
  it("runs the listening action with trigger, payload, env and utils scoped to the user, and acks", async () => {
    const first = message({ trigger: "user.signed-up", identifier: "ada@example.com", payload: { plan: "premium" } });
    const result = await deliver([first]);
    expect(result.explicitAcks).toEqual([first.id]);
    expect(result.retryMessages).toEqual([]);
    expect(await customData(org.id, "default", "ada@example.com", "signup")).toEqual({ trigger: "user.signed-up", plan: "premium", greeting: "welcome" });
    // Other users and other tenants are untouched.
    expect(await customData(org.id, "default", "bob@example.com", "signup")).toBeNull();
    expect(await customData(other.id, "default", "ada@example.com", "signup")).toBeNull();
  });

  it("writes into the store of the message's environment type (preview vs production)", async () => {
    const preview = message({ trigger: "user.signed-up", identifier: "pre@example.com", environmentId: org.preview.id, payload: { plan: "trial" } });
    expect((await deliver([preview])).explicitAcks).toEqual([preview.id]);
    expect(await customData(org.id, "preview", "pre@example.com", "signup")).toEqual({ trigger: "user.signed-up", plan: "trial", greeting: null });
    expect(await customData(org.id, "default", "pre@example.com", "signup")).toBeNull();
  });

  it("retries a message whose action fails and acks the others of the batch", async () => {
    const failing = message({ trigger: "flaky.thing", identifier: "u-fail" }, 2);
    const fine = message({ trigger: "user.signed-up", identifier: "u-fine", payload: { plan: "basic" } });
    const result = await deliver([failing, fine]);
    expect(result.retryMessages).toEqual([{ msgId: failing.id }]);
    expect(result.explicitAcks).toEqual([fine.id]);
    expect(await customData(org.id, "default", "u-fine", "signup")).toMatchObject({ plan: "basic" });
  });

  it("acks messages nobody listens to, and messages whose environment does not belong to the organization", async () => {
    const unheard = message({ trigger: "nobody.listens", identifier: "u-1" });
    const spoofed = message({ trigger: "user.signed-up", identifier: "u-spoof", organizationId: other.id, payload: { plan: "x" } });
    const result = await deliver([unheard, spoofed]);
    expect(result.explicitAcks.sort()).toEqual([unheard.id, spoofed.id].sort());
    expect(await customData(other.id, "default", "u-spoof", "signup")).toBeNull();
    expect(await customData(org.id, "default", "u-spoof", "signup")).toBeNull();
  });

  it("utils.counters enforce the limits the firing request resolved, carried by the message", async () => {
    const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
    const counterId = `default:${featureId}.enabled`;
    const limited = message({
      trigger: "meter.this",
      identifier: "u-meter",
      payload: { counterId },
      counters: [[counterId, { limit: 5, period: "lifetime", uniqueResources: false }]],
    });
    expect((await deliver([limited])).explicitAcks).toEqual([limited.id]);
    expect(await customData(org.id, "default", "u-meter", "meter-action")).toEqual({ used: 1, total: 5 });

    // Without limits from the firing request there is nothing safe to enforce: a clear error, not a guess.
    const bare = message({ trigger: "meter.this", identifier: "u-meter-bare", payload: { counterId } });
    expect((await deliver([bare])).explicitAcks).toEqual([bare.id]);
    expect(await customData(org.id, "default", "u-meter-bare", "meter-action")).toEqual({ error: `counter ${counterId} is not metered for this user (none of their plans, as resolved for this call, gives it a limit)` });
  });

  it("acks a message whose version does not exist (nothing could ever run it)", async () => {
    const unknownVersion = message({ trigger: "user.signed-up", identifier: "u-v", versionId: "ver_doesnotexist" });
    expect((await deliver([unknownVersion])).explicitAcks).toEqual([unknownVersion.id]);
  });
});

describe("triggers end to end", () => {
  let triggers: CapturedTriggers;
  beforeEach(() => {
    triggers = captureTriggers();
  });
  afterEach(async () => {
    await triggers.restore();
  });

  it("an action's utils.counters enforce the plan limits of the decision that fired it", async () => {
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: "limits@example.com" } },
    });
    expect(decision.status).toBe(200);
    await triggers.deliver();
    // The decision consumed one of the Registered plan's 3 widgets; the action consumes a second under the same limit.
    expect(await customData(org.id, "default", "limits@example.com", "meter-on-update")).toEqual({ used: 2, total: 3 });
  });

  it("a custom trigger fired by a surface workflow and the decision.made system trigger run their action", async () => {
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: "viewer@example.com" } },
    });
    expect(decision.status).toBe(200);
    expect(decision.body.surfaceBehavior.properties).toEqual({ fired: true });
    await triggers.deliver();
    const seen = (trigger: string) => customData(org.id, "default", "viewer@example.com", `seen:${trigger}`) as Promise<unknown[] | null>;
    expect(await seen("page.viewed")).toEqual([{ who: "viewer@example.com" }]);
    expect(await seen("decision.made")).toEqual([expect.objectContaining({ eventId: decision.body.eventId, kind: "surface_decision", identifier: "viewer@example.com" })]);
    expect(await seen("counters.updated")).toEqual([
      expect.objectContaining({ eventId: decision.body.eventId, counters: [expect.objectContaining({ consumedInRequest: true, consumedUnits: 1 })] }),
    ]);
    expect(await seen("user.added")).toEqual([{ eventId: decision.body.eventId, identifier: "viewer@example.com", authType: "provided" }]);
    // The second decision for the same user is not a new user.
    await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: "viewer@example.com" } } });
    await triggers.deliver();
    expect(await seen("counters.updated")).toHaveLength(2);
    expect(await seen("user.added")).toHaveLength(1);
    expect(await seen("plans.changed")).toBeNull();

    // Buying Premium changes the user's plans: the next decision fires plans.changed once.
    await call("PUT", `/api/v1/admin/environments/${org.live.id}/customers/viewer@example.com`, { key: org.live.secretKey, body: { stripeProductIds: ["prod_premium"] } });
    const upgraded = await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: "viewer@example.com" } } });
    await triggers.deliver();
    expect(await seen("plans.changed")).toEqual([{ eventId: upgraded.body.eventId, identifier: "viewer@example.com", from: ["registered"], to: ["premium", "registered"] }]);
  });

  it("an action may fire a trigger that runs another action", async () => {
    const start = message({ trigger: "chain.start", identifier: "chain@example.com" });
    expect((await deliver([start])).explicitAcks).toEqual([start.id]);
    // The action's trigger went to the (captured) queue; delivering it runs the action listening to it.
    expect(triggers.sent.map((sent) => [sent.trigger, sent.depth])).toEqual([["user.signed-up", 1]]);
    await triggers.deliver();
    expect(await customData(org.id, "default", "chain@example.com", "signup")).toEqual({ trigger: "user.signed-up", plan: "from-chain", greeting: "welcome" });
  });
});

describe("triggers through Miniflare's local queue", () => {
  it("a decision's triggers reach the queue consumer configured in wrangler.toml", async () => {
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: org.live.secretKey,
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: "queued@example.com" } },
    });
    expect(decision.status).toBe(200);
    // Polled: Miniflare delivers the batch when its own timer fires (max_batch_timeout) and offers no hook to await
    // that delivery. The consumer handles a batch's messages in order and page.viewed (fired by the surface workflow)
    // is the last of them, so once it is recorded the whole batch has run.
    const seen = (trigger: string) => customData(org.id, "default", "queued@example.com", `seen:${trigger}`) as Promise<unknown[] | null>;
    expect(await eventually(() => seen("page.viewed"), (value) => Array.isArray(value) && value.length > 0)).toEqual([{ who: "queued@example.com" }]);
    expect(await seen("decision.made")).toEqual([expect.objectContaining({ eventId: decision.body.eventId })]);
    expect(await seen("counters.updated")).toHaveLength(1);
    expect(await seen("user.added")).toHaveLength(1);
  });
});

describe("workflow declarations", () => {
  it("refuses a second surface workflow for a surface, or a second component workflow for a component (it would never run)", async () => {
    const organization = await createOrganization("Duplicate behaviour workflows");
    const document = helloWorld();
    document.surfaces["hello-world"].components = { banner: { name: "Banner" } };
    document.workflows = {
      first: { type: "surface", surface: "hello-world", source: "export default () => ({});" },
      second: { type: "surface", surface: "hello-world", source: "export default () => ({});" },
      "banner-a": { type: "component", surface: "hello-world", component: "banner", source: "export default () => ({});" },
      "banner-b": { type: "component", surface: "hello-world", component: "banner", source: "export default () => ({});" },
    };
    const refused = await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: document });
    expect(refused.status).toBe(400);
    expect(refused.body.details).toEqual([
      { path: "workflows.second.surface", message: "surface hello-world already has workflow first: one workflow decides it" },
      { path: "workflows.banner-b.component", message: "component hello-world.banner already has workflow banner-a: one workflow decides it" },
    ]);
  });
});

describe("custom trigger declarations", () => {
  it("refuses an action listening to an undeclared trigger, with its path", async () => {
    const organization = await createOrganization("Undeclared trigger");
    const document = helloWorld();
    document.workflows = { listener: { type: "action", triggers: ["decision.made", "nobody.declared.this"], source: "export default () => {};" } };
    const refused = await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: document });
    expect(refused.status).toBe(400);
    expect(refused.body.details).toEqual([{ path: "workflows.listener.triggers[1]", message: expect.stringMatching(/unknown trigger nobody.declared.this/) }]);
  });

  it("refuses regular expressions in trigger schemas (they would run on the platform's shared isolate), wherever they nest", async () => {
    const organization = await createOrganization("Regex trigger schema");
    const refusedAt = async (schema: Record<string, unknown>) => {
      const document = helloWorld();
      document.triggers = { "page.viewed": { schema } };
      const response = await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: document });
      expect(response.status).toBe(400);
      expect(response.body.details[0].message).toMatch(/not supported in trigger schemas|limited to 8192 bytes/);
      return response.body.details[0].path;
    };
    expect(await refusedAt({ type: "string", pattern: "^(a+)+$" })).toBe("triggers.page.viewed.schema.pattern");
    expect(await refusedAt({ type: "object", properties: { who: { anyOf: [{ type: "number" }, { type: "string", pattern: "x" }] } } })).toBe(
      "triggers.page.viewed.schema.properties.who.anyOf[1].pattern",
    );
    expect(await refusedAt({ type: "object", patternProperties: { "^a": {} } })).toBe("triggers.page.viewed.schema.patternProperties");
    // Wherever a validator could read one: non-string values, array items, draft-7 dependencies, unknown keywords…
    expect(await refusedAt({ type: "string", pattern: ["^(a+)+$"] })).toBe("triggers.page.viewed.schema.pattern");
    expect(await refusedAt({ type: "array", items: [{ type: "string", pattern: "x" }] })).toBe("triggers.page.viewed.schema.items[0].pattern");
    expect(await refusedAt({ type: "object", dependencies: { a: { properties: { b: { pattern: "x" } } } } })).toBe(
      "triggers.page.viewed.schema.dependencies.a.properties.b.pattern",
    );
    expect(await refusedAt({ x: { pattern: "x" } })).toBe("triggers.page.viewed.schema.x.pattern");
    // …and references, whose chains fan out exponentially.
    expect(await refusedAt({ $defs: { a: { type: "string" } }, allOf: [{ $ref: "#/$defs/a" }] })).toBe("triggers.page.viewed.schema.allOf[0].$ref");
    expect(await refusedAt({ type: "object", description: "x".repeat(9000) })).toBe("triggers.page.viewed.schema");
    // uniqueItems compares every item with every other: quadratic on the shared isolate.
    expect(await refusedAt({ type: "array", uniqueItems: true })).toBe("triggers.page.viewed.schema.uniqueItems");
    // Names and data are not keywords: a property called "pattern", a default that holds one.
    const named = helloWorld();
    named.triggers = { "page.viewed": { schema: { type: "object", properties: { pattern: { type: "string" }, $ref: {} }, default: { pattern: "x" }, enum: [{ $ref: 1 }] } } };
    expect((await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: named })).status).toBe(200);
    // A property that happens to be called "pattern" is data, not the keyword.
    const document = helloWorld();
    document.triggers = { "page.viewed": { schema: { type: "object", properties: { pattern: { type: "string" } } } } };
    expect((await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: document })).status).toBe(200);
  });

  it("a draft saved under older rules (a pattern in a trigger schema) can still be read, is refused as a version, and can be replaced", async () => {
    const organization = await createOrganization("Draft from older rules");
    const legacy = helloWorld();
    legacy.triggers = { "page.viewed": { schema: { type: "string", pattern: "^(a+)+$" } } };
    await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: helloWorld() });
    const current = await call("GET", "/api/v1/admin/config", { key: organization.live.secretKey });
    const stored = { ...current.body, triggers: legacy.triggers };
    await env.DB.prepare("UPDATE drafts SET document = ? WHERE organization_id = ?").bind(JSON.stringify(stored), organization.id).run();

    const read = await call("GET", "/api/v1/admin/config", { key: organization.live.secretKey });
    expect(read.status).toBe(200);
    expect(read.body.triggers["page.viewed"].schema.pattern).toBe("^(a+)+$");
    const version = await call("POST", "/api/v1/admin/versions", { key: organization.adminKey, body: { description: "x" } });
    expect(version.status).toBe(400);
    expect(version.body.details[0].path).toBe("triggers.page.viewed.schema.pattern");
    const replaced = await call("PUT", "/api/v1/admin/config", { key: organization.adminKey, body: helloWorld() });
    expect(replaced.status).toBe(200);
    expect((await call("POST", "/api/v1/admin/versions", { key: organization.adminKey, body: { description: "fixed" } })).status).toBe(201);

    // Even a structurally broken stored draft — null entries, a schema nested 5,000 levels — is readable and
    // replaceable, refuses piecemeal edits with a 409, and never answers 500.
    let deep: Record<string, unknown> = {};
    for (let level = 0; level < 5000; level++) deep = { default: deep };
    const broken = { ...stored, features: [], plans: { p: null, q: { name: "Q" } }, triggers: { deep: { schema: deep } } };
    await env.DB.prepare("UPDATE drafts SET document = ? WHERE organization_id = ?").bind(JSON.stringify(broken), organization.id).run();
    const key = organization.adminKey;
    const brokenRead = await call("GET", "/api/v1/admin/config", { key });
    expect(brokenRead.status).toBe(200);
    expect(brokenRead.body.plans).toEqual({ q: { name: "Q" } });
    expect(brokenRead.body.triggers).toEqual({ deep: {} });
    expect((await call("GET", "/api/v1/admin/config?format=yaml", { key })).status).toBe(200);
    expect((await call("POST", "/api/v1/admin/versions", { key, body: { description: "x" } })).status).toBe(400);
    const edit = await call("PUT", "/api/v1/admin/features/extra", { key, body: { name: "Extra" } });
    expect(edit.status).toBe(409);
    expect(edit.body).toMatchObject({ status: "error", code: "conflict", message: expect.stringMatching(/older rules/) });
    expect((await call("POST", "/api/v1/admin/features/widget/rename", { key, body: { slug: "gadget" } })).status).toBe(409);
    expect((await call("PUT", "/api/v1/admin/config?dryRun=true", { key, body: helloWorld() })).status).toBe(200);
    expect((await call("PUT", "/api/v1/admin/config", { key, body: helloWorld() })).status).toBe(200);
    expect((await call("PUT", "/api/v1/admin/features/extra", { key, body: { name: "Extra" } })).status).toBe(200);
  });

  it("a workflow firing a payload that does not match the schema, an undeclared or a system trigger fails and is recorded", async () => {
    const organization = await createOrganization("Bad payloads");
    const document = helloWorld();
    document.triggers = { "page.viewed": TRIGGERS["page.viewed"] };
    document.workflows = {
      "fire-wrong": {
        type: "surface",
        surface: "hello-world",
        source: `export default async ({ utils, identity }: any) => {
          const outcomes: Record<string, string> = {};
          for (const [name, payload] of [["page.viewed", { who: 42 }], ["not.declared", {}], ["decision.made", {}], ["page.viewed", { who: identity.identifier }]] as const) {
            try { await utils.triggers.fire(name, payload); outcomes[name + ":" + JSON.stringify(payload)] = "ok"; }
            catch (error: any) { outcomes[name + ":" + JSON.stringify(payload)] = error.message; }
          }
          return { properties: outcomes };
        };`,
      },
    };
    await publish(organization.adminKey, document, [organization.live.id]);
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: organization.live.secretKey,
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: "payload@example.com" } },
    });
    expect(decision.status).toBe(200);
    const outcomes = decision.body.surfaceBehavior.properties;
    expect(outcomes['page.viewed:{"who":42}']).toMatch(/does not match its schema/);
    expect(outcomes["not.declared:{}"]).toMatch(/unknown trigger not.declared/);
    expect(outcomes["decision.made:{}"]).toMatch(/system trigger/);
    expect(outcomes['page.viewed:{"who":"payload@example.com"}']).toBe("ok");
  });
});

