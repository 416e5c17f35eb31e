/**
 * The console under its own CSP (console/dist/_headers, scripts/build-console.mjs): the headers are served, and the
 * heaviest page — Monaco with its TypeScript worker — runs under them (a refused script, style or worker is a console
 * error, which fails the test).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { baseUrl, createOrganization, openConsole, signIn, type BrowserOrganization } from "./support";

let org: BrowserOrganization;

beforeAll(async () => {
  org = await createOrganization("Console CSP org");
});

describe("the console's CSP", () => {
  it("is sent with the console's pages", async () => {
    const response = await fetch(`${baseUrl}/console/`);
    expect(response.status).toBe(200);
    const policy = response.headers.get("content-security-policy") ?? "";
    // The page's scripts and workers come from the console's own files only: not from the whole origin, which tenants'
    // endpoints share.
    expect(policy).toContain(`script-src ${baseUrl}/console/assets/`);
    expect(policy).toMatch(new RegExp(`worker-src ${baseUrl}/console/assets/( |;|$)`));
    expect(policy).not.toMatch(/(script|worker)-src[^;]*'self'/);
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).not.toMatch(/script-src[^;]*unsafe/);
    // /console and /console/index.html end up on the same page, with the same policy.
    const index = await fetch(`${baseUrl}/console/index.html`);
    expect(index.headers.get("content-security-policy")).toBe(policy);
    expect(await index.text()).toContain('<div id="root">');
    // The assets keep the build's headers.
    const html = await (await fetch(`${baseUrl}/console/`)).text();
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await fetch(`${baseUrl}${script}`)).status).toBe(200);
  });

  it("lets the workflow editor's TypeScript worker run", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.getByTestId("nav-workflows").click();
    await page.getByTestId("workflow-new-slug").fill("csp-check");
    await page.getByTestId("workflow-new").click();
    const editor = page.getByTestId("workflow-editor").locator(".monaco-editor");
    await editor.waitFor();
    await editor.click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("\nconst wrong: number = 'not a number';\n");
    // Only the TypeScript worker marks type errors.
    await page.locator(".squiggly-error").first().waitFor();
  });
});
