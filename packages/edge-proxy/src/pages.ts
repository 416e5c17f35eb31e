/** The few pages the proxy answers itself. */
import { escapeText } from "./content/render";

export function htmlPage(status: number, title: string, message: string, headers: Record<string, string> = {}, link?: string): Response {
  const back = link ? `<p><a href="${escapeText(link).replaceAll('"', "&quot;")}">Go back</a></p>` : "";
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeText(title)}</title></head><body><main><h1>${escapeText(title)}</h1><p>${escapeText(message)}</p>${back}</main></body></html>`;
  return new Response(body, { status, headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", ...headers } });
}

export function jsonError(status: number, code: string, message: string, headers: Record<string, string> = {}, requestId: string | null = null): Response {
  return Response.json({ status: "error", statusCode: status, message, code, requestId }, { status, headers: { "Cache-Control": "no-store", ...headers } });
}

/** FAILURE_MODE=closed: the page is not served while the platform cannot say who may read it. */
export const SERVICE_UNAVAILABLE_SECONDS = 30;
export function unavailablePage(): Response {
  return htmlPage(503, "Temporarily unavailable", "This page cannot be served right now. Please try again in a moment.", { "Retry-After": String(SERVICE_UNAVAILABLE_SECONDS) });
}

/**
 * A prefetch (or prerender) of a decided page: refused, so that it uses up no article — browsers discard a failed
 * prefetch and fetch the page when the visitor actually goes to it.
 */
export function prefetchRefused(): Response {
  return new Response(null, { status: 503, headers: { "Cache-Control": "no-store" } });
}
