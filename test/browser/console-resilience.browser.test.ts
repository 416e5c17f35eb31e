/**
 * The console when things go wrong around it: a platform that cannot answer, a refused credential, a broken link, a
 * failed read-back; and the guards that keep edits from being lost or sent to the wrong place.
 */
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { baseUrl, createOrganization, must, openConsole, operatorToken, signIn, type BrowserOrganization } from "./support";

let org: BrowserOrganization;

beforeAll(async () => {
  org = await createOrganization("Console resilience org");
  await must("PUT", "/api/v1/admin/config", 200, {
    key: org.adminKey,
    body: { features: { widget: { name: "Widget" } }, plans: { free: { autoAssign: ["anonymous"] } } },
  });
});

/** Pastes `text` over a Monaco editor's content (typing would meet its auto-indent and bracket closing). */
async function paste(page: Page, testId: string, text: string): Promise<void> {
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
  const editor = page.getByTestId(testId).locator(".monaco-editor");
  await editor.waitFor();
  await page.evaluate((source) => (navigator as unknown as { clipboard: { writeText(text: string): Promise<void> } }).clipboard.writeText(source), text);
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Control+V");
}

describe("the session", () => {
  it("keeps the credential when the platform cannot answer on reload, and Retry signs back in", async () => {
    const { page, expectConsoleError } = await openConsole();
    expectConsoleError(/status of 503/);
    await signIn(page, org.adminKey);
    // A proxy's error page instead of the API's answer.
    await page.route("**/api/v1/admin/session", (route) => route.fulfill({ status: 503, contentType: "text/html", body: "<html><body><h1>503 Service Unavailable</h1></body></html>" }));
    await page.reload();
    const unreachable = page.getByTestId("session-unreachable");
    await unreachable.waitFor();
    expect(await unreachable.textContent()).toContain("Can't reach the platform");
    expect(await unreachable.textContent()).toContain("HTTP 503");
    expect(await unreachable.textContent()).not.toContain("<html>");
    expect(await page.evaluate(() => sessionStorage.getItem("console.credential"))).toContain(org.adminKey);
    await page.unroute("**/api/v1/admin/session");
    await page.getByTestId("session-retry").click();
    await expect.poll(() => page.getByTestId("header-organization").textContent()).toBe(org.id);
  });

  it("says so when the environments cannot be loaded", async () => {
    const { page, expectConsoleError } = await openConsole();
    expectConsoleError(/status of 500/);
    await page.route("**/api/v1/admin/environments", (route) => route.fulfill({ status: 500, contentType: "application/json", body: JSON.stringify({ code: "internal", message: "environments are down" }) }));
    await signIn(page, org.adminKey);
    await expect.poll(() => page.getByTestId("environments-error").textContent()).toContain("environments are down");
    await page.unroute("**/api/v1/admin/environments");
    await page.getByTestId("environments-error").getByRole("button", { name: "Retry" }).click();
    await expect.poll(() => page.getByTestId("environments-error").count()).toBe(0);
    await expect.poll(() => page.getByTestId("env-picker").locator("option").count()).toBe(2);
  });

  it("survives a malformed link", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.goto(`${baseUrl}/console/#/features/%E0%A4%A`);
    await expect.poll(() => page.locator(".content").textContent()).toContain("No feature");
    expect(await page.getByTestId("header-organization").textContent()).toBe(org.id);
  });

  it("lets the operator token pick an organization, and switch to another", async () => {
    const other = await createOrganization("Console resilience other org");
    const { page } = await openConsole();
    await page.getByTestId("signin-credential").fill(operatorToken);
    await page.getByTestId("signin-submit").click();
    await page.getByTestId(`org-row-${org.id}`).waitFor();
    await page.getByTestId(`org-use-${org.id}`).click();
    await expect.poll(() => page.getByTestId("header-organization").textContent()).toBe(org.id);
    await page.getByTestId("switch-organization").click();
    await page.getByTestId(`org-use-${other.id}`).click();
    await expect.poll(() => page.getByTestId("header-organization").textContent()).toBe(other.id);
    // A reload keeps the organization picked.
    await page.reload();
    await expect.poll(() => page.getByTestId("header-organization").textContent()).toBe(other.id);
  });
});

