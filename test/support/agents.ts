/**
 * Test agents for Web Bot Auth: an Ed25519 key whose public half a local directory serves (test/fake-key-directories,
 * one origin per agent), and requests signed the way agents sign them (Cloudflare's web-bot-auth package), as the
 * `http.headers` an edge integration relays to a decision.
 */
import { signatureHeaders as rawSignatureHeaders } from "http-message-sig";
import { inject } from "vitest";
import { REQUEST_COMPONENTS, signatureHeaders } from "web-bot-auth";
import { signerFromJWK } from "web-bot-auth/crypto";

export interface SignOptions {
  /** Headers the agent sends and its signature covers (e.g. `crawler-max-price`). */
  covered?: Record<string, string>;
  createdAt?: number;
  expiresAt?: number;
  /** Sign without a nonce (web-bot-auth always adds one). */
  withoutNonce?: boolean;
  /** This nonce instead of a fresh one (web-bot-auth's `generateNonce()` makes a valid one). */
  nonce?: string;
  /** Name this Signature-Agent instead of the agent's own origin (a spoof). */
  agent?: string;
}

export interface TestAgent {
  /** The agent's origin, e.g. `http://127.0.0.1:40123`: its operator identity once verified. */
  origin: string;
  publicJwk: JsonWebKey;
  privateJwk: JsonWebKey;
  /** The headers of a request to `url` signed with this agent's key (lower-case names, as `http.headers`). */
  sign(url: string, options?: SignOptions): Promise<Record<string, string>>;
  /** How many times the platform fetched this agent's directory. */
  directoryFetches(): Promise<number>;
}

export async function ed25519Jwks(): Promise<{ privateJwk: JsonWebKey; publicJwk: JsonWebKey }> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const privateJwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  const exported = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  return { privateJwk, publicJwk: { kty: exported.kty, crv: exported.crv, x: exported.x } };
}

/** A new agent with its own key and directory origin. */
export async function newAgent(): Promise<TestAgent> {
  const { privateJwk, publicJwk } = await ed25519Jwks();
  const base = inject("keyDirectoriesBase");
  const created = await fetch(`${base}/directories`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ keys: [publicJwk] }) });
  if (created.status !== 201) throw new Error(`key directory not created: ${created.status}`);
  const { origin } = (await created.json()) as { origin: string };
  return {
    origin,
    publicJwk,
    privateJwk,
    sign: (url, options) => signRequest(privateJwk, options?.agent ?? origin, url, options),
    async directoryFetches() {
      const response = await fetch(`${base}/directories/${new URL(origin).port}/fetches`);
      return ((await response.json()) as { fetches: number }).fetches;
    },
  };
}

/** A request to `url` signed with `privateJwk`, naming `agent` as its Signature-Agent. */
export async function signRequest(privateJwk: JsonWebKey, agent: string, url: string, options: SignOptions = {}): Promise<Record<string, string>> {
  const signatureAgent = `"${agent}"`;
  const covered = options.covered ?? {};
  const request = new Request(url, { headers: { "signature-agent": signatureAgent, ...covered } });
  const createdAt = options.createdAt ?? Date.now();
  const expiresAt = options.expiresAt ?? createdAt + 60_000;
  const components = [...REQUEST_COMPONENTS, ...Object.keys(covered)];
  const signer = await signerFromJWK(privateJwk);
  const headers = options.withoutNonce
    ? await rawSignatureHeaders(request, { signer, components, created: new Date(createdAt), expires: new Date(expiresAt), keyid: signer.keyid, tag: "web-bot-auth" })
    : await signatureHeaders(request, signer, { created: new Date(createdAt), expires: new Date(expiresAt), components, ...(options.nonce ? { nonce: options.nonce } : {}) });
  return { ...covered, "signature-agent": signatureAgent, signature: headers.Signature, "signature-input": headers["Signature-Input"] };
}
