/**
 * What the integrations forward of an agent's request: the signature whole (with every header it covers) or not at all,
 * the price and payment headers when they fit, nothing else; and a decision body that never grows past the platform's
 * bound because of them.
 */
import { AGENT_HEADER_LIMITS, MAX_DECISION_BODY_BYTES, agentHeadersOf, requestMethodOf, withAgentHeaders } from "@edge-monetization/client";
import { describe, expect, it } from "vitest";

const SIGNATURE = "sig1=:dGhlIHNpZ25hdHVyZQ==:";
const AGENT = '"https://crawler.example"';
const signedInput = (components: string) => `sig1=(${components});created=1735689600;expires=1735693200;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";tag="web-bot-auth"`;

describe("agentHeadersOf", () => {
  it("is undefined for a request that sends none of the headers the platform reads", () => {
    expect(agentHeadersOf(new Headers({ "user-agent": "Mozilla/5.0", cookie: "a=b", accept: "text/html" }))).toBeUndefined();
  });

  it("forwards the signature, every plain header it covers, and the price and payment headers — nothing else", () => {
    const headers = new Headers({
      Signature: SIGNATURE,
      "Signature-Input": signedInput('"@authority" "@method" "signature-agent" "crawler-max-price" "x-agent-run"'),
      "Signature-Agent": AGENT,
      "Crawler-Max-Price": "USD 0.05",
      "X-Agent-Run": "run-7",
      "Payment-Signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=",
      "User-Agent": "Crawler/1.0",
      Cookie: "session=secret",
      "X-Not-Covered": "stays home",
    });
    expect(agentHeadersOf(headers)).toEqual({
      signature: SIGNATURE,
      "signature-input": headers.get("signature-input"),
      "signature-agent": AGENT,
      "crawler-max-price": "USD 0.05",
      "x-agent-run": "run-7",
      "payment-signature": "eyJ4NDAyVmVyc2lvbiI6Mn0=",
    });
  });

  it("reads covered names from every signature, not from parameters, whatever their quoting", () => {
    const input = [
      // A dictionary member of a header (`;key=`) and a parameter value that looks like a component name.
      `sig1=("@authority" "signature-agent";key="agent1" "x-one");keyid="x-param";nonce="a(b)\\"c"`,
      `sig2=( "X-Two"  "@path" );tag="web-bot-auth"`,
    ].join(", ");
    const headers = new Headers({ signature: SIGNATURE, "signature-input": input, "x-one": "1", "x-two": "2", "x-param": "no", agent1: "no", keyid: "no" });
    expect(agentHeadersOf(headers)).toEqual({ signature: SIGNATURE, "signature-input": input, "x-one": "1", "x-two": "2" });
  });

  it("forwards the part of a signature the request has: what is missing is the platform's to refuse", () => {
    const input = signedInput('"@authority" "signature-agent" "crawler-exact-price"');
    expect(agentHeadersOf(new Headers({ "signature-input": input }))).toEqual({ "signature-input": input });
  });

  it("forwards nothing of a signature one of whose headers is over the bound: the request is simply unsigned", () => {
    const long = "v".repeat(AGENT_HEADER_LIMITS.valueLength + 1);
    const covering = new Headers({ signature: SIGNATURE, "signature-input": signedInput('"@authority" "x-long"'), "signature-agent": AGENT, "x-long": long, "crawler-max-price": "USD 0.01" });
    expect(agentHeadersOf(covering)).toEqual({ "crawler-max-price": "USD 0.01" });

    const longSignature = new Headers({ signature: `sig1=:${"A".repeat(AGENT_HEADER_LIMITS.valueLength)}:`, "signature-input": signedInput('"@authority"'), "signature-agent": AGENT });
    expect(agentHeadersOf(longSignature)).toBeUndefined();

    const longName = `x-${"n".repeat(AGENT_HEADER_LIMITS.nameLength)}`;
    expect(agentHeadersOf(new Headers({ signature: SIGNATURE, "signature-input": signedInput(`"${longName}"`), [longName]: "1" }))).toBeUndefined();
  });

  it("forwards nothing of a signature that covers more headers than the platform takes", () => {
    const names = Array.from({ length: AGENT_HEADER_LIMITS.entries }, (_, index) => `x-h${index}`);
    const headers = new Headers({ signature: SIGNATURE, "signature-input": signedInput(names.map((name) => `"${name}"`).join(" ")), "payment-signature": "pay" });
    for (const name of names) headers.set(name, "1");
    expect(agentHeadersOf(headers)).toEqual({ "payment-signature": "pay" });

    // 30 covered (and the signature's own two) fit: the signature goes, the payment header no longer does.
    headers.delete(names[0]!);
    headers.delete(names[1]!);
    const signatureOnly = agentHeadersOf(headers)!;
    expect(Object.keys(signatureOnly)).toHaveLength(AGENT_HEADER_LIMITS.entries);
    expect(signatureOnly).toMatchObject({ signature: SIGNATURE, "x-h2": "1", "x-h31": "1" });
    expect(signatureOnly).not.toHaveProperty("payment-signature");

    // One fewer: the payment header is the 32nd.
    headers.delete(names[2]!);
    expect(agentHeadersOf(headers)).toMatchObject({ signature: SIGNATURE, "x-h3": "1", "payment-signature": "pay" });
  });

  it("never forwards the visitor's credentials: a signature covering them is not forwarded", () => {
    for (const credential of ["cookie", "authorization"]) {
      const headers = new Headers({ signature: SIGNATURE, "signature-input": signedInput(`"@authority" "${credential}"`), [credential]: "secret", "crawler-exact-price": "USD 0.01" });
      expect(agentHeadersOf(headers)).toEqual({ "crawler-exact-price": "USD 0.01" });
    }
  });

  it("skips a price or payment header over the bound, and a covered name that cannot be a header", () => {
    const headers = new Headers({ "payment-signature": "p".repeat(AGENT_HEADER_LIMITS.valueLength + 1), "crawler-max-price": "USD 1", "signature-input": signedInput('"not a name" "x-ok"'), "x-ok": "yes" });
    expect(agentHeadersOf(headers)).toEqual({ "crawler-max-price": "USD 1", "signature-input": headers.get("signature-input"), "x-ok": "yes" });
  });
});

