/**
 * The seed tutorial (README "Tutorial", test/e2e/tutorial.mjs) done through the console only, as a newcomer would:
 * the organization created on the operator token's Organizations screen, the `widget` feature, the Anonymous/Registered/Premium plans and the `hello-world` surface as forms, the JWT
 * authentication method with a key this test owns, the provisioning workflow pasted into the workflow editor, a
 * version deployed to live, then the playground as an anonymous visitor and as a premium JWT. The steps share one
 * organization and run in order; each opens its own browser. The screenshots of docs/screenshots/ come from here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { baseUrl, must, openConsole, operatorToken, screenshot, signIn } from "./support";

const root = join(import.meta.dirname, "..", "..");
const provisioningSource = readFileSync(join(root, "examples", "workflows", "premium-provisioning.ts"), "utf8");

/** The organization the first step creates in the console, with the admin key the console showed once. */
let org: { id: string; adminKey: string };
let publicKeyPem: string;
let premiumJwt: string;

beforeAll(async () => {
  // The identity provider's key pair: the console gets the public half, the playground a token signed with the other.
  const keys = await generateKeyPair("RS256", { extractable: true });
  publicKeyPem = await exportSPKI(keys.publicKey);
  const claims = { sub: "1234567890", name: "John Doe", email: "test@example.com", premium: true, iat: 1760714314 };
  premiumJwt = await new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(keys.privateKey);
});

async function signedIn(): Promise<Page> {
  const { page } = await openConsole();
  await signIn(page, org.adminKey);
  return page;
}

/** Saves the collection form on screen and waits for the console to say it is in the draft. */
async function saveToDraft(page: Page): Promise<void> {
  await page.getByTestId("save").click();
  await page.getByTestId("saved").waitFor();
}

/** The JSON the playground shows as the decision's answer. */
async function shownResponse(page: Page): Promise<any> {
  return JSON.parse((await page.getByTestId("playground-response").textContent()) ?? "null");
}

/** Runs the playground's form and waits for its answer (every answer differs from the one before: a new eventId). */
async function run(page: Page): Promise<void> {
  const response = page.getByTestId("playground-response");
  const before = (await response.count()) ? await response.textContent() : null;
  await page.getByTestId("playground-run").click();
  await expect.poll(async () => ((await response.count()) ? await response.textContent() : null)).not.toBe(before);
}

