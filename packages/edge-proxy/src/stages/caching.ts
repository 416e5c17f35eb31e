/**
 * Stage 8: a page changed for one visitor (their paywall, their cookie) must never be served to another by a shared
 * cache, nor revalidated against the origin's unchanged page.
 */
export function markPersonalised(headers: Headers): void {
  headers.set("Cache-Control", "private, no-store");
  headers.delete("ETag");
  headers.delete("Last-Modified");
}
