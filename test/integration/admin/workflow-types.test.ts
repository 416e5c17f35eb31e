/**
 * GET /api/v1/admin/workflow-types: the global workflow declarations plus the draft's slugs. That the result
 * type-checks a correct workflow and rejects a misspelled feature is test/browser/workflow-types.test.ts (the
 * TypeScript compiler runs in Node, not in workerd).
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { SYSTEM_TRIGGERS } from "../../../schema/config";
import type { SystemTriggerName } from "../../../workers/workflows/authorTypes";
import { WORKFLOW_TYPES_DTS } from "../../../workers/workflows/workflowTypesText";
import { call, createOrganization, type TestOrganization } from "../../support/api";

let org: TestOrganization;

const TYPED_DRAFT = {
  features: {
    widget: { properties: { quality: { type: "string", values: ["low", "high"], fallback: "low" }, seats: { type: "number" } } },
    reports: { properties: { credits: { type: "credits" } } },
  },
  plans: { free: { autoAssign: ["anonymous"] }, premium: { features: { widget: { quality: "high" } } } },
  surfaces: { "article-page": {} },
  triggers: { "newsletter.signup": {} },
};

beforeAll(async () => {
  org = await createOrganization("Workflow types org");
  const applied = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: TYPED_DRAFT });
  expect(applied.status).toBe(200);
});

describe("GET /api/v1/admin/workflow-types", () => {
  it("serves the global declarations, then the draft's features, plans, surfaces and triggers", async () => {
    const { status, body } = await call("GET", "/api/v1/admin/workflow-types", { key: org.adminKey });
    expect(status).toBe(200);
    expect(body.dts.startsWith(WORKFLOW_TYPES_DTS)).toBe(true);
    const declared = body.dts.slice(WORKFLOW_TYPES_DTS.length);
    expect(declared).toContain(
      [
        "    features: {",
        '        "widget": {',
        '            "enabled": MeterableProperty;',
        '            "quality": { type: "string"; value: "low" | "high"; isFallback: boolean };',
        '            "seats": Extract<ValueProperty, { type: "number" }>;',
        "        };",
        '        "reports": {',
        '            "enabled": MeterableProperty;',
        '            "credits": CreditsProperty;',
        "        };",
        "    };",
        '    plans: "free" | "premium";',
        '    surfaces: "article-page";',
        '    customTriggers: "newsletter.signup";',
      ].join("\n"),
    );
  });

  it("narrows an empty draft to no slugs at all", async () => {
    const empty = await createOrganization("Empty workflow types org");
    const { body } = await call("GET", "/api/v1/admin/workflow-types", { key: empty.adminKey });
    expect(body.dts.slice(WORKFLOW_TYPES_DTS.length)).toContain("    features: {};\n    plans: never;\n    surfaces: never;\n    customTriggers: never;");
  });

  it("serves a stored draft that does not fit today's schema, with the generic type for what it cannot read", async () => {
    const odd = await createOrganization("Odd draft org");
    // As a draft saved under older rules (or written by hand) may be stored: written to D1 directly, past validation.
    const document = {
      features: {
        widget: { properties: { quality: { type: "string", values: "low,high" }, broken: null, future: { type: "hologram" } } },
        bare: null,
        listed: { properties: ["not", "a", "record"] },
      },
      plans: ["free"],
      surfaces: null,
      triggers: "newsletter.signup",
    };
    await env.DB.prepare("INSERT OR REPLACE INTO drafts (organization_id, document, revision, updated_at) VALUES (?, ?, 1, ?)")
      .bind(odd.id, JSON.stringify(document), new Date().toISOString())
      .run();
    const { status, body } = await call("GET", "/api/v1/admin/workflow-types", { key: odd.adminKey });
    expect(status, JSON.stringify(body)).toBe(200);
    const declared = body.dts.slice(WORKFLOW_TYPES_DTS.length);
    expect(declared).toContain('            "quality": Extract<ValueProperty, { type: "string" }>;');
    expect(declared).toContain('            "broken": PropertyState;');
    expect(declared).toContain('            "future": PropertyState;');
    expect(declared).toContain('        "listed": {\n            "enabled": MeterableProperty;\n        };');
    expect(declared).toContain("    plans: never;\n    surfaces: never;\n    customTriggers: never;");
  });

  it("answers every reader of the configuration, and no publishable key", async () => {
    expect((await call("GET", "/api/v1/admin/workflow-types", { key: org.live.secretKey })).status).toBe(200);
    expect((await call("GET", "/api/v1/admin/workflow-types", { key: org.live.publishableKey })).status).toBe(403);
    expect((await call("GET", "/api/v1/admin/workflow-types")).status).toBe(401);
  });

  it("names the schema's system triggers in the author types (checked by tsc)", () => {
    expectTypeOf<SystemTriggerName>().toEqualTypeOf<(typeof SYSTEM_TRIGGERS)[number]>();
  });
});
