/**
 * The client against the real platform in-process (its fetch is the Worker's): every decision call, what it sends
 * (key, scheme, headers, Idempotency-Key, trace), and the helpers that read a decision.
 */
import { createClient, environmentIdOfKey, type SurfaceDecisionResponse } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";
import { fetchWorker } from "../../../test/support/api";
import { BASE_URL, recording, scripted, tenant } from "./site";

const sk = (org: { preview: { secretKey: string } }, extra: Partial<Parameters<typeof createClient>[0]> = {}) =>
  createClient({ baseUrl: BASE_URL, apiKey: org.preview.secretKey, failureMode: "closed", fetch: fetchWorker, ...extra });

describe("access checks", () => {
  it("answers the identity and every feature's state, with the request id, in one attempt", async () => {
    const org = await tenant();
    const traffic = recording(fetchWorker);
    const client = sk(org, { fetch: traffic.fetch });
    const result = await client.accessCheck({ identity: { anonymousIdentifier: "reader-1" } });
    if (!result.ok) throw new Error(JSON.stringify(result.error));
    expect(result.attempts).toBe(1);
    expect(result.requestId).toMatch(/^req_/);
    expect(result.data.identity).toMatchObject({ authType: "anonymous", identifier: "reader-1" });
    expect(client.property(result, "articles.enabled")).toMatchObject({ type: "meterable", hasAccess: true, totalUnits: 3, consumedUnits: 0 });
    expect(client.hasAccess(result, "articles.enabled")).toBe(true);
    // A boolean property: its value; an unknown feature or property: no access.
    expect(client.hasAccess(result, "articles.premium")).toBe(false);
    expect(client.property(result, "articles.premium")).toMatchObject({ type: "boolean", value: false });
    expect(client.hasAccess(result, "videos.enabled")).toBe(false);
    expect(client.property(result, "articles.missing")).toBeUndefined();
    // The wire: POST, JSON, the key as a Bearer credential, no Idempotency-Key (nothing is consumed), no trace.
    const [sent] = traffic.requests;
    expect(sent!.method).toBe("POST");
    expect(sent!.url).toBe(`${BASE_URL}/api/v1/access-checks`);
    expect(sent!.headers.get("authorization")).toBe(`Bearer ${org.preview.secretKey}`);
    expect(sent!.headers.get("content-type")).toBe("application/json");
    expect(sent!.headers.has("idempotency-key")).toBe(false);
    expect(await sent!.json()).toEqual({ identity: { anonymousIdentifier: "reader-1" } });
  });

  it("asks for the trace with trace: true (secret keys); a publishable key is refused it", async () => {
    const org = await tenant();
    const traced = await sk(org).accessCheck({ identity: { anonymousIdentifier: "traced" } }, { trace: true });
    if (!traced.ok) throw new Error(JSON.stringify(traced.error));
    expect(traced.data.trace?.versionId).toEqual(expect.any(String));
    const untraced = await sk(org).accessCheck({ identity: { anonymousIdentifier: "traced" } });
    expect(untraced.ok && untraced.data.trace).toBeUndefined();
    const browser = createClient({ baseUrl: BASE_URL, apiKey: org.preview.publishableKey, failureMode: "open", fetch: fetchWorker });
    const refused = await browser.accessCheck({ identity: { anonymousIdentifier: "traced" } }, { trace: true });
    expect(refused).toMatchObject({ ok: false, attempts: 1, failedOpen: false, error: { kind: "api", status: 403 } });
  });

  it("works with a publishable key, as a browser would call it", async () => {
    const org = await tenant();
    const browser = createClient({ baseUrl: BASE_URL, apiKey: org.preview.publishableKey, failureMode: "open", fetch: fetchWorker });
    const result = await browser.accessCheck({ identity: { createAnonymousIdentifier: true } });
    if (!result.ok) throw new Error(JSON.stringify(result.error));
    expect(result.data.identity.identifier).toMatch(/^anon_/);
    expect(browser.hasAccess(result, "articles.enabled")).toBe(true);
  });

  it("sends the PublicBearer scheme when asked, and the platform takes it as Bearer", async () => {
    const org = await tenant();
    const traffic = recording(fetchWorker);
    const client = sk(org, { fetch: traffic.fetch, authorizationScheme: "PublicBearer" });
    const result = await client.accessCheck({ identity: { anonymousIdentifier: "relayed" } });
    expect(result.ok).toBe(true);
    expect(traffic.requests[0]!.headers.get("authorization")).toBe(`PublicBearer ${org.preview.secretKey}`);
  });

  it("sends the client's headers on every call, decision, endpoint and admin alike", async () => {
    const org = await tenant();
    const traffic = recording(fetchWorker);
    const client = sk(org, { fetch: traffic.fetch, headers: { "X-MOS-Proxy-Version": "9.9.9" } });
    await client.accessCheck({ identity: { anonymousIdentifier: "h" } });
    await client.endpoint("echo");
    await client.admin.GET("/api/v1/admin/session");
    expect(traffic.requests.map((request) => request.headers.get("x-mos-proxy-version"))).toEqual(["9.9.9", "9.9.9", "9.9.9"]);
  });
});

