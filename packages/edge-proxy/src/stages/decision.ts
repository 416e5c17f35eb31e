/**
 * Stage 4: the surface decision for the page — who the visitor is, which page (its path, and the <meta> of its head
 * for workflows to read), and the request facts. One Idempotency-Key per page view: a retry never consumes twice.
 */
import type { Result, SurfaceDecisionResponse } from "@edge-monetization/client";
import type { ProxyContext } from "../context";
import { headMeta } from "../content/rewrite";
import { requestFacts, type VisitorIdentity } from "./identity";

export async function decide(request: Request, url: URL, html: string, surface: string, visitor: VisitorIdentity, context: ProxyContext): Promise<Result<SurfaceDecisionResponse>> {
  const meta = await headMeta(html);
  return context.client.surfaceDecision(
    {
      surfaceSlug: surface,
      identity: visitor.request,
      resource: { id: url.pathname, meta },
      ...requestFacts(request),
    },
    { idempotencyKey: crypto.randomUUID() },
  );
}
