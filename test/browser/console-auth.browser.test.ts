/** Signing in to the console, what a read-only credential sees, and a session that ends when its key is revoked. */
import { beforeAll, describe, expect, it } from "vitest";
import { baseUrl, createOrganization, createOrganizationKey, must, openConsole, screenshot, signIn, type BrowserOrganization } from "./support";

let org: BrowserOrganization;

beforeAll(async () => {
  org = await createOrganization("Console sign-in org");
  await must("PUT", "/api/v1/admin/config", 200, { key: org.adminKey, body: { features: { widget: { name: "Widget" } }, plans: { free: { autoAssign: ["anonymous"] } } } });
});

// Chromium reports every refused API call (401) as a console error of the page.
const REFUSED = /status of 401/;

describe("console sign-in", () => {
  it("signs in with an admin organization key", async () => {
    const { page } = await openConsole();
    await page.getByTestId("signin-credential").waitFor();
    await screenshot(page, "sign-in");
    await signIn(page, org.adminKey);
    await expect.poll(() => page.getByTestId("header-organization").textContent()).toBe(org.id);
    await page.getByTestId("nav-features").click();
    await page.getByTestId("feature-row-widget").waitFor();
    expect(await page.getByTestId("feature-add").count()).toBe(1);
  });

  it("shows why a wrong key is refused", async () => {
    const { page, expectConsoleError } = await openConsole();
    expectConsoleError(REFUSED);
    await page.getByTestId("signin-credential").fill(`ok_${org.id}_${"0".repeat(32)}`);
    await page.getByTestId("signin-submit").click();
    await expect.poll(() => page.getByTestId("signin-error").textContent()).toContain("Invalid API key");
    expect(await page.getByTestId("header-organization").count()).toBe(0);
  });

  it("shows a read-only key no add, save or delete buttons", async () => {
    const { key } = await createOrganizationKey(org, "read-only");
    const { page } = await openConsole();
    await signIn(page, key);
    await page.getByTestId("nav-features").click();
    await page.getByTestId("feature-row-widget").click();
    await page.getByTestId("feature-back").waitFor();
    expect(await page.getByTestId("save").count()).toBe(0);
    expect(await page.getByTestId("feature-delete").count()).toBe(0);
    await page.getByTestId("feature-back").click();
    await page.getByTestId("feature-row-widget").waitFor();
    expect(await page.getByTestId("feature-add").count()).toBe(0);
  });

  it("sends the user back to sign-in, saying why, when the key is revoked", async () => {
    const { id, key } = await createOrganizationKey(org, "read-only");
    const { page, expectConsoleError } = await openConsole();
    expectConsoleError(REFUSED);
    await signIn(page, key);
    // The overview's own calls are answered before the key goes: the one refused must be the plans page's. The panel
    // is drawn before its data, and "networkidle" fires once per document (it may have fired before signing in), so
    // wait for what only the answers draw: the environments, and the steps (organization, draft and versions).
    await page.getByTestId("overview-environment-live").waitFor();
    await page.getByTestId("overview-steps").locator("li").first().waitFor();
    await must("DELETE", `/api/v1/admin/organization/keys/${id}`, 200, { key: org.adminKey });
    // The next page's API call is refused (a hash change within the page, as the navigation makes).
    await page.goto(`${baseUrl}/console/#/plans`);
    await expect.poll(() => page.getByTestId("signin-error").textContent()).toMatch(/^Your session ended: .*Invalid API key/);
    expect(await page.getByTestId("header-organization").count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem("console.credential"))).toBeNull();
    // Signing in again returns to the page the session ended on.
    await signIn(page, org.adminKey);
    await expect.poll(() => new URL(page.url()).hash).toBe("#/plans");
    await page.getByTestId("plan-list").waitFor();
  });
});