describe("edits", () => {
  it("names what the platform's compiler refuses in a workflow, and does not save it", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.getByTestId("nav-workflows").click();
    await page.getByTestId("workflow-new-slug").fill("reaches-out");
    await page.getByTestId("workflow-new-type").selectOption("provisioning");
    await page.getByTestId("workflow-new").click();
    await paste(page, "workflow-editor", "export default async () => [];\nconst meta = import.meta;\n");
    const refused = page.getByTestId("workflow-diagnostic").filter({ hasText: "import.meta is not available to workflows" });
    await refused.waitFor();
    expect(await refused.textContent()).toMatch(/^2:14\s*platform/);
    await page.getByTestId("save").click();
    await expect.poll(() => page.getByTestId("workflow-blocked").textContent()).toContain("the platform refuses this code");
    expect((await must("GET", "/api/v1/admin/workflows", 200, { key: org.adminKey })).items).toEqual([]);
  });

  it("does not rename a feature over unsaved edits, and says what the rename did", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.goto(`${baseUrl}/console/#/features/widget`);
    await page.getByTestId("feature-name").fill("Widget, edited");
    expect(await page.getByTestId("feature-rename").isDisabled()).toBe(true);
    await page.getByTestId("feature-discard").click();
    expect(await page.getByTestId("feature-name").inputValue()).toBe("Widget");
    await page.getByTestId("feature-rename").click();
    await page.getByTestId("feature-rename-slug").fill("gadget");
    await page.getByTestId("feature-rename-save").click();
    await expect.poll(() => page.getByTestId("saved").textContent()).toContain("Renamed to gadget.");
    await must("POST", "/api/v1/admin/features/gadget/rename", 200, { key: org.adminKey, body: { slug: "widget" } });
  });

  it("keeps the applied document when reading it back fails, and the next Apply does not conflict", async () => {
    const { page, expectConsoleError } = await openConsole();
    expectConsoleError(/status of 503/);
    await signIn(page, org.adminKey);
    await page.getByTestId("nav-config").click();
    await page.getByTestId("config-editor").locator(".monaco-editor").waitFor();
    let failReads = false;
    await page.route("**/api/v1/admin/config?format=yaml", (route) =>
      failReads && route.request().method() === "GET" ? route.fulfill({ status: 503, body: "unavailable" }) : route.continue(),
    );
    failReads = true;
    await page.getByTestId("config-apply").click();
    await expect.poll(() => page.getByTestId("config-reread-problem").textContent()).toContain("Applied; the draft could not be re-read");
    expect(await page.getByTestId("config-result").textContent()).toContain("Applied");
    expect(await page.getByTestId("problem").count()).toBe(0);
    failReads = false;
    // The re-read's absence means something only once it has been answered and the Apply is over (the click clears
    // the old problem at once, so a count of 0 right after it proves nothing).
    const reread = page.waitForResponse((response) => response.url().endsWith("/api/v1/admin/config?format=yaml") && response.request().method() === "GET");
    await page.getByTestId("config-apply").click();
    expect((await reread).status()).toBe(200);
    await expect.poll(() => page.getByTestId("config-apply").textContent()).toBe("Apply");
    expect(await page.getByTestId("config-reread-problem").count()).toBe(0);
    expect(await page.getByTestId("config-result").textContent()).toContain("Applied");
    expect(await page.getByTestId("problem").count()).toBe(0);
  });

  it("closes an open variable form when another environment is picked", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.getByTestId("nav-settings").click();
    await page.getByTestId("variable-add").click();
    await page.getByTestId("variable-name").fill("PICKED_LATER");
    await page.getByTestId("env-picker").selectOption(org.preview.id);
    await expect.poll(() => page.getByTestId("variable-form").count()).toBe(0);
  });

  it("drops the events of an environment picked away from", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    // Live's answer is held back until preview's is on screen, then arrives with an event of its own.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const liveEvents = (url: URL) => url.pathname === "/api/v1/admin/events" && url.searchParams.get("environmentId") === org.live.id;
    await page.route(liveEvents, async (route) => {
      await released;
      const event = { id: "evt_stale", environmentId: org.live.id, kind: "decision", createdAt: new Date().toISOString(), identifier: "stale-live-visitor", surfaceSlug: null, outcome: "granted", record: {} };
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ events: [event], nextCursor: null }) });
    });
    await page.getByTestId("env-picker").selectOption(org.live.id);
    const asked = page.waitForRequest((request) => liveEvents(new URL(request.url())));
    await page.getByTestId("nav-events").click();
    await asked;
    await page.getByTestId("env-picker").selectOption(org.preview.id);
    await expect.poll(() => page.getByTestId("events-list").textContent()).toContain("No events match");
    const stale = page.waitForResponse((response) => liveEvents(new URL(response.url())));
    release();
    await (await stale).finished();
    // Two frames: the page has read the answer and React has rendered whatever it did with it.
    for (let frame = 0; frame < 2; frame++) await page.evaluate(() => new Promise((resolve) => (globalThis as unknown as { requestAnimationFrame(callback: () => void): void }).requestAnimationFrame(() => resolve(null))));
    expect(await page.getByTestId("event-row").count()).toBe(0);
    expect(await page.getByTestId("events-list").textContent()).not.toContain("stale-live-visitor");
  });

  it("checks the playground's lengths before sending", async () => {
    const { page } = await openConsole();
    await signIn(page, org.adminKey);
    await page.getByTestId("nav-playground").click();
    await page.getByTestId("playground-identity-anonymous").check();
    await page.getByTestId("playground-anonymous-identifier").fill("v".repeat(513));
    await page.getByTestId("playground-run").click();
    await expect.poll(() => page.getByTestId("field-error-anonymousIdentifier").textContent()).toBe("at most 512 characters");
  });
});