describe("requestMethodOf", () => {
  it("keeps the method as sent (a signature covers it as is), and drops one longer than the platform accepts", () => {
    expect(requestMethodOf("GET")).toBe("GET");
    expect(requestMethodOf("Purge")).toBe("Purge");
    expect(requestMethodOf("X".repeat(17))).toBeUndefined();
  });
});

describe("withAgentHeaders", () => {
  it("puts the headers in the body's http, beside the facts", () => {
    const body = { identity: { anonymousIdentifier: "a" }, http: { url: "https://site.example/a" } };
    expect(withAgentHeaders(body, { signature: SIGNATURE })).toEqual({ identity: { anonymousIdentifier: "a" }, http: { url: "https://site.example/a", headers: { signature: SIGNATURE } } });
    const withoutFacts: { identity: object; http?: { url?: string } } = { identity: {} };
    expect(withAgentHeaders(withoutFacts, { signature: SIGNATURE })).toEqual({ identity: {}, http: { headers: { signature: SIGNATURE } } });
    expect(withAgentHeaders(body, undefined)).toBe(body);
  });

  it("leaves them out when the body would pass the platform's bound: decided unsigned, never refused", () => {
    const body = { identity: { anonymousIdentifier: "a" }, resource: { id: "/a", meta: { big: "m".repeat(MAX_DECISION_BODY_BYTES - 1000) } }, http: { url: "https://site.example/a" } };
    // JSON doubles every quote: 8,192 of them are 16 KB on the wire.
    const headers = { "signature-input": '"'.repeat(AGENT_HEADER_LIMITS.valueLength) };
    expect(withAgentHeaders(body, headers)).toBe(body);
    expect(withAgentHeaders(body, { signature: SIGNATURE })).toMatchObject({ http: { headers: { signature: SIGNATURE } } });
  });
});
