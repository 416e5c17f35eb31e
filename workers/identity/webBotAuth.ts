/**
 * Web Bot Auth: an agent signs its requests (HTTP Message Signatures, RFC 9421, with the `web-bot-auth` tag) with an
 * Ed25519 key it publishes in a key directory on its own origin, named by the `Signature-Agent` header. A request
 * whose signature checks out against that directory comes from whoever controls that origin — its *operator* — which
 * is what plans, meters and credits of agents key on.
 *
 * Parsing the signature headers and rebuilding the signature base are `http-message-sig`'s (the library Cloudflare's
 * `web-bot-auth` is built on); the policy is here: which components must be covered, the tag, the algorithm, the time
 * window (against the platform's clock, with a small skew), and the key looked up by its JWK thumbprint in the
 * operator's directory. Anything that does not check out is a verdict, never an exception: an unverifiable request is
 * an unverified visitor, never the agent it claims to be.
 */
import { parseAcceptSignature, verify as verifyMessage, type Component } from "http-message-sig";

export const WEB_BOT_AUTH_TAG = "web-bot-auth";
/** How far `created` may lie in the future: clocks of signers and of the platform drift a little. */
export const CLOCK_SKEW_MS = 60_000;
/** The longest validity window accepted: a signature is a short-lived proof, not a credential. */
export const MAX_SIGNATURE_LIFETIME_MS = 24 * 60 * 60 * 1000;
const MAX_HEADER_LENGTH = 4_096;
/** Web Bot Auth nonces are 64 random bytes in base64 (88 characters); longer ones only grow the nonce store. */
const MAX_NONCE_LENGTH = 256;

/** The parts of a request a signature covers, as a decision receives them (the edge integrations forward them). */
export interface SignedRequest {
  method: string;
  /** The URL the agent requested: its authority is what `@authority` covers. */
  url: string;
  signature?: string | undefined;
  signatureInput?: string | undefined;
  signatureAgent?: string | undefined;
  /**
   * Other request headers the signature may cover, by lower-case name — a crawler signs its `crawler-exact-price` /
   * `crawler-max-price` so that nobody on the way can raise what it agreed to pay.
   */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Whose request this is (the organization): new directories are fetched within a budget per tenant. */
  tenant?: string | undefined;
}

/** Public keys of one agent's directory, by JWK thumbprint (RFC 7638: the `keyid` agents sign with). */
export type DirectoryKeys = ReadonlyMap<string, CryptoKey>;

export interface KeyDirectoryLookup {
  /** The keys of the directory `agent` names, or why there are none to check against. */
  keysOf(agent: URL, tenant?: string): Promise<{ ok: true; keys: DirectoryKeys } | { ok: false; reason: string }>;
  /** Whether this URL may name a directory at all (https; a loopback address only where the operator allows it). */
  allows(agent: URL): boolean;
}

export type BotSignatureVerdict =
  | { status: "absent" }
  | {
      status: "verified";
      /** The origin of the agent's directory: who signed. */
      operator: string;
      /** The Signature-Agent URL as sent. */
      agent: string;
      keyId: string;
      nonce: string | null;
      createdAt: number;
      expiresAt: number;
      /** The components the signature covers, lower-case (`@authority`, `signature-agent`, `crawler-max-price`, …). */
      covered: string[];
    }
  | { status: "invalid"; reason: string };