describe("surface decisions", () => {
  it("consume the surface's meter: three articles, then no access and the paywall's offers", async () => {
    const org = await tenant();
    const client = sk(org);
    const read = () => client.surfaceDecision({ identity: { anonymousIdentifier: "reader-3" }, surfaceSlug: "article-page" });
    for (let article = 1; article <= 3; article++) {
      const result = await read();
      expect(client.hasAccess(result, "articles.enabled")).toBe(true);
      expect(client.property(result, "articles.enabled")).toMatchObject({ consumedUnits: article, remainingUnits: 3 - article });
    }
    const fourth = await read();
    if (!fourth.ok) throw new Error(JSON.stringify(fourth.error));
    expect(client.hasAccess(fourth, "articles.enabled")).toBe(false);
    const decision: SurfaceDecisionResponse = fourth.data;
    expect(decision.componentBehaviors.paywall?.metadata.cssSelector).toBe("#paywall");
    const slot = decision.offers.paywall?.slots[0];
    expect(slot?.offer).toMatchObject({ offer: "gift", title: "A gift", token: expect.any(String) });
  });

  it("send one Idempotency-Key per call, the same on every attempt, so a retry consumes nothing more", async () => {
    const org = await tenant();
    // The first attempt reaches the platform (and consumes), but its answer is lost on the way back.
    const keys: (string | null)[] = [];
    const client = sk(org, {
      retryBaseDelayMs: 0,
      fetch: async (request) => {
        keys.push(request.headers.get("idempotency-key"));
        const response = await fetchWorker(request);
        if (keys.length === 1) throw new TypeError("connection reset");
        return response;
      },
    });
    const result = await client.surfaceDecision({ identity: { anonymousIdentifier: "reader-idem" }, surfaceSlug: "article-page" });
    if (!result.ok) throw new Error(JSON.stringify(result.error));
    expect(result.attempts).toBe(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{32,36}$/);
    expect(keys[1]).toBe(keys[0]);
    // The platform answered the retry from the first attempt: one unit consumed, not two.
    expect(client.property(result, "articles.enabled")).toMatchObject({ consumedUnits: 1 });
    const after = await client.accessCheck({ identity: { anonymousIdentifier: "reader-idem" } });
    expect(client.property(after, "articles.enabled")).toMatchObject({ consumedUnits: 1 });

    // Another call gets another key; a key given by the caller is used as is.
    const traffic = recording(fetchWorker);
    const second = sk(org, { fetch: traffic.fetch });
    await second.surfaceDecision({ identity: { anonymousIdentifier: "reader-idem" }, surfaceSlug: "article-page" });
    await second.surfaceDecision({ identity: { anonymousIdentifier: "reader-idem" }, surfaceSlug: "article-page" }, { idempotencyKey: "page-view-42" });
    const [other, given] = traffic.requests.map((request) => request.headers.get("idempotency-key"));
    expect(other).not.toBe(keys[0]);
    expect(given).toBe("page-view-42");
  });
});

describe("counter updates and identity links", () => {
  it("update a counter once, even when the answer of the first attempt is lost", async () => {
    const org = await tenant();
    const client = sk(org, { retryBaseDelayMs: 0 });
    const check = await client.accessCheck({ identity: { userIdentifier: "ada@example.com" } });
    const counterId = client.property(check, "articles.enabled")?.counterId;
    expect(counterId).toEqual(expect.stringContaining(".enabled"));
    const keys: (string | null)[] = [];
    let lost = false;
    const lossy = sk(org, {
      retryBaseDelayMs: 0,
      fetch: async (request) => {
        keys.push(request.headers.get("idempotency-key"));
        const response = await fetchWorker(request);
        if (!lost) {
          lost = true;
          return new Response("<html>502 Bad Gateway</html>", { status: 502, headers: { "Content-Type": "text/html" } });
        }
        return response;
      },
    });
    const updated = await lossy.counterUpdate({ identity: { userIdentifier: "ada@example.com" }, counterId: counterId!, update: 2 });
    if (!updated.ok) throw new Error(JSON.stringify(updated.error));
    expect(updated.attempts).toBe(2);
    expect(keys[1]).toBe(keys[0]);
    expect(updated.data.counter).toMatchObject({ consumedUnits: 2, remainingUnits: 1 });
  });

  it("link an anonymous visitor to the user who signed in", async () => {
    const org = await tenant();
    const client = sk(org);
    await client.surfaceDecision({ identity: { anonymousIdentifier: "visitor-9" }, surfaceSlug: "article-page" });
    const linked = await client.identityLink({ identity: { userIdentifier: "grace@example.com" }, anonymousIdentifier: "visitor-9" });
    if (!linked.ok) throw new Error(JSON.stringify(linked.error));
    expect(linked.data).toMatchObject({ linked: true, identifier: "grace@example.com", anonymousIdentifier: "visitor-9" });
    const user = await client.accessCheck({ identity: { userIdentifier: "grace@example.com" } });
    expect(client.property(user, "articles.enabled")).toMatchObject({ consumedUnits: 1 });
  });
});

