/**
 * Stage 4: the surface decision for the page — who the visitor is, which page (its path, and the <meta> of its head
 * for workflows to read), and the request facts. One Idempotency-Key per page view: a retry never consumes twice.
 */
import type { ClientError, IdentityRequest, Result, SurfaceDecisionResponse } from "@edge-monetization/client";
import type { ProxyContext } from "../context";
import { requestFacts } from "./identity";

export function decide(request: Request, page: { id: string; meta: Record<string, string> }, surface: string, identity: IdentityRequest, context: ProxyContext): Promise<Result<SurfaceDecisionResponse>> {
  return context.client.surfaceDecision(
    {
      surfaceSlug: surface,
      identity,
      resource: { id: page.id, meta: page.meta },
      ...requestFacts(request),
    },
    { idempotencyKey: crypto.randomUUID() },
  );
}

/** Whether the platform answered `code` (its refusal of the identity that was sent: nothing was consumed). */
export function refused(result: Result<unknown>, code: "invalid_jwt" | "invalid_identity"): result is { ok: false; error: ClientError & { kind: "api" }; attempts: number; failedOpen: boolean } {
  return !result.ok && result.error.kind === "api" && result.error.code === code;
}