describe("the seed tutorial in the console", () => {
  it("signs in with the operator token alone and creates the organization", async () => {
    const { page } = await openConsole();
    await page.getByTestId("signin-credential").fill(operatorToken);
    await page.getByTestId("signin-submit").click();
    await page.getByTestId("org-list").waitFor();
    await page.getByTestId("org-name").fill("Console tutorial org");
    await page.getByTestId("org-create").click();
    const adminKey = (await page.getByTestId("org-created-key").textContent())?.trim() ?? "";
    expect(adminKey).toMatch(/^ok_/);
    await page.getByTestId("org-list").locator("tr", { hasText: "Console tutorial org" }).waitFor();
    await screenshot(page, "console-organizations");
    await page.getByRole("button", { name: "Continue as this organization" }).click();
    await page.getByTestId("header-organization").waitFor();
    const id = (await page.getByTestId("header-organization").textContent()) ?? "";
    expect(id).toMatch(/^org_/);
    expect(await page.getByTestId("header-credential").textContent()).toContain("Operator token");
    // The organization's own key, shown once, signs in on its own.
    expect(await must("GET", "/api/v1/admin/session", 200, { key: adminKey })).toMatchObject({ credential: "organizationKey", role: "admin", organizationId: id });
    org = { id, adminKey };
  });

  it("creates the widget feature, the three plans and the hello-world surface", async () => {
    const page = await signedIn();

    await page.getByTestId("nav-features").click();
    await page.getByTestId("feature-add").click();
    await page.getByTestId("feature-slug").fill("widget");
    await page.getByTestId("feature-name").fill("Widget");
    // Row 0 is `enabled` (fallback off); the second property is a boolean, false unless a plan says otherwise.
    expect(await page.getByTestId("property-name-0").inputValue()).toBe("enabled");
    expect(await page.getByTestId("property-fallback-0").inputValue()).toBe("off");
    await page.getByTestId("property-add").click();
    await page.getByTestId("property-name-1").fill("premium");
    await page.getByTestId("property-type-1").selectOption("boolean");
    await page.getByTestId("property-fallback-1").selectOption("false");
    await saveToDraft(page);
    await screenshot(page, "console-features");

    const plans = [
      { slug: "anonymous", name: "Anonymous", autoAssign: "anonymous", enabled: "metered", premium: "false" },
      { slug: "registered", name: "Registered", autoAssign: "authenticated", enabled: "metered", premium: "false" },
      { slug: "premium", name: "Premium", autoAssign: null, enabled: "on", premium: "true" },
    ] as const;
    for (const plan of plans) {
      await page.getByTestId("nav-plans").click();
      await page.getByTestId("plan-add").click();
      await page.getByTestId("plan-slug").fill(plan.slug);
      await page.getByTestId("plan-name").fill(plan.name);
      if (plan.autoAssign) await page.getByTestId(`plan-auto-assign-${plan.autoAssign}`).check();
      await page.getByTestId("plan-matrix-widget-enabled").selectOption(plan.enabled);
      if (plan.enabled === "metered") {
        await page.getByTestId("plan-matrix-widget-enabled-limit").fill("3");
        await page.getByTestId("plan-matrix-widget-enabled-period").selectOption("lifetime");
      }
      await page.getByTestId("plan-matrix-widget-premium").selectOption(plan.premium);
      await saveToDraft(page);
      if (plan.slug === "anonymous") await screenshot(page, "console-plans");
    }
    await page.getByTestId("nav-plans").click();
    for (const plan of plans) await page.getByTestId(`plan-row-${plan.slug}`).waitFor();

    await page.getByTestId("nav-surfaces").click();
    await page.getByTestId("surface-add").click();
    await page.getByTestId("surface-slug").fill("hello-world");
    await page.getByTestId("surface-name").fill("Hello, World!");
    await page.getByTestId("surface-consumes-widget-enabled").check();
    await saveToDraft(page);

    // What the forms made is the tutorial's own document (the console adds only defaults, such as conflict rules).
    const { version: _, ...helloWorld } = parse(readFileSync(join(root, "examples", "hello-world.yaml"), "utf8"));
    expect(await must("GET", "/api/v1/admin/config", 200, { key: org.adminKey })).toMatchObject(helloWorld);
  });

  it("adds the JWT authentication method with the identity provider's public key", async () => {
    const page = await signedIn();
    await page.getByTestId("nav-auth-methods").click();
    await page.getByTestId("auth-add").click();
    await page.getByTestId("auth-slug").fill("test-jwt");
    await page.getByTestId("auth-source-public-key").check();
    await page.getByTestId("auth-public-key").fill(publicKeyPem);
    expect(await page.getByTestId("auth-algorithm-RS256").isChecked()).toBe(true);
    await page.getByTestId("auth-identifier-claim").fill("email");
    await saveToDraft(page);
  });

  it("pastes the provisioning workflow into the editor, where it type-checks against the draft", async () => {
    const page = await signedIn();
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.getByTestId("nav-workflows").click();
    await page.getByTestId("workflow-new-slug").fill("premium-provisioning");
    await page.getByTestId("workflow-new-type").selectOption("provisioning");
    await page.getByTestId("workflow-new").click();

    const editor = page.getByTestId("workflow-editor").locator(".monaco-editor");
    await editor.waitFor();
    // Pasted, as from the file: typing would meet the editor's auto-indent and bracket closing.
    const paste = async (text: string) => {
      // Runs in the page; this file is type-checked without the DOM's declarations.
      await page.evaluate((source) => (navigator as unknown as { clipboard: { writeText(text: string): Promise<void> } }).clipboard.writeText(source), text);
      await editor.click();
      await page.keyboard.press("Control+A");
      await page.keyboard.press("Control+V");
    };
    // A plan the draft does not have is a mistake the editor names before anything is saved.
    await paste(provisioningSource.replace('["premium"]', '["premum"]'));
    await page.getByTestId("workflow-diagnostic").filter({ hasText: `Type '"premum"' is not assignable` }).waitFor();
    await paste(provisioningSource);
    await expect.poll(() => editor.locator(".view-lines").textContent()).toContain('["premium"]');
    await page.locator('[data-testid="workflow-diagnostics"][data-state="ok"]').waitFor();

    await page.getByTestId("save").click();
    await page.getByTestId("workflow-saved").waitFor();
    await page.locator('[data-testid="workflow-diagnostics"][data-state="ok"]').waitFor();
    await page.getByTestId("workflow-row-premium-provisioning").waitFor();
    await screenshot(page, "console-workflow-editor");
  });

  it("creates a version and deploys it to live", async () => {
    const page = await signedIn();
    await page.getByTestId("nav-versions").click();
    await page.getByTestId("version-description").fill("hello world");
    await page.getByTestId("version-create").click();
    await page.getByTestId("version-row-1").waitFor();
    // Live is a production environment: the deploy asks once more.
    await page.getByTestId("deploy-live").click();
    await page.getByTestId("deploy-live-confirm").click();
    await expect.poll(() => page.getByTestId("deploy-result-live").textContent()).toBe("Deployed v1.");
    await expect.poll(() => page.getByTestId("deployed-live").textContent()).toBe("serving v1");
    // Live never served anything before v1: there is nothing to roll back to. The button is decided from live's
    // deployment history, read again after the deploy: only with the deploy in it does "disabled" say so.
    await page.getByTestId("environment-live").locator("summary", { hasText: "Deployment history (1)" }).waitFor();
    expect(await page.getByTestId("rollback-live").isDisabled()).toBe(true);
    await screenshot(page, "console-versions");
  });

  it("runs the playground as an anonymous visitor: three widgets, then none", async () => {
    const page = await signedIn();
    await page.getByTestId("nav-playground").click();
    await page.getByTestId("playground-kind-surface").check();
    await page.getByTestId("playground-surface").selectOption("hello-world");
    await page.getByTestId("playground-identity-anonymous").check();
    await page.getByTestId("playground-anonymous-identifier").fill("console-visitor");

    for (const remaining of [2, 1, 0]) {
      await run(page);
      expect(await page.getByTestId("playground-status").getAttribute("data-status")).toBe("200");
      const answer = await shownResponse(page);
      expect(answer.identity).toMatchObject({ authType: "anonymous", identifier: "console-visitor", isAuthenticated: false });
      expect(answer.features.widget.properties.enabled).toMatchObject({ hasAccess: true, remainingUnits: remaining, totalUnits: 3 });
      expect(answer.features.widget.properties.premium).toMatchObject({ value: false });
    }
    const plans = page.getByTestId("trace-plans");
    expect(await plans.locator("tbody tr").allInnerTexts()).toEqual([expect.stringMatching(/^anonymous\s+auto\b/)]);
    expect(await page.getByTestId("trace-identity").innerText()).toMatch(/Identifier\s+console-visitor/);

    // The fourth: denied by the meter, and the trace says so.
    await run(page);
    expect(await page.getByTestId("playground-status").getAttribute("data-status")).toBe("200");
    expect((await shownResponse(page)).features.widget.properties.enabled).toMatchObject({ hasAccess: false, remainingUnits: 0 });
    expect(await page.getByTestId("trace-denials").innerText()).toMatch(/widget\s+enabled\s+limit_reached/);
  });

  it("runs the playground with a premium JWT: Premium comes from the provisioning workflow", async () => {
    const page = await signedIn();
    await page.getByTestId("nav-playground").click();
    await page.getByTestId("playground-kind-surface").check();
    await page.getByTestId("playground-surface").selectOption("hello-world");
    await page.getByTestId("playground-identity-jwt").check();
    await page.getByTestId("playground-jwt").fill(premiumJwt);
    await run(page);

    expect(await page.getByTestId("playground-status").getAttribute("data-status")).toBe("200");
    const answer = await shownResponse(page);
    expect(answer.identity).toMatchObject({ authType: "jwt", identifier: "test@example.com", isAuthenticated: true, jwtClaims: { premium: true } });
    expect(answer.features.widget.properties.enabled).toMatchObject({ hasAccess: true });
    expect(answer.features.widget.properties.premium).toMatchObject({ value: true });

    // Registered by the token's category, Premium from the workflow — which the trace names with its input and output.
    const plans = await page.getByTestId("trace-plans").locator("tbody tr").allInnerTexts();
    expect(plans).toEqual([expect.stringMatching(/^registered\s+auto\b/), expect.stringMatching(/^premium\s+workflow\b/)]);
    const workflow = page.getByTestId("trace-workflow");
    expect(await workflow.count()).toBe(1);
    expect(await workflow.locator("summary").innerText()).toMatch(/^premium-provisioning\s+provisioning\s+ok/);
    const premiumRow = page.getByTestId("trace-properties").locator("tr", { hasText: "premium" }).filter({ hasText: "boolean" });
    expect(await premiumRow.innerText()).toMatch(/plan premium/);
    await workflow.locator("summary").click();
    await page.getByTestId("playground-status").scrollIntoViewIfNeeded();
    await screenshot(page, "console-playground-trace");
  });
});
