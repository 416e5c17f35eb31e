/**
 * The client in Node (not workerd): Node's own fetch against `wrangler dev` (started by test/browser/global-setup.ts),
 * a decision with a secret key as a backend makes it and with a publishable key as a browser would, a custom
 * endpoint, the typed admin API, and an unreachable platform under both failure modes.
 */
import { createClient } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";
import { baseUrl } from "../../../test/browser/support";
import { liveTenant } from "./live";

describe("the client in Node", () => {
  it("decides with a secret key and a publishable key through Node's fetch", async () => {
    expect(typeof process.versions.node).toBe("string");
    const org = await liveTenant("Client package (Node)");

    const backend = createClient({ baseUrl, apiKey: org.preview.secretKey, failureMode: "closed" });
    const decision = await backend.surfaceDecision({ identity: { anonymousIdentifier: "node-reader" }, surfaceSlug: "article-page" });
    if (!decision.ok) throw new Error(JSON.stringify(decision.error));
    expect(decision.attempts).toBe(1);
    expect(decision.requestId).toMatch(/^req_/);
    expect(backend.hasAccess(decision, "articles.enabled")).toBe(true);
    expect(backend.property(decision, "articles.enabled")).toMatchObject({ consumedUnits: 1, remainingUnits: 2 });

    const browserLike = createClient({ baseUrl, apiKey: org.preview.publishableKey, failureMode: "open" });
    const check = await browserLike.accessCheck({ identity: { anonymousIdentifier: "node-reader" } });
    if (!check.ok) throw new Error(JSON.stringify(check.error));
    expect(browserLike.property(check, "articles.enabled")).toMatchObject({ consumedUnits: 1 });
    // A publishable key may not redeem: the platform's 403, as a value.
    const refused = await browserLike.redeemOffer({ identity: { anonymousIdentifier: "node-reader" }, offerToken: "x" });
    expect(refused).toMatchObject({ ok: false, failedOpen: false, error: { kind: "api", status: 403 } });

    const echoed = await browserLike.endpoint("echo", { method: "POST", body: "from node" });
    expect(await echoed.json()).toMatchObject({ method: "POST", body: "from node" });

    const admin = createClient({ baseUrl, apiKey: org.adminKey, failureMode: "closed" });
    const session = await admin.admin.GET("/api/v1/admin/session");
    expect(session.data).toMatchObject({ organizationId: org.id });
  });

  it("fails open or closed when nothing listens", async () => {
    for (const [failureMode, expected] of [["open", true], ["closed", false]] as const) {
      // Port 9 (discard) on the loopback: refused at once.
      const client = createClient({ baseUrl: "http://127.0.0.1:9", apiKey: "pk_env_x_y", failureMode, retries: 1, retryBaseDelayMs: 0 });
      const result = await client.accessCheck({ identity: { anonymousIdentifier: "nobody" } });
      expect(result).toMatchObject({ ok: false, attempts: 2, failedOpen: expected, error: { kind: "network" } });
      expect(client.hasAccess(result, "articles.enabled")).toBe(expected);
    }
  });
});