describe("reservations", () => {
  /** The platform, except that the answer of the first request is lost (a gateway error after the platform acted). */
  const losingFirstAnswer = () => {
    const requests: Request[] = [];
    const fetch = async (request: Request) => {
      requests.push(request.clone());
      const response = await fetchWorker(request);
      if (requests.length > 1) return response;
      return new Response("<html>502 Bad Gateway</html>", { status: 502, headers: { "Content-Type": "text/html" } });
    };
    return { fetch, requests };
  };

  it("reserve under one Idempotency-Key (a lost answer reserves nothing more), then finalize and release by id", async () => {
    const org = await tenant();
    const client = sk(org, { retryBaseDelayMs: 0 });
    const identity = { userIdentifier: "lin@example.com" };
    const counterId = client.property(await client.accessCheck({ identity }), "articles.enabled")?.counterId;

    const reserving = losingFirstAnswer();
    const reserved = await sk(org, { retryBaseDelayMs: 0, fetch: reserving.fetch }).reserve({ identity, counterId: counterId!, amount: 2, ttlSeconds: 60 });
    if (!reserved.ok) throw new Error(JSON.stringify(reserved.error));
    expect(reserved.attempts).toBe(2);
    const keys = reserving.requests.map((request) => request.headers.get("idempotency-key"));
    expect(keys[0]).toEqual(expect.any(String));
    expect(keys[1]).toBe(keys[0]);
    expect(reserved.data).toMatchObject({ granted: true, reservation: { counterId, amount: 2 }, counter: { consumedUnits: 2 } });
    const id = reserved.data.reservation!.id;

    // A finalize retried after a lost answer is the same request: the platform answers the first settlement again.
    const finalizing = losingFirstAnswer();
    const finalized = await sk(org, { retryBaseDelayMs: 0, fetch: finalizing.fetch }).finalizeReservation(id, { identity, amount: 1 });
    if (!finalized.ok) throw new Error(JSON.stringify(finalized.error));
    expect(finalized.attempts).toBe(2);
    expect(finalizing.requests[0]!.url).toBe(`${BASE_URL}/api/v1/reservations/${id}/finalize`);
    expect(await finalizing.requests[0]!.json()).toEqual({ identity, amount: 1 });
    expect(finalized.data).toMatchObject({ reservation: { id, reserved: 2, actual: 1, refunded: 1, status: "finalized" }, counter: { consumedUnits: 1 } });

    const again = await client.finalizeReservation(id, { identity, amount: 2 });
    expect(again).toMatchObject({ ok: false, attempts: 1, error: { kind: "api", status: 409, code: "reservation_finalized" } });

    const other = await client.reserve({ identity, counterId: counterId!, amount: 2 });
    if (!other.ok || !other.data.reservation) throw new Error(JSON.stringify(other));
    const released = await client.releaseReservation(other.data.reservation.id, { identity });
    expect(released).toMatchObject({ ok: true, data: { reservation: { refunded: 2, status: "released" }, counter: { consumedUnits: 1 } } });
    const unknown = await client.releaseReservation("rsv_unknown", { identity });
    expect(unknown).toMatchObject({ ok: false, error: { kind: "api", status: 409, code: "reservation_not_found" } });
  });
});

