/**
 * Signed-in and anonymous identities never share state: a browser cannot reach a user's counters, credits or
 * custom data by sending the user's identifier as an anonymousIdentifier.
 */
import { describe, expect, it } from "vitest";
import { call, createOrganization, publish } from "../../support/api";
import { helloWorld } from "../../support/examples";

describe("identity classes", () => {
  it("keeps an anonymous identifier apart from the signed-in identity of the same name", async () => {
    const org = await createOrganization("Identity classes");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const decide = (key: string, identity: Record<string, unknown>) =>
      call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "hello-world", identity } });
    for (let i = 0; i < 3; i++) await decide(org.live.secretKey, { userIdentifier: "alice@example.com" });
    const signedIn = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userIdentifier: "alice@example.com" } } });
    expect(signedIn.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 3, hasAccess: false });

    // The same name as an anonymous identifier is a different visitor: Alice's usage is neither visible nor spent.
    const spoof = await decide(org.live.publishableKey, { anonymousIdentifier: "alice@example.com" });
    expect(spoof.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, hasAccess: true });
    const after = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userIdentifier: "alice@example.com" } } });
    expect(after.body.features.widget.properties.enabled.consumedUnits).toBe(3);

    const path = `/api/v1/admin/environments/${org.live.id}/identities/alice%40example.com/counters`;
    expect((await call("GET", path, { key: org.live.secretKey })).body.counters[0].consumedUnits).toBe(3);
    expect((await call("GET", `${path}?anonymous=true`, { key: org.live.secretKey })).body.counters[0].consumedUnits).toBe(1);
  });

  it("refuses negative counter updates from publishable keys", async () => {
    const org = await createOrganization("Give back");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
    const update = (key: string, update: number) =>
      call("POST", "/api/v1/counter-updates", { key, body: { identity: { anonymousIdentifier: "v1" }, counterId: `default:${featureId}.enabled`, update } });
    expect((await update(org.live.publishableKey, 2)).status).toBe(200);
    const refused = await update(org.live.publishableKey, -2);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ status: "error", statusCode: 403, code: "forbidden" });
    expect((await update(org.live.secretKey, -2)).body.counter.consumedUnits).toBe(0);
  });
});
