/**
 * Agents as identities: a decision whose request carries a Web Bot Auth signature (forwarded by the edge integration
 * in `http.headers`, secret keys only) is checked against the agent's key directory. A signature that verifies, and
 * whose nonce this platform has not accepted before, makes the request a verified agent:
 *   - the bot tag says so (`isVerified`, operator = the directory's origin), so the crawler/agent plans apply;
 *   - an anonymous request becomes the agent's operator (`authType: "agent"`, identifier = that origin), in a
 *     partition of the user data store of its own, so plans, meters, credits and the charges ledger key on the operator
 *     and no visitor-chosen identifier can reach them. A signed-in identity stays itself (an agent acting for a user).
 * Anything else — no signature, a malformed, expired, replayed or unverifiable one, an unknown key — leaves the request
 * exactly as it was (never the agent it claims to be), with the reason kept for the decision record and the trace.
 */
import { withMeterDeadline, type MeterObjectKey } from "../../durable-objects/meter/client";
import type { BotTag, ResolvedIdentity } from "../engine";
import { testGroup100 } from "../engine/testGroup";
import { verifyBotSignature } from "../identity/webBotAuth";
import { agentStore } from "../services/customers";
import type { CallerScope } from "./context";
import type { Services } from "./services";

/** What the decision learned about the request's agent signature (record and trace). */
export type AgentSignature =
  | { status: "absent" }
  | { status: "verified"; operator: string; keyId: string; covered: string[] }
  | { status: "invalid"; reason: string };

export const NO_SIGNATURE: AgentSignature = Object.freeze({ status: "absent" });

/**
 * Where an operator's accepted nonces live: outside every tenant (no organization id starts with `~`), so a nonce is
 * spent once wherever the signed request is presented; spread over NONCE_SHARDS objects per operator by the nonce
 * (the same nonce always reaches the same one), so a busy crawler's requests across many sites are not one object's.
 */
const NONCE_SHARDS = 64;
const NONCE_REGISTRY = (operator: string, nonce: string): MeterObjectKey => ({
  organizationId: "~platform",
  store: "agent-nonces",
  authenticated: true,
  identifier: `${operator} ${fnv1a(nonce) % NONCE_SHARDS}`,
});

/** FNV-1a over UTF-16 code units: a cheap, stable spread of random nonces over the shards (not a security measure). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193) >>> 0;
  return hash;
}


export interface AgentOutcome {
  identity: ResolvedIdentity;
  bot: BotTag | undefined;
  store: string;
  signature: AgentSignature;
  /** The verified signature's nonce and covered header values: what pay-per-crawl needs. */
  verified?: { nonce: string; covered: readonly string[] };
}

/**
 * The agent's headers as the customer's server relayed them (`http.headers`), by lower-case name. Read from
 * secret-key requests only: a browser holding the publishable key could send anything.
 */
export function agentHeadersOf({ keyType, body }: Pick<CallerScope, "keyType" | "body">): Record<string, string> | undefined {
  const headers = keyType === "secret" ? body.http?.headers : undefined;
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  return out;
}