describe("offer redemptions", () => {
  it("redeem the token of an offer a surface decision showed (secret key)", async () => {
    const org = await tenant();
    const client = sk(org);
    const identity = { anonymousIdentifier: "buyer-1" };
    const decision = await client.surfaceDecision({ identity, surfaceSlug: "article-page" });
    if (!decision.ok) throw new Error(JSON.stringify(decision.error));
    const token = decision.data.offers.paywall!.slots[0]!.offer!.token;
    const redeemed = await client.redeemOffer({ identity, offerToken: token });
    if (!redeemed.ok) throw new Error(JSON.stringify(redeemed.error));
    expect(redeemed.data.redemption).toMatchObject({ offer: "gift", method: "workflow", state: "completed" });
    expect(redeemed.data.result).toEqual({ granted: true });
  });

  it("retry a 409 that carries Retry-After (the same token in progress), and no other 409", async () => {
    const org = await tenant();
    const identity = { anonymousIdentifier: "buyer-2" };
    const decision = await sk(org).surfaceDecision({ identity, surfaceSlug: "article-page" });
    const token = decision.ok ? decision.data.offers.paywall!.slots[0]!.offer!.token : "";
    const inProgress = () =>
      Response.json({ status: "error", statusCode: 409, code: "conflict", message: "in progress", requestId: "req_x" }, { status: 409, headers: { "Retry-After": "0" } });
    const busy = scripted(fetchWorker, [inProgress()]);
    const redeemed = await sk(org, { fetch: busy.fetch }).redeemOffer({ identity, offerToken: token });
    expect(redeemed).toMatchObject({ ok: true, attempts: 2 });

    const changed = scripted(fetchWorker, [Response.json({ status: "error", statusCode: 409, code: "offer_changed", message: "changed", requestId: "req_y" }, { status: 409 })]);
    const refused = await sk(org, { fetch: changed.fetch }).redeemOffer({ identity, offerToken: token });
    expect(refused).toMatchObject({ ok: false, attempts: 1, error: { kind: "api", status: 409, code: "offer_changed" } });
    // A counter update's 409 (a counter no plan meters) is final even with Retry-After: only redemptions wait it out.
    const counterConflict = scripted(fetchWorker, [inProgress()]);
    const update = await sk(org, { fetch: counterConflict.fetch }).counterUpdate({ identity, counterId: "default:x.enabled" });
    expect(update).toMatchObject({ ok: false, attempts: 1, error: { status: 409 } });
  });
});

describe("custom endpoints", () => {
  it("call the key's environment's endpoint with X-MOS-Key, the user's JWT, the method, body and query", async () => {
    const org = await tenant();
    const traffic = recording(fetchWorker);
    const client = createClient({ baseUrl: BASE_URL, apiKey: org.preview.publishableKey, failureMode: "open", fetch: traffic.fetch });
    const response = await client.endpoint("/echo?page=2", { method: "POST", body: "hello", headers: { "Content-Type": "text/plain" } });
    expect(response.status).toBe(201);
    expect(response.headers.get("x-workflow")).toBe("echo");
    expect(await response.json()).toMatchObject({ method: "POST", body: "hello", path: "echo", query: "?page=2", proxy: null });
    const sent = traffic.requests[0]!;
    expect(sent.url).toBe(`${BASE_URL}/api/v1/envs/${org.preview.id}/endpoints/echo?page=2`);
    expect(sent.headers.get("x-mos-key")).toBe(org.preview.publishableKey);
    expect(sent.headers.has("authorization")).toBe(false);
    // The workflow's redirects are its answer, passed on, not followed.
    expect(sent.redirect).toBe("manual");

    await client.endpoint("echo", { userJwt: "eyJ.not-checked-here" }).catch(() => undefined);
    expect(traffic.requests[1]!.headers.get("x-mos-user-jwt")).toBe("eyJ.not-checked-here");
  });

  it("pass a failing endpoint's answer back as it is, and need an environment key", async () => {
    const org = await tenant();
    const client = sk(org);
    const missing = await client.endpoint("nowhere");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ status: "error", code: "not_found" });
    const admin = createClient({ baseUrl: BASE_URL, apiKey: org.adminKey, failureMode: "closed", fetch: fetchWorker });
    await expect(admin.endpoint("echo")).rejects.toThrow(/environment key/);
  });

  it("stream a request body through", async () => {
    const org = await tenant();
    const client = sk(org);
    const body = new Blob(["streamed ", "body"]).stream();
    const response = await client.endpoint("echo", { method: "PUT", body });
    expect(await response.json()).toMatchObject({ method: "PUT", body: "streamed body" });
  });
});

describe("environmentIdOfKey", () => {
  it("reads the environment id out of sk_ and pk_ keys, null otherwise", async () => {
    const org = await tenant();
    expect(environmentIdOfKey(org.preview.secretKey)).toBe(org.preview.id);
    expect(environmentIdOfKey(org.preview.publishableKey)).toBe(org.preview.id);
    expect(environmentIdOfKey(org.adminKey)).toBeNull();
    expect(environmentIdOfKey("sk_")).toBeNull();
  });
});
