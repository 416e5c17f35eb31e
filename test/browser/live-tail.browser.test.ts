/**
 * Watching decisions from the console: the live tail on Events shows a decision made elsewhere (here with plain
 * `fetch`, as curl or a customer's backend would, with the environment's secret key) as it happens, and Metrics
 * charts the decisions. The configuration is the tutorial's (examples/hello-world.yaml), set up through the API.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { baseUrl, createOrganization, must, openConsole, screenshot, signIn, type BrowserOrganization } from "./support";

let org: BrowserOrganization;

beforeAll(async () => {
  org = await createOrganization("Console live tail org");
  const helloWorld = parse(readFileSync(join(import.meta.dirname, "..", "..", "examples", "hello-world.yaml"), "utf8"));
  await must("PUT", "/api/v1/admin/config", 200, { key: org.adminKey, body: helloWorld });
  const version = await must("POST", "/api/v1/admin/versions", 201, { key: org.adminKey, body: { description: "hello world" } });
  await must("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, 201, { key: org.adminKey, body: { versionId: version.id } });
});

/** A surface decision on hello-world for `visitor`, as `curl` sends it; answers the widget's `enabled` state. */
async function decide(visitor: string): Promise<{ hasAccess: boolean }> {
  const response = await fetch(`${baseUrl}/api/v1/surface-decisions`, {
    method: "POST",
    headers: { authorization: `Bearer ${org.live.secretKey}`, "content-type": "application/json" },
    body: JSON.stringify({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: visitor } }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as any).features.widget.properties.enabled;
}

async function signedIn(): Promise<Page> {
  const { page } = await openConsole();
  await signIn(page, org.adminKey);
  return page;
}

describe("watching decisions in the console", () => {
  it("shows a decision in the live tail as it is made", async () => {
    const page = await signedIn();
    await page.getByTestId("nav-events").click();
    await page.getByTestId("tail-start").click();
    await page.locator('[data-testid="tail-status"][data-status="live"]').waitFor();

    const visitor = "tail-visitor";
    const rows = page.getByTestId("tail-row").filter({ hasText: visitor });
    expect(await decide(visitor)).toMatchObject({ hasAccess: true });
    await rows.first().waitFor();
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute("data-outcome")).toBe("granted");
    expect(await rows.first().innerText()).toMatch(/surface hello-world\s+tail-visitor\s+granted\s+anonymous/);

    // Three widgets, then the meter says no: the tail shows the denial and why, newest first.
    await decide(visitor);
    await decide(visitor);
    expect(await decide(visitor)).toMatchObject({ hasAccess: false });
    await rows.nth(3).waitFor();
    expect(await rows.evaluateAll((items) => items.map((item) => item.getAttribute("data-outcome")))).toEqual(["denied", "granted", "granted", "granted"]);
    expect(await rows.first().innerText()).toContain("widget.enabled: limit_reached");
    // The explorer below finds the same decisions among the recorded events.
    const recorded = page.getByTestId("event-row").filter({ hasText: visitor });
    await expect
      .poll(async () => {
        await page.getByTestId("events-search").and(page.locator(":enabled")).click();
        return recorded.count();
      })
      .toBe(4);
    await page.getByTestId("events-search").and(page.locator(":enabled")).waitFor();
    await screenshot(page, "console-live-tail");

    // Stopped, the tail closes its stream (a stream cut by closing the page would be a console error) and shows no
    // more: a later decision reaches the explorer (it is recorded, and so published) but not the tail.
    await page.getByTestId("tail-stop").click();
    await page.locator('[data-testid="tail-status"][data-status="stopped"]').waitFor();
    await decide("after-the-tail");
    await page.getByTestId("events-filter-identifier").fill("after-the-tail");
    const found = page.getByTestId("event-row").filter({ hasText: "after-the-tail" });
    await expect
      .poll(async () => {
        await page.getByTestId("events-search").and(page.locator(":enabled")).click();
        return found.count();
      })
      .toBe(1);
    expect(await page.getByTestId("tail-row").filter({ hasText: "after-the-tail" }).count()).toBe(0);
    expect(await page.getByTestId("tail-row").count()).toBe(4);
  });

  it("charts the decisions on Metrics", async () => {
    // The decisions of the test above (and this one's) are in the rollups of the current minute.
    await decide("metrics-visitor");
    const page = await signedIn();
    await page.getByTestId("nav-metrics").click();
    const chart = page.getByTestId("metrics-chart-decisions");
    await chart.waitFor();
    // Rollups are written with the decision records' batches, after the responses: refresh until they are in.
    await expect
      .poll(async () => {
        if ((await chart.getAttribute("data-empty")) === "false") return "false";
        await page.getByTestId("metrics-refresh").click();
        return chart.getAttribute("data-empty");
      })
      .toBe("false");
    expect(await page.getByTestId("metrics-totals").innerText()).toMatch(/\b[1-9]\d* decisions\b/);
    expect(await page.getByTestId("metrics-chart-denials").getAttribute("data-empty")).toBe("false");
    await screenshot(page, "console-metrics");
  });
});
