/** The API reference at /docs: Scalar, from the Worker's own assets, sandboxed, with nothing fetched from another host. */
import { describe, expect, it } from "vitest";
import { baseUrl, openConsole, screenshot } from "./support";

describe("/docs", () => {
  it("renders the OpenAPI document offline, in its sandbox", async () => {
    // The page runs in an opaque origin (see workers/routes/docs.ts): Scalar must work there.
    expect((await fetch(`${baseUrl}/docs`)).headers.get("content-security-policy")).toBe("sandbox allow-scripts");
    // openConsole fails the test for any request to a host other than 127.0.0.1, and for any page error.
    const { page } = await openConsole("/docs");
    await page.getByText("Edge monetization platform API").first().waitFor();
    // Operations are grouped by tag in the sidebar.
    await page.getByText("Organization keys", { exact: true }).first().waitFor();
    await screenshot(page, "api-reference");
  });
});
