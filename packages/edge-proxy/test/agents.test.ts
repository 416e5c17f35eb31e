/**
 * Agents through the proxy: what a crawler sends that the platform reads (its Web Bot Auth signature, the price it
 * agrees to pay, an x402 payment) reaches the decision, nothing else of its request does, and what the platform answers
 * for it — a 402 with its price, or the page with the charge — reaches the crawler as the platform wrote it.
 */
import { describe, expect, it } from "vitest";
import { newAgent } from "../../../test/support/agents";
import { echoed, originDouble, page, proxyOver, recordedPlatform, recordingLogger, scriptedTenant, setCookie, SITE, visit } from "./support";

// A signature that expired long ago: the platform reads it and leaves the request unsigned, without asking anyone's
// key directory (what these tests look at is what the proxy forwards).
const EXPIRED_INPUT = 'sig1=("@authority" "signature-agent" "crawler-max-price");created=1735689600;expires=1735689660;keyid="k1";alg="ed25519";tag="web-bot-auth"';
const SIGNED = {
  signature: "sig1=:dGhlIHNpZ25hdHVyZQ==:",
  "signature-input": EXPIRED_INPUT,
  "signature-agent": '"https://crawler.example"',
  "crawler-max-price": "USD 0.05",
};

const bodyOf = async (request: Request): Promise<any> => request.clone().json();

describe("what the proxy forwards of an agent's request", () => {
  it("sends the method and the headers the platform reads — the signature, what it covers, price and payment — and nothing else", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), {}, { platform: platform.fetch });
    const response = await proxy.fetch(
      visit("/a", {
        headers: { ...SIGNED, "payment-signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=", "user-agent": "Crawler/1.0", authorization: "Bearer visitor-secret", "x-other": "stays home" },
        cookie: "mos_anon=crawler-1; session=visitor-secret",
      }),
    );
    expect(response.status).toBe(200);
    expect(echoed(await response.text())).toMatchObject({ identifier: "crawler-1", authType: "anonymous" });
    const { http } = await bodyOf(platform.requests[0]!);
    expect(http).toEqual({
      url: `${SITE}/a`,
      userAgent: "Crawler/1.0",
      method: "GET",
      headers: { ...SIGNED, "payment-signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=" },
    });
  });

  it("sends no headers for a request without any the platform reads", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page() }), {}, { platform: platform.fetch });
    await proxy.fetch(visit("/a", { headers: { "user-agent": "Reader/1.0", accept: "text/html" }, cookie: "mos_anon=reader-1" }));
    const { http } = await bodyOf(platform.requests[0]!);
    expect(http).toEqual({ url: `${SITE}/a`, userAgent: "Reader/1.0", method: "GET" });
  });

  it("forwards nothing of a signature a header of which is over the platform's bound: the crawler is decided unsigned", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }), {}, { platform: platform.fetch });
    const response = await proxy.fetch(visit("/a", { headers: { ...SIGNED, "crawler-max-price": `USD ${"9".repeat(8192)}`, "payment-signature": "pay" }, cookie: "mos_anon=crawler-2" }));
    expect(response.status).toBe(200);
    expect((await bodyOf(platform.requests[0]!)).http.headers).toEqual({ "payment-signature": "pay" });
  });

  it("leaves the headers out rather than the page's meta when both would pass 64 KiB: decided unsigned, never refused", async () => {
    const org = await scriptedTenant();
    const platform = recordedPlatform();
    const { logger, warnings } = recordingLogger();
    // The page's meta takes most of the room; the crawler's headers (JSON doubles every `"`) would take the rest.
    const meta = Array.from({ length: 50 }, (_, index) => `<meta name="m${index}" content="${"x".repeat(1000)}">`).join("");
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true, head: meta }) }), { failureMode: "closed" }, { platform: platform.fetch, logger });
    const quotes = '"'.repeat(8000);
    const response = await proxy.fetch(visit("/a", { headers: { ...SIGNED, "payment-signature": quotes, "crawler-exact-price": quotes }, cookie: "mos_anon=crawler-3" }));
    expect(response.status).toBe(200);
    const told = echoed(await response.text());
    expect(Object.keys(told.resource.meta)).toHaveLength(51);
    const sent = platform.requests[0]!;
    expect((await bodyOf(sent)).http.headers).toBeUndefined();
    expect((await sent.arrayBuffer()).byteLength).toBeLessThanOrEqual(64 * 1024);
    expect(warnings).toEqual([]);
  });

  it("decides a crawler whose signature verifies as its operator, and sets it no visitor cookie", async () => {
    const org = await scriptedTenant();
    const agent = await newAgent();
    const proxy = proxyOver(org, originDouble({ "/a": page({ echo: true }) }));
    const headers = await agent.sign(`${SITE}/a`, { covered: { "crawler-max-price": "USD 0.05" } });
    const response = await proxy.fetch(visit("/a", { headers }));
    expect(response.status).toBe(200);
    expect(echoed(await response.text())).toMatchObject({ authType: "agent", identifier: agent.origin });
    expect(setCookie(response, "mos_anon")).toBeUndefined();
  });
});

describe("what the platform answers an agent", () => {
  it("reaches the crawler intact: a 402 with its price and payment requirements, never the page, never cached", async () => {
    const org = await scriptedTenant();
    const refusal = {
      status: 402,
      headers: { "crawler-price": "USD 0.01", "crawler-error": "price_not_accepted", "payment-required": "eyJ4NDAyVmVyc2lvbiI6MiwiYWNjZXB0cyI6W119", "content-type": "text/plain; charset=utf-8" },
      body: "Payment required: USD 0.01 per page.",
    };
    const proxy = proxyOver(org, originDouble({ "/a": page({ http: refusal, main: "<p>The article</p>" }) }));
    const response = await proxy.fetch(visit("/a", { headers: SIGNED, cookie: "mos_anon=crawler-4" }));
    expect(response.status).toBe(402);
    expect(Object.fromEntries(response.headers)).toEqual({ ...refusal.headers, "cache-control": "private, no-store" });
    expect(await response.text()).toBe(refusal.body);
  });

  it("reaches the crawler intact: the page with what it was charged and the payment's receipt", async () => {
    const org = await scriptedTenant();
    const charged = { addHeaders: [{ name: "crawler-charged", value: "USD 0.01" }, { name: "payment-response", value: "eyJzdWNjZXNzIjp0cnVlfQ==" }] };
    const proxy = proxyOver(org, originDouble({ "/a": page({ http: charged, main: "<p>The article</p>" }) }));
    const response = await proxy.fetch(visit("/a", { headers: SIGNED, cookie: "mos_anon=crawler-5" }));
    expect(response.status).toBe(200);
    expect(response.headers.get("crawler-charged")).toBe("USD 0.01");
    expect(response.headers.get("payment-response")).toBe("eyJzdWNjZXNzIjp0cnVlfQ==");
    // Charged to this crawler: no shared cache may hand the page to the next one.
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    expect(response.headers.get("etag")).toBeNull();
    expect(await response.text()).toContain("<p>The article</p>");
  });
});
