/**
 * POST /api/v1/admin/workflow-checks: the compiler's dry run the console's workflow editor calls before saving. It
 * must refuse exactly what version creation refuses, at the same line and column, and store nothing.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, type TestOrganization } from "../../support/api";

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Workflow checks org");
});

const check = (source: string, type = "provisioning") => call("POST", "/api/v1/admin/workflow-checks", { key: org.adminKey, body: { type, source } });

describe("POST /api/v1/admin/workflow-checks", () => {
  it("accepts a module version creation would accept, type annotations included", async () => {
    const { status, body } = await check("export default async (input: { identifier: string }): Promise<string[]> => [input.identifier];");
    expect(status).toBe(200);
    expect(body).toEqual({ ok: true });
  });

  it.each([
    [
      "a reserved name (before the import.meta it holds)",
      "export default () => [];\nconst __mos_x = import.meta;",
      "identifiers starting with __mos and a capital or an underscore are reserved for the platform (__mos_x)",
      2,
      7,
    ],
    ["import.meta", "export default () => [];\nconst meta = import.meta;", "import.meta is not available to workflows", 2, 14],
    ["a dynamic import()", "export default async () => {\n  await import('node:fs');\n  return [];\n};", "dynamic import() is not available to workflows", 2, 9],
    ["a re-export", "export * from './other.js';\nexport default () => [];", "workflows cannot re-export other modules", 1, 1],
    ["an import declaration", "import x from 'y';\nexport default () => x;", "workflows cannot import modules: a workflow is one self-contained module", 1, 1],
  ])("refuses %s with the compiler's 1-based position", async (_, source, message, line, column) => {
    const { status, body } = await check(source);
    expect(status).toBe(200);
    expect(body).toEqual({ ok: false, errors: [{ message, line, column }] });
  });

  it("reports a syntax error where version creation reports it", async () => {
    const source = "export default function () {\n  return 1 +* 2;\n}";
    const checked = await check(source);
    expect(checked.status).toBe(200);
    expect(checked.body.ok).toBe(false);
    const [error] = checked.body.errors;
    expect(error).toEqual({ message: "Unexpected token", line: 2, column: 14 });

    const applied = await call("PUT", "/api/v1/admin/workflows/broken", { key: org.adminKey, body: { type: "provisioning", source } });
    expect(applied.status).toBe(200);
    const version = await call("POST", "/api/v1/admin/versions", { key: org.adminKey, body: { description: "refused" } });
    expect(version.status).toBe(400);
    expect(version.body.details).toEqual([{ path: "workflows.broken.source", message: `Error transforming broken.ts: Unexpected token (line 2, column 14)` }]);
    await call("DELETE", "/api/v1/admin/workflows/broken", { key: org.adminKey });
  });

  it("stores nothing", async () => {
    const before = await call("GET", "/api/v1/admin/workflows", { key: org.adminKey });
    await check("export default async () => [];");
    const after = await call("GET", "/api/v1/admin/workflows", { key: org.adminKey });
    expect(after.body).toEqual(before.body);
  });

  it("bounds the body like a workflow definition", async () => {
    const tooLong = await check(`export default () => [];\n//${"x".repeat(200_000)}`);
    expect(tooLong.status).toBe(400);
    const empty = await check("");
    expect(empty.status).toBe(400);
    const badType = await check("export default () => [];", "nope");
    expect(badType.status).toBe(400);
  });
});
