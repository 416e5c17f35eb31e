/**
 * Stage 2: `POST {API_PREFIX}offer-redemptions` — the site's own redemption route, so a browser redeems an offer it was
 * shown without a key: the visitor is who their cookies say (never what the body says), and the proxy's secret key
 * asks the platform. A JSON request gets the platform's answer; a form (a plain <form> without scripts) is redirected
 * to the checkout, or back, or shown a small error page.
 */
import { type ClientError, isUnavailable, type OfferRedemptionRequest } from "@edge-monetization/client";
import type { ProxyContext } from "../context";
import { htmlPage, jsonError } from "../pages";
import { visitorIdentity } from "./identity";

export function isRedemptionRequest(url: URL, context: ProxyContext): boolean {
  return url.pathname === `${context.config.apiPrefix}offer-redemptions`;
}

interface Submission {
  offerToken?: unknown;
  successUrl?: unknown;
  cancelUrl?: unknown;
  input?: unknown;
  preview?: unknown;
}

const FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data"];

async function readSubmission(request: Request): Promise<{ form: boolean; submission: Submission } | { error: Response }> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (FORM_TYPES.includes(type)) {
    try {
      const form = await request.formData();
      const field = (name: string) => {
        const value = form.get(name);
        return typeof value === "string" && value !== "" ? value : undefined;
      };
      return { form: true, submission: { offerToken: field("offerToken"), successUrl: field("successUrl"), cancelUrl: field("cancelUrl") } };
    } catch {
      return { error: htmlPage(400, "Offer not redeemed", "The form could not be read.") };
    }
  }
  if (type !== "application/json") return { error: jsonError(415, "unsupported_media_type", "Send JSON (application/json) or a form (application/x-www-form-urlencoded)") };
  try {
    const body: unknown = await request.json();
    if (typeof body !== "object" || body === null || Array.isArray(body)) return { error: jsonError(400, "validation_failed", "The body must be a JSON object") };
    return { form: false, submission: body as Submission };
  } catch {
    return { error: jsonError(400, "invalid_json", "The body is not valid JSON") };
  }
}

function failureStatus(error: ClientError): { status: number; code: string; message: string; requestId: string | null; headers: Record<string, string> } {
  if (error.kind === "api") {
    const headers: Record<string, string> = error.retryAfterSeconds !== undefined ? { "Retry-After": String(error.retryAfterSeconds) } : {};
    if (error.requestId) headers["X-Request-Id"] = error.requestId;
    return { status: error.status, code: error.code, message: error.message, requestId: error.requestId, headers };
  }
  const unavailable = isUnavailable(error);
  return { status: unavailable ? 503 : 502, code: unavailable ? "service_unavailable" : "upstream_error", message: error.message, requestId: null, headers: unavailable ? { "Retry-After": "1" } : {} };
}

export async function redeemOffer(request: Request, context: ProxyContext): Promise<Response> {
  if (request.method !== "POST") return jsonError(405, "method_not_allowed", "Offer redemptions are POST requests", { Allow: "POST" });
  const read = await readSubmission(request);
  if ("error" in read) return read.error;
  const { form, submission } = read;
  const referer = request.headers.get("referer") ?? undefined;
  // Where a form may be sent back to: the site's own pages only (a crafted form must not make the site redirect away).
  const siteOrigin = new URL(request.url).origin;
  const onSite = (value: unknown): string | undefined => {
    if (typeof value !== "string" || value === "") return undefined;
    try {
      const target = new URL(value, siteOrigin);
      return target.origin === siteOrigin ? target.href : undefined;
    } catch {
      return undefined;
    }
  };
  const back = onSite(referer);
  if (typeof submission.offerToken !== "string" || submission.offerToken === "") {
    return form ? htmlPage(400, "Offer not redeemed", "The offer is missing.", {}, back) : jsonError(400, "validation_failed", "offerToken is required");
  }
  const urlOrReferer = (value: unknown) => (typeof value === "string" && value !== "" ? value : referer);
  const successUrl = urlOrReferer(submission.successUrl);
  const cancelUrl = urlOrReferer(submission.cancelUrl);
  // Identity as for pages; a JWT the platform refuses redeems as the visitor's anonymous cookie, the one the offer's
  // token was shown to.
  const visitor = visitorIdentity(request, context.config);
  const body: OfferRedemptionRequest = {
    identity: visitor.request,
    offerToken: submission.offerToken,
    ...(successUrl ? { successUrl } : {}),
    ...(cancelUrl ? { cancelUrl } : {}),
    ...(!form && submission.input !== undefined ? { input: submission.input } : {}),
    ...(!form && typeof submission.preview === "boolean" ? { preview: submission.preview } : {}),
  };
  let result = await context.client.redeemOffer(body);
  if (!result.ok && result.error.kind === "api" && result.error.code === "invalid_jwt" && visitor.whenJwtRefused) {
    result = await context.client.redeemOffer({ ...body, identity: visitor.whenJwtRefused });
  }

  if (!form) {
    if (result.ok) return Response.json(result.data, { status: 201, headers: { "Cache-Control": "no-store" } });
    const failure = failureStatus(result.error);
    return jsonError(failure.status, failure.code, failure.message, failure.headers, failure.requestId);
  }
  if (result.ok) {
    const checkoutUrl = result.data.checkout?.url;
    const next = checkoutUrl ?? onSite(successUrl) ?? back ?? "/";
    return new Response(null, { status: 303, headers: { Location: next, "Cache-Control": "no-store" } });
  }
  const failure = failureStatus(result.error);
  return htmlPage(failure.status, "Offer not redeemed", failure.message, failure.headers, back);
}
