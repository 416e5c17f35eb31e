/**
 * Agents as identities on decisions: a Web Bot Auth signature relayed in `http.headers` (secret keys) is checked
 * against the agent's key directory (a local server per agent); a verified one makes the request its operator, with
 * the crawler/agent plans; anything else — a spoof, a replay, an expired signature, no nonce, a publishable key —
 * leaves the request as it was, with the reason on the trace and the decision record.
 */
import { describe, expect, it } from "vitest";
import { newAgent, ed25519Jwks, signRequest } from "../../support/agents";
import { call, createOrganization, publish } from "../../support/api";
import { eventsFor } from "../../support/events";
import { newsSite } from "../../support/examples";

const PAGE = "https://news.example/articles/1";

async function newsOrg() {
  const org = await createOrganization("News for agents");
  await publish(org.adminKey, newsSite(), [org.live.id]);
  return org;
}

const check = (key: string, body: Record<string, unknown>) => call("POST", "/api/v1/access-checks?trace=true", { key, body });

describe("agent identity (Web Bot Auth)", () => {
  it("makes a verified signed request the agent's operator, with the agent plans, fetching the directory once", async () => {
    const org = await newsOrg();
    const agent = await newAgent();
    for (const visitor of ["cookie-1", "cookie-2"]) {
      const headers = await agent.sign(PAGE);
      const answer = await check(org.live.secretKey, { identity: { anonymousIdentifier: visitor }, http: { url: PAGE, headers } });
      expect(answer.status).toBe(200);
      expect(answer.body.identity).toEqual({ authType: "agent", identifier: agent.origin, isAuthenticated: true, jwtClaims: {} });
      expect(answer.body.trace.identity).toMatchObject({
        category: "ai-agent",
        bot: { category: "ai-agent", code: "signed-agent", isVerified: true, operator: new URL(agent.origin).host },
        agentSignature: { status: "verified", operator: agent.origin, covered: expect.arrayContaining(["@authority", "signature-agent"]) },
      });
      expect(answer.body.trace.plans.map((plan: { slug: string }) => plan.slug)).toEqual(["ai-agents"]);
      // Two visitors' cookies, one operator: the agent plan's daily meter is the operator's.
      expect(answer.body.features.articles.properties.enabled).toMatchObject({ totalUnits: 10 });
    }
    expect(await agent.directoryFetches()).toBe(1);
  });

  it("keeps the operator's meters apart from any visitor who names itself after it", async () => {
    const org = await newsOrg();
    const agent = await newAgent();
    const decide = (body: Record<string, unknown>) => call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "article-page", ...body } });
    const signed = await decide({ identity: { anonymousIdentifier: "x" }, resource: { id: "a1" }, http: { url: PAGE, headers: await agent.sign(PAGE) } });
    expect(signed.body.features.articles.properties.enabled).toMatchObject({ consumedUnits: 1, totalUnits: 10 });
    for (const identity of [{ anonymousIdentifier: agent.origin }, { userIdentifier: agent.origin }]) {
      const impostor = await decide({ identity, resource: { id: "a2" } });
      expect(impostor.body.features.articles.properties.enabled.consumedUnits ?? 0).toBeLessThanOrEqual(1);
      expect(impostor.body.identity.authType).not.toBe("agent");
    }
    const again = await decide({ identity: { anonymousIdentifier: "y" }, resource: { id: "a3" }, http: { url: PAGE, headers: await agent.sign(PAGE) } });
    expect(again.body.features.articles.properties.enabled).toMatchObject({ consumedUnits: 2 });
  });

  it("treats a spoofed, replayed, expired or nonce-less signature as an unverified visitor, and records why", async () => {
    const org = await newsOrg();
    const agent = await newAgent();
    const key = org.live.secretKey;
    const unverified = async (headers: Record<string, string>, reason: RegExp, url = PAGE) => {
      const answer = await check(key, { identity: { anonymousIdentifier: "visitor" }, http: { url, headers } });
      expect(answer.status).toBe(200);
      expect(answer.body.identity).toMatchObject({ authType: "anonymous", identifier: "visitor" });
      expect(answer.body.trace.identity.agentSignature).toEqual({ status: "invalid", reason: expect.stringMatching(reason) });
      expect(answer.body.trace.plans.map((plan: { slug: string }) => plan.slug)).toEqual(["anonymous"]);
      return answer;
    };
    // Someone else's key naming this agent's directory.
    const stranger = await ed25519Jwks();
    await unverified(await signRequest(stranger.privateJwk, agent.origin, PAGE), /no key with the signature's keyid/);
    // A signature for another site, replayed here (the authority is covered).
    await unverified(await agent.sign("https://other.example/articles/1"), /does not verify/);
    // The same signed request twice: the second is a replay. (An access check consumes nothing, so it verifies without
    // spending the nonce: the surface decision of the same request still can.)
    const once = await agent.sign(PAGE);
    expect((await check(key, { identity: { anonymousIdentifier: "visitor" }, http: { url: PAGE, headers: once } })).body.identity.authType).toBe("agent");
    const decide = () => call("POST", "/api/v1/surface-decisions?trace=true", { key, body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "visitor" }, http: { url: PAGE, headers: once } } });
    expect((await decide()).body.identity.authType).toBe("agent");
    const replayed = await decide();
    expect(replayed.body.identity).toMatchObject({ authType: "anonymous", identifier: "visitor" });
    expect(replayed.body.trace.identity.agentSignature).toEqual({ status: "invalid", reason: expect.stringMatching(/used before/) });
    await unverified(await agent.sign(PAGE, { createdAt: Date.now() - 120_000, expiresAt: Date.now() - 60_000 }), /expired/);
    await unverified(await agent.sign(PAGE, { withoutNonce: true }), /no nonce/);
    await unverified({ signature: "sig1=:AAAA:", "signature-input": "garbage", "signature-agent": `"${agent.origin}"` }, /does not parse/);

    // The decision record keeps the reason too.
    const events = await eventsFor(org.live.secretKey, "kind=surface_decision&limit=100", 2);
    const recorded = events.find((event: { id: string }) => event.id === replayed.body.eventId);
    expect(recorded?.record.agentSignature).toEqual({ status: "invalid", reason: expect.stringMatching(/used before/) });
  });

  it("needs http.url for a signed request, and ignores signatures sent with a publishable key", async () => {
    const org = await newsOrg();
    const agent = await newAgent();
    const noUrl = await check(org.live.secretKey, { identity: { anonymousIdentifier: "v" }, http: { headers: await agent.sign(PAGE) } });
    expect(noUrl.body.trace.identity.agentSignature).toEqual({ status: "invalid", reason: expect.stringMatching(/needs http.url/) });
    const browser = await call("POST", "/api/v1/access-checks", {
      key: org.live.publishableKey,
      body: { identity: { anonymousIdentifier: "v" }, http: { url: PAGE, headers: await agent.sign(PAGE) } },
    });
    expect(browser.status).toBe(200);
    expect(browser.body.identity.authType).toBe("anonymous");
    expect(await agent.directoryFetches()).toBe(0);
  });

  it("keeps a signed-in identity itself while tagging the request as a verified agent", async () => {
    const org = await newsOrg();
    const agent = await newAgent();
    const answer = await check(org.live.secretKey, { identity: { userIdentifier: "reader@example.com" }, http: { url: PAGE, headers: await agent.sign(PAGE) } });
    expect(answer.body.identity).toMatchObject({ authType: "provided", identifier: "reader@example.com" });
    expect(answer.body.trace.identity).toMatchObject({ bot: { isVerified: true, code: "signed-agent" }, agentSignature: { status: "verified" } });
  });

  it("spends a nonce once across the whole platform: a signed request captured by one tenant is refused in another tenant or environment", async () => {
    const first = await newsOrg();
    const second = await newsOrg();
    await publish(first.adminKey, newsSite(), [first.preview.id]);
    const agent = await newAgent();
    const headers = await agent.sign(PAGE);
    const decide = (key: string) => call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: "v" }, http: { url: PAGE, headers } } });
    expect((await decide(first.live.secretKey)).body.identity.authType).toBe("agent");
    expect((await decide(second.live.secretKey)).body.identity.authType).toBe("anonymous");
    expect((await decide(first.preview.secretKey)).body.identity.authType).toBe("anonymous");
  });
});