export async function identifyAgent(
  services: Services,
  scope: Pick<CallerScope, "keyType" | "body" | "environment"> & { kind?: string; idempotencyKey?: string },
  store: string,
  resolved: { identity: ResolvedIdentity; bot: BotTag | undefined },
  headers: Record<string, string> | undefined,
): Promise<AgentOutcome> {
  const unchanged = (signature: AgentSignature): AgentOutcome => ({ ...resolved, store, signature });
  if (!headers || (headers.signature === undefined && headers["signature-input"] === undefined)) return unchanged(NO_SIGNATURE);
  const url = scope.body.http?.url;
  if (!url) return unchanged({ status: "invalid", reason: "a signed request needs http.url: the signature covers its authority" });

  const now = services.clock.now();
  const verdict = await verifyBotSignature(
    {
      method: scope.body.http?.method ?? "GET",
      url,
      signature: headers.signature,
      signatureInput: headers["signature-input"],
      signatureAgent: headers["signature-agent"],
      headers,
      tenant: scope.environment.organizationId,
    },
    services.keyDirectories,
    now,
  );
  if (verdict.status === "absent") return unchanged(NO_SIGNATURE);
  if (verdict.status === "invalid") return unchanged({ status: "invalid", reason: verdict.reason });
  // Without a nonce a captured request could be replayed until it expires, charging its operator each time.
  if (!verdict.nonce) return unchanged({ status: "invalid", reason: "the signature has no nonce: agents must sign each request with a fresh one" });

  const operator = verdict.operator;
  const partition = agentStore(store);
  // An access check consumes and charges nothing: it verifies without spending the nonce, which the surface decision
  // of the same request still needs. Everything else spends it, once across the whole platform — a signed request
  // captured by one tenant cannot be replayed into another tenant, environment or store.
  if (scope.kind !== "access_check") {
    const spent = await spendOnce(services, NONCE_REGISTRY(operator, verdict.nonce), verdict.nonce, verdict.expiresAt, retryClaim(scope, resolved.identity));
    if (spent === "unknown") return unchanged({ status: "invalid", reason: "the signature's nonce could not be checked (the meter did not answer)" });
    if (spent === "spent") return unchanged({ status: "invalid", reason: "the signature's nonce was used before (a replayed request)" });
  }

  const signature: AgentSignature = { status: "verified", operator, keyId: verdict.keyId, covered: verdict.covered };
  const bot = agentBot(resolved.bot, operator);
  const verified = { nonce: verdict.nonce, covered: verdict.covered };
  if (resolved.identity.authType !== "anonymous") return { identity: resolved.identity, bot, store, signature, verified };
  const identity: ResolvedIdentity = { authType: "agent", identifier: operator, isAuthenticated: true, jwtClaims: {}, testGroup100: testGroup100(operator) };
  return { identity, bot, store: partition, signature, verified };
}

/**
 * The bot tag of a verified agent. A tag Cloudflare verified stands as it is. Otherwise the signature proves only who
 * the operator is, not what its user agent claims (anyone can sign as "Googlebot"): an AI agent of that operator.
 */
/**
 * Spends `token` — a signature's nonce, an x402 authorization — once in the object `key` names, under the meter's
 * deadline: `fresh` the first time (or again for a retry under the same `claim`), `spent` after that, `unknown` when
 * the object did not answer in time.
 */
export async function spendOnce(services: Services, key: MeterObjectKey, token: string, until: number, claim: string | undefined): Promise<"fresh" | "spent" | "unknown"> {
  const claimed = await withMeterDeadline(() => services.meter.stub(key).claimNonce(token, until, services.clock.now(), claim) as Promise<boolean>, services.meter.deadlineMs);
  return !claimed.ok ? "unknown" : claimed.value ? "fresh" : "spent";
}

/**
 * What makes a second presentation of one nonce (or one x402 authorization) the same request retried rather than a
 * replay: the same Idempotency-Key, for the same environment, kind of call and identity as sent. A key reused by
 * another identity is not a retry.
 */
export function retryClaim(scope: { environment: { id: string }; kind?: string; idempotencyKey?: string }, identity: Pick<ResolvedIdentity, "authType" | "identifier">): string | undefined {
  if (scope.idempotencyKey === undefined) return undefined;
  return JSON.stringify([scope.environment.id, scope.kind ?? "", scope.idempotencyKey, identity.authType, identity.identifier]);
}

function agentBot(tag: BotTag | undefined, operator: string): BotTag {
  if (tag?.isVerified) return tag;
  const host = new URL(operator).host;
  return { category: "ai-agent", code: "signed-agent", isVerified: true, operator: host, product: tag?.product && tag.product !== "unknown" ? tag.product : host };
}
