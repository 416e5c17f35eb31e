/** POST /api/v1/identity-links: an anonymous visitor's counters are carried over to the user they sign in as, once. */
import { beforeAll, describe, expect, it } from "vitest";
import { call } from "../../support/api";
import { helloWorldOrg, newsSiteOrg, uniqueId, type PublishedOrg } from "./helpers";

let hello: PublishedOrg;
beforeAll(async () => {
  hello = await helloWorldOrg();
});

const use = (identity: Record<string, unknown>, target = hello) =>
  call("POST", "/api/v1/surface-decisions", { key: target.key, body: { surfaceSlug: "hello-world", identity } });
const consumed = async (identity: Record<string, unknown>) =>
  (await call("POST", "/api/v1/access-checks", { key: hello.key, body: { identity } })).body.features.widget.properties.enabled.consumedUnits;
const link = (body: Record<string, unknown>, key = hello.key) => call("POST", "/api/v1/identity-links", { key, body });

describe("identity links", () => {
  it("copies the anonymous visitor's counters to the user once", async () => {
    const anonymous = uniqueId("anon");
    const user = uniqueId("user");
    await use({ anonymousIdentifier: anonymous });
    await use({ anonymousIdentifier: anonymous });
    await use({ userIdentifier: user });
    expect(await consumed({ userIdentifier: user })).toBe(1);

    const first = await link({ identity: { userIdentifier: user }, anonymousIdentifier: anonymous });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ status: "success", linked: true, counters: 1, identifier: user, anonymousIdentifier: anonymous });
    expect(await consumed({ userIdentifier: user })).toBe(3);
    // Copied, not moved.
    expect(await consumed({ anonymousIdentifier: anonymous })).toBe(2);

    const second = await link({ identity: { userIdentifier: user }, anonymousIdentifier: anonymous });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ status: "success", linked: false });
    expect(await consumed({ userIdentifier: user })).toBe(3);
    const denied = await use({ userIdentifier: user });
    expect(denied.body.features.widget.properties.enabled).toMatchObject({ hasAccess: false, remainingUnits: 0 });
  });

  it("links once under concurrent calls", async () => {
    const anonymous = uniqueId("anon");
    const user = uniqueId("user");
    await use({ anonymousIdentifier: anonymous });
    const results = await Promise.all(Array.from({ length: 10 }, () => link({ identity: { userIdentifier: user }, anonymousIdentifier: anonymous })));
    expect(results.filter((result) => result.body.linked === true)).toHaveLength(1);
    expect(results.every((result) => result.status === 200)).toBe(true);
    expect(await consumed({ userIdentifier: user })).toBe(1);
  });

  it("reports linked with zero counters for an anonymous identifier that used nothing", async () => {
    const result = await link({ identity: { userIdentifier: uniqueId("user") }, anonymousIdentifier: uniqueId("unused") });
    expect(result.body).toMatchObject({ linked: true, counters: 0 });
  });

  it("refuses linking an identity to itself, an anonymous target, and userIdentifier with a publishable key", async () => {
    const same = uniqueId("same");
    const self = await link({ identity: { userIdentifier: same }, anonymousIdentifier: same });
    expect(self.status).toBe(400);
    expect(self.body).toMatchObject({ status: "error", code: "bad_request" });
    expect(self.body.message).toContain("itself");

    const anonymousTarget = await link({ identity: { anonymousIdentifier: uniqueId("a") }, anonymousIdentifier: uniqueId("b") });
    expect(anonymousTarget.status).toBe(400);

    const publishable = await link({ identity: { userIdentifier: uniqueId("u") }, anonymousIdentifier: uniqueId("b") }, hello.org.live.publishableKey);
    expect(publishable.status).toBe(403);
    expect((await link({ identity: { userIdentifier: uniqueId("u") } })).status).toBe(400);
  });

  it("carries unique resources over so a resource both saw counts once", async () => {
    const news = await newsSiteOrg();
    const anonymous = uniqueId("anon");
    const read = (identity: Record<string, unknown>, id: string) =>
      call("POST", "/api/v1/surface-decisions", { key: news.key, body: { surfaceSlug: "article-page", identity, resource: { id } } });
    await read({ anonymousIdentifier: anonymous }, "a-1");
    await read({ anonymousIdentifier: anonymous }, "a-2");
    // Registered news readers are unmetered, so a decision would not show the counter: read the object via the admin API.
    const target = uniqueId("user");
    const linked = await link({ identity: { userIdentifier: target }, anonymousIdentifier: anonymous }, news.key);
    expect(linked.body).toMatchObject({ linked: true, counters: 1 });
    const counters = await call("GET", `/api/v1/admin/environments/${news.org.live.id}/identities/${target}/counters`, { key: news.key });
    expect(counters.status).toBe(200);
    expect(counters.body.counters).toEqual([expect.objectContaining({ counterId: news.counterId, consumedUnits: 2, uniqueResourceCount: 2 })]);
  });
});
