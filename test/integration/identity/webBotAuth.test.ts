/**
 * Web Bot Auth verification (workers/identity/webBotAuth.ts) and key directories (workers/services/keyDirectories.ts),
 * in workerd with real Ed25519 keys: requests signed as agents sign them (Cloudflare's web-bot-auth package), checked
 * against directories served by a fetch double. An unverifiable request is a verdict with its reason, never an error.
 */
import { describe, expect, it } from "vitest";
import { signatureHeaders } from "web-bot-auth";
import { signerFromJWK } from "web-bot-auth/crypto";
import { verifyBotSignature, type SignedRequest } from "../../../workers/identity/webBotAuth";
import { DIRECTORY_PATH, keyDirectories } from "../../../workers/services/keyDirectories";

const AGENT = "https://agent.example";
const SITE = "https://news.example/articles/42";

async function agentKey(): Promise<{ private: JsonWebKey; public: JsonWebKey }> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const privateJwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  const publicJwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  return { private: privateJwk, public: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x } };
}

interface SignOptions {
  url?: string;
  agent?: string;
  createdAt?: number;
  expiresAt?: number;
  components?: string[];
}

/** A request to SITE signed with `key`, naming `agent` as its Signature-Agent (as the agent would send it). */
async function signed(key: JsonWebKey, options: SignOptions = {}): Promise<SignedRequest> {
  const url = options.url ?? SITE;
  const signatureAgent = `"${options.agent ?? AGENT}"`;
  const createdAt = options.createdAt ?? Date.now();
  // An agent that leaves Signature-Agent out of its components signs without the header and adds it afterwards.
  const coversAgent = !options.components || options.components.includes("signature-agent");
  const headers = await signatureHeaders(new Request(url, { headers: coversAgent ? { "signature-agent": signatureAgent } : {} }), await signerFromJWK(key), {
    created: new Date(createdAt),
    expires: new Date(options.expiresAt ?? createdAt + 300_000),
    ...(options.components ? { components: options.components } : {}),
  });
  return { method: "GET", url, signature: headers.Signature, signatureInput: headers["Signature-Input"], signatureAgent };
}

/** Directories served by URL; every fetch recorded. */
function directoryServer(routes: Record<string, () => Response>) {
  const fetched: string[] = [];
  const fetch = async (request: Request) => {
    fetched.push(request.url);
    const route = routes[request.url];
    return route ? route() : new Response("not found", { status: 404 });
  };
  return { fetch, fetched };
}

const jwks = (...keys: JsonWebKey[]) => () =>
  Response.json({ keys }, { headers: { "content-type": "application/http-message-signatures-directory+json" } });

