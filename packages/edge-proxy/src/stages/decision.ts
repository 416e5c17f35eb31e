/**
 * Stage 4: the surface decision for the page — who the visitor is, which page (its path, and the <meta> of its head
 * for workflows to read), the request facts, and what an agent sent the platform reads (its Web Bot Auth signature,
 * the price it agrees to pay per crawl, an x402 payment). One Idempotency-Key per page view: a retry never consumes
 * twice.
 */
import {
  agentHeadersOf,
  MAX_DECISION_BODY_BYTES,
  requestMethodOf,
  withAgentHeaders,
  type ClientError,
  type IdentityRequest,
  type Result,
  type SurfaceDecisionRequest,
  type SurfaceDecisionResponse,
} from "@edge-monetization/client";
import type { ProxyContext } from "../context";
import { warnOnce } from "../log";
import { requestFacts } from "./identity";

const encoder = new TextEncoder();
const jsonBytes = (value: unknown) => encoder.encode(JSON.stringify(value)).byteLength;

/**
 * The decision's body, never over MAX_DECISION_BODY_BYTES whatever the visitor sends. What the visitor controls is
 * bounded: the facts are cut to the platform's bounds (at most ~37 KB once JSON doubles every `"` and `\`), a JWT is
 * at most 16,384 base64url characters (never escaped), an identifier 512 cookie-octets, the path 512 characters. The
 * page's meta (the origin's, unbounded) fills the room left, tag by tag in page order; a tag that does not fit is left
 * out (`cut`). The agent's headers come last, only if they fit (agentHeadersOf bounds each, not their sum): a visitor
 * cannot crowd the page's meta out with them, and a request too large to carry them is decided unsigned.
 */
export function decisionBody(request: Request, page: { id: string; meta: Record<string, string> }, surface: string, identity: IdentityRequest): { body: SurfaceDecisionRequest; cut: boolean } {
  const meta: Record<string, string> = {};
  const facts = requestFacts(request);
  const method = requestMethodOf(request.method);
  const body = { surfaceSlug: surface, identity, resource: { id: page.id, meta }, ...facts, http: { ...facts.http, ...(method ? { method } : {}) } } satisfies SurfaceDecisionRequest;
  let room = MAX_DECISION_BODY_BYTES - jsonBytes(body);
  let cut = false;
  for (const [name, content] of Object.entries(page.meta)) {
    // `"name":"content"` and the comma before the next one.
    const cost = jsonBytes(name) + jsonBytes(content) + 2;
    if (cost > room) {
      cut = true;
      continue;
    }
    meta[name] = content;
    room -= cost;
  }
  return { body: withAgentHeaders(body, agentHeadersOf(request.headers)), cut };
}

export function decide(request: Request, page: { id: string; meta: Record<string, string> }, surface: string, identity: IdentityRequest, context: ProxyContext): Promise<Result<SurfaceDecisionResponse>> {
  const { body, cut } = decisionBody(request, page, surface, identity);
  if (cut) warnOnce(context.logger, `meta cut ${surface}`, `edge-proxy: a page of surface "${surface}" has more <meta> than a decision can carry (${MAX_DECISION_BODY_BYTES} bytes in all): the tags that did not fit were left out`, { url: page.id });
  return context.client.surfaceDecision(body, { idempotencyKey: crypto.randomUUID() });
}

/** Whether the platform answered `code` (its refusal of the identity that was sent: nothing was consumed). */
export function refused(result: Result<unknown>, code: "invalid_jwt" | "invalid_identity"): result is { ok: false; error: ClientError & { kind: "api" }; attempts: number; failedOpen: boolean } {
  return !result.ok && result.error.kind === "api" && result.error.code === code;
}