/** Checks a request's Web Bot Auth signature against its agent's key directory. */
export async function verifyBotSignature(request: SignedRequest, directories: KeyDirectoryLookup, now: number): Promise<BotSignatureVerdict> {
  const { signature, signatureInput, signatureAgent } = request;
  if (!signature && !signatureInput) return { status: "absent" };
  if (!signature || !signatureInput) return invalid("Signature and Signature-Input must come together");
  if ([signature, signatureInput, signatureAgent ?? ""].some((value) => value.length > MAX_HEADER_LENGTH)) return invalid("a signature header is too long");
  if (!signatureAgent) return invalid("no Signature-Agent: nothing names the key directory to check against");

  const agent = agentUrl(signatureAgent);
  if (!agent) return invalid("Signature-Agent is not a URL");
  if (!directories.allows(agent)) return invalid("the Signature-Agent must name an https origin (a DNS name on port 443) whose well-known directory holds the keys");

  let target: URL;
  try {
    target = new URL(request.url);
  } catch {
    return invalid("the request's URL is not a URL");
  }

  let declared: ReturnType<typeof parseAcceptSignature>;
  try {
    declared = parseAcceptSignature(signatureInput);
  } catch (error) {
    return invalid(`Signature-Input does not parse: ${messageOf(error)}`);
  }
  const covered = new Set(declared.components.map(componentName));
  const extra = request.headers ?? {};
  for (const name of covered) {
    if (!name.startsWith("@") && name !== "signature-agent" && extra[name] === undefined) return invalid(`the signature covers a ${name} header the request does not carry`);
  }
  if (!covered.has("@authority")) return invalid("the signature does not cover @authority");
  if (!covered.has("signature-agent")) return invalid("the signature does not cover the Signature-Agent header");
  const parameters = declared.parameters as Record<string, unknown>;
  if (parameters.tag !== WEB_BOT_AUTH_TAG) return invalid(`the signature's tag is not ${WEB_BOT_AUTH_TAG}`);
  if (parameters.alg !== undefined && parameters.alg !== "ed25519") return invalid("only ed25519 signatures are accepted");
  if (typeof parameters.nonce === "string" && parameters.nonce.length > MAX_NONCE_LENGTH) return invalid(`the signature's nonce is longer than ${MAX_NONCE_LENGTH} characters`);
  const keyId = typeof parameters.keyid === "string" ? parameters.keyid : null;
  if (!keyId) return invalid("the signature names no keyid");
  const createdAt = instant(parameters.created);
  const expiresAt = instant(parameters.expires);
  if (createdAt === null || expiresAt === null) return invalid("the signature must say when it was created and when it expires");
  if (createdAt > now + CLOCK_SKEW_MS) return invalid("the signature was created in the future");
  if (expiresAt <= now) return invalid("the signature has expired");
  if (expiresAt < createdAt || expiresAt - createdAt > MAX_SIGNATURE_LIFETIME_MS) return invalid("the signature's validity window is too long or inverted");

  const directory = await directories.keysOf(agent, request.tenant);
  if (!directory.ok) return invalid(`the key directory could not be used: ${directory.reason}`);
  const key = directory.keys.get(keyId);
  if (!key) return invalid("the key directory has no key with the signature's keyid");

  try {
    const valid = await verifyMessage(
      { method: request.method, url: target.href, headers: new Headers({ ...extra, signature, "signature-input": signatureInput, "signature-agent": signatureAgent }) },
      async (data, bytes) => crypto.subtle.verify("Ed25519", key, bytes, new TextEncoder().encode(data)),
    );
    if (!valid) return invalid("the signature does not verify");
  } catch (error) {
    return invalid(`the signature does not verify: ${messageOf(error)}`);
  }
  const nonce = typeof parameters.nonce === "string" ? parameters.nonce : null;
  return { status: "verified", operator: agent.origin, agent: signatureAgent, keyId, nonce, createdAt, expiresAt, covered: [...covered] };
}

/** `Signature-Agent` is a structured-field string (`"https://agent.example"`); early agents send the bare URL. */
function agentUrl(header: string): URL | null {
  const trimmed = header.trim();
  const unquoted = trimmed.startsWith('"') && trimmed.endsWith('"') && trimmed.length >= 2 ? trimmed.slice(1, -1) : trimmed;
  try {
    return new URL(unquoted);
  } catch {
    return null;
  }
}

function componentName(component: Component): string {
  return (typeof component === "string" ? component : component.name).toLowerCase();
}

/**
 * `created` / `expires` are integer seconds since the epoch. The parser hands back a Date (or a number): a fraction of a
 * second left in it means the signature sent a non-integer, which the format does not allow.
 */
function instant(value: unknown): number | null {
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) && ms % 1000 === 0 ? ms : null;
  }
  if (typeof value === "number" && Number.isInteger(value)) return value * 1000;
  return null;
}

const invalid = (reason: string): BotSignatureVerdict => ({ status: "invalid", reason });

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