describe("Web Bot Auth", () => {
  it("verifies a signed agent against its directory, names its operator, and fetches the directory once", async () => {
    const key = await agentKey();
    const server = directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) });
    const directories = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: false });

    const verdict = await verifyBotSignature(await signed(key.private), directories, Date.now());
    expect(verdict).toMatchObject({ status: "verified", operator: AGENT, agent: `"${AGENT}"` });
    if (verdict.status !== "verified") throw new Error("unreachable");
    expect(verdict.keyId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verdict.nonce).toEqual(expect.any(String));

    expect((await verifyBotSignature(await signed(key.private), directories, Date.now())).status).toBe("verified");
    expect(server.fetched).toEqual([`${AGENT}${DIRECTORY_PATH}`]);
  });

  it("verifies other headers the signature covers (a crawler's price), and refuses them changed or missing", async () => {
    const key = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) }).fetch, allowInsecureLoopback: false });
    const signatureAgent = `"${AGENT}"`;
    const now = Date.now();
    const headers = await signatureHeaders(new Request(SITE, { headers: { "signature-agent": signatureAgent, "crawler-max-price": "USD 0.05" } }), await signerFromJWK(key.private), {
      created: new Date(now),
      expires: new Date(now + 300_000),
      components: ["@authority", "signature-agent", "crawler-max-price"],
    });
    const request: SignedRequest = { method: "GET", url: SITE, signature: headers.Signature, signatureInput: headers["Signature-Input"], signatureAgent };
    const verdict = await verifyBotSignature({ ...request, headers: { "crawler-max-price": "USD 0.05" } }, directories, now);
    expect(verdict).toMatchObject({ status: "verified" });
    if (verdict.status === "verified") expect(verdict.covered).toEqual(["@authority", "signature-agent", "crawler-max-price"]);
    expect(await verifyBotSignature({ ...request, headers: { "crawler-max-price": "USD 5.00" } }, directories, now)).toMatchObject({ status: "invalid", reason: expect.stringContaining("does not verify") });
    expect(await verifyBotSignature(request, directories, now)).toMatchObject({ status: "invalid", reason: expect.stringContaining("crawler-max-price") });
  });

  it("is absent without signature headers, and invalid with half of them", async () => {
    const directories = keyDirectories({ fetch: directoryServer({}).fetch, allowInsecureLoopback: false });
    expect(await verifyBotSignature({ method: "GET", url: SITE }, directories, Date.now())).toEqual({ status: "absent" });
    const key = await agentKey();
    const request = await signed(key.private);
    expect(await verifyBotSignature({ ...request, signature: undefined }, directories, Date.now())).toMatchObject({ status: "invalid" });
    expect(await verifyBotSignature({ ...request, signatureAgent: undefined }, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("Signature-Agent") });
  });

  it("refuses a spoofed agent: a signature by another key claiming the agent's directory", async () => {
    const agent = await agentKey();
    const impostor = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(agent.public) }).fetch, allowInsecureLoopback: false });
    expect(await verifyBotSignature(await signed(impostor.private), directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("no key") });
  });

  it("refuses a signature replayed to another host, or altered", async () => {
    const key = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) }).fetch, allowInsecureLoopback: false });
    const request = await signed(key.private);
    expect(await verifyBotSignature({ ...request, url: "https://other.example/articles/42" }, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("does not verify") });
    const flipped = request.signature!.replace(/:(.)/, (_, first: string) => `:${first === "A" ? "B" : "A"}`);
    expect(await verifyBotSignature({ ...request, signature: flipped }, directories, Date.now())).toMatchObject({ status: "invalid" });
    // The Signature-Agent header is covered: pointing it at another origin breaks the signature (or finds no key).
    expect((await verifyBotSignature({ ...request, signatureAgent: '"https://agent.example.evil"' }, directories, Date.now())).status).toBe("invalid");
  });

  it("checks the time window against the platform's clock, with a minute of skew", async () => {
    const key = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) }).fetch, allowInsecureLoopback: false });
    const now = Date.now();
    const expired = await signed(key.private, { createdAt: now - 600_000, expiresAt: now - 300_000 });
    expect(await verifyBotSignature(expired, directories, now)).toMatchObject({ status: "invalid", reason: expect.stringContaining("expired") });
    const early = await signed(key.private, { createdAt: now + 30_000, expiresAt: now + 330_000 });
    expect((await verifyBotSignature(early, directories, now)).status).toBe("verified");
    const future = await signed(key.private, { createdAt: now + 120_000, expiresAt: now + 420_000 });
    expect(await verifyBotSignature(future, directories, now)).toMatchObject({ status: "invalid", reason: expect.stringContaining("future") });
    const forever = await signed(key.private, { createdAt: now, expiresAt: now + 7 * 24 * 3600_000 });
    expect(await verifyBotSignature(forever, directories, now)).toMatchObject({ status: "invalid", reason: expect.stringContaining("window") });
  });

  it("requires the web-bot-auth tag and coverage of @authority and Signature-Agent", async () => {
    const key = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) }).fetch, allowInsecureLoopback: false });
    const request = await signed(key.private);
    const retagged = { ...request, signatureInput: request.signatureInput!.replace('tag="web-bot-auth"', 'tag="other"') };
    expect(await verifyBotSignature(retagged, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("tag") });
    const authorityOnly = await signed(key.private, { components: ["@authority"] });
    expect(await verifyBotSignature(authorityOnly, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("Signature-Agent") });
    const agentOnly = await signed(key.private, { components: ["signature-agent"] });
    expect(await verifyBotSignature(agentOnly, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("@authority") });
    expect(await verifyBotSignature({ ...request, signatureInput: "not a dictionary (" }, directories, Date.now())).toMatchObject({ status: "invalid" });
  });

  it("fetches directories over https only (loopback http where allowed), and never follows a redirect", async () => {
    const key = await agentKey();
    const server = directoryServer({
      [`http://127.0.0.1:9999${DIRECTORY_PATH}`]: jwks(key.public),
      [`https://moved.example${DIRECTORY_PATH}`]: () => new Response(null, { status: 301, headers: { location: `${AGENT}${DIRECTORY_PATH}` } }),
    });
    const strict = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: false });
    const local = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: true });
    expect(await verifyBotSignature(await signed(key.private, { agent: "http://127.0.0.1:9999" }), strict, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("https") });
    expect(await verifyBotSignature(await signed(key.private, { agent: "http://agent.example" }), local, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("https") });
    expect(await verifyBotSignature(await signed(key.private, { agent: "http://127.0.0.1:9999" }), local, Date.now())).toMatchObject({ status: "verified", operator: "http://127.0.0.1:9999" });
    expect(await verifyBotSignature(await signed(key.private, { agent: "https://moved.example" }), strict, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("301") });
  });

  it("takes only an origin on https under a DNS name as an agent: no paths (one host, two operators), IP literals or ports", async () => {
    const alice = await agentKey();
    const server = directoryServer({});
    const directories = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: false });
    for (const agent of [
      "https://pages.example/alice/directory.json",
      "https://127.0.0.1",
      "https://[::1]",
      "https://169.254.169.254",
      "https://10.0.0.7:8443",
      "https://agent.example:8443",
      "https://metadata.internal",
      "https://intranet",
      "https://agent.example/?x=1",
      "https://user:pass@agent.example",
    ]) {
      expect(await verifyBotSignature(await signed(alice.private, { agent }), directories, Date.now()), agent).toMatchObject({ status: "invalid", reason: expect.stringContaining("https origin") });
    }
    expect(server.fetched).toEqual([]);
    // The well-known URL itself is the origin's directory too.
    const known = directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(alice.public) });
    const verdict = await verifyBotSignature(await signed(alice.private, { agent: `${AGENT}${DIRECTORY_PATH}` }), keyDirectories({ fetch: known.fetch, allowInsecureLoopback: false }), Date.now());
    expect(verdict).toMatchObject({ status: "verified", operator: AGENT });
  });

  it("fetches at most 30 new directories a minute per tenant, so made-up agents cost a bounded number of fetches", async () => {
    const key = await agentKey();
    let now = Date.now();
    const server = directoryServer({});
    const directories = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: false, now: () => now });
    const verdicts = [];
    for (let i = 0; i < 35; i++) verdicts.push(await verifyBotSignature(await signed(key.private, { agent: `https://agent-${i}.example` }), directories, Date.now()));
    expect(server.fetched).toHaveLength(30);
    expect(verdicts.slice(30).every((verdict) => verdict.status === "invalid" && verdict.reason.includes("too many"))).toBe(true);
    // Another tenant's agents are not held up by this tenant's made-up ones.
    const elsewhere = await verifyBotSignature({ ...(await signed(key.private, { agent: "https://agent-other-tenant.example" })), tenant: "org_other" }, directories, Date.now());
    expect(elsewhere).toMatchObject({ status: "invalid", reason: expect.not.stringContaining("too many") });
    expect(server.fetched).toHaveLength(31);
    now += 61_000;
    await verifyBotSignature(await signed(key.private, { agent: "https://agent-late.example" }), directories, Date.now());
    expect(server.fetched).toHaveLength(32);
  });

  it("refuses a time with a fraction of a second (the format's times are integers)", async () => {
    const key = await agentKey();
    const directories = keyDirectories({ fetch: directoryServer({ [`${AGENT}${DIRECTORY_PATH}`]: jwks(key.public) }).fetch, allowInsecureLoopback: false });
    const request = await signed(key.private);
    const fractional = { ...request, signatureInput: request.signatureInput!.replace(/created=(\d+)/, "created=$1.5") };
    expect(await verifyBotSignature(fractional, directories, Date.now())).toMatchObject({ status: "invalid", reason: expect.stringContaining("when it was created") });
  });

  it("says why a directory is unusable, caches that for a minute, and asks again after it", async () => {
    const key = await agentKey();
    let now = Date.now();
    const server = directoryServer({
      [`https://broken.example${DIRECTORY_PATH}`]: () => new Response("{not json"),
      [`https://huge.example${DIRECTORY_PATH}`]: () => Response.json({ keys: [key.public], padding: "x".repeat(70_000) }),
      [`https://rsa.example${DIRECTORY_PATH}`]: () => Response.json({ keys: [{ kty: "RSA", n: "abc", e: "AQAB" }] }),
    });
    const directories = keyDirectories({ fetch: server.fetch, allowInsecureLoopback: false, now: () => now });
    const verdictFor = async (agent: string) => verifyBotSignature(await signed(key.private, { agent }), directories, Date.now());
    expect(await verdictFor("https://broken.example")).toMatchObject({ status: "invalid", reason: expect.stringContaining("not JSON") });
    expect(await verdictFor("https://huge.example")).toMatchObject({ status: "invalid", reason: expect.stringContaining("larger") });
    expect(await verdictFor("https://rsa.example")).toMatchObject({ status: "invalid", reason: expect.stringContaining("Ed25519") });
    expect(await verdictFor("https://missing.example")).toMatchObject({ status: "invalid", reason: expect.stringContaining("404") });

    const fetchesBefore = server.fetched.length;
    await verdictFor("https://broken.example");
    expect(server.fetched.length).toBe(fetchesBefore);
    now += 61_000;
    await verdictFor("https://broken.example");
    expect(server.fetched.length).toBe(fetchesBefore + 1);
  });
});
