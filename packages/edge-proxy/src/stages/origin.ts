/**
 * Stage 3: the page from the origin, the path as matched and the same query, the request forwarded as the visitor made
 * it; which requests are decided (the route), and which answers pass back untouched (nothing to decide on, or nothing a
 * decision could change).
 */
import type { ProxyContext } from "../context";

/** Paths longer than this are never matched against SURFACES / IGNORE_PATHS (it bounds the regular expressions' cost). */
export const MAX_MATCHED_PATH_LENGTH = 4096;
/** The platform's bound on a resource id: a decided path is the page's resource id, so it can be no longer. */
export const MAX_DECIDED_PATH_LENGTH = 512;

/** What the proxy does with a request that is not an endpoint's or a redemption. */
export type Route =
  | { kind: "pass"; /** The path as matched: what the origin is asked for. */ path: string }
  | { kind: "decide"; surface: string; /** The path as matched: the page's resource id, and what the origin is asked for. */ path: string }
  /** A path too long to match, or to decide: answered 414, never fetched (it must not reach the page undecided). */
  | { kind: "too long" };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The path as a browser and most servers read it: percent-escapes of unreserved characters decoded (`/%61rticles/` is
 * `/articles/`) and repeated slashes merged (nginx and Apache serve `//articles/x` as `/articles/x`), so a pattern
 * cannot be side-stepped by escaping or doubling. Other escapes stay: they mean something else encoded. It is also the
 * path the origin is asked for: what is decided is what is served.
 */
export function matchedPath(pathname: string): string {
  const decoded = pathname.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const character = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(character) ? character : escape;
  });
  return decoded.replace(/\/{2,}/g, "/");
}

/**
 * Whether and how this request is decided: a GET of a path that IGNORE_PATHS does not exclude and a surface covers (the
 * first SURFACES pattern that matches, else SURFACE_SLUG). A HEAD (link previews; no body, so no article) passes: it
 * must not use up a reader's article. Other methods (a form posted to the page) pass with FAILURE_MODE=open; with
 * `closed` they are decided like a GET, so no answer of a decided path reaches the visitor undecided.
 */
export function routeOf(request: Request, url: URL, context: ProxyContext): Route {
  const { surfaces, surfaceSlug, ignorePaths, failureMode } = context.config;
  const path = matchedPath(url.pathname);
  if (path.length > MAX_MATCHED_PATH_LENGTH) return { kind: "too long" };
  if (request.method === "HEAD" || (request.method !== "GET" && failureMode === "open")) return { kind: "pass", path };
  if (ignorePaths.some((pattern) => pattern.test(path))) return { kind: "pass", path };
  const surface = surfaces.find((entry) => entry.pattern.test(path))?.surface ?? surfaceSlug;
  if (surface === null) return { kind: "pass", path };
  if (path.length > MAX_DECIDED_PATH_LENGTH) return { kind: "too long" };
  return { kind: "decide", surface, path };
}

// A decided page is always asked for whole, fresh and as UTF-8 HTML: a part (Range), a 304, JSON or another charset
// from an origin that negotiates would leave nothing to decide on, and passing them untouched would hand out the
// article without a decision.
const NEGOTIATING = ["range", "if-range", "if-none-match", "if-modified-since", "accept-charset"];
const DECIDED_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

export function fetchOrigin(request: Request, url: URL, route: Exclude<Route, { kind: "too long" }>, context: ProxyContext): Promise<Response> {
  // The target is ORIGIN_URL with the path set on it — never the path resolved against it: `//host/x` or `/\host/x`
  // would name another host.
  const target = new URL(context.config.originUrl);
  target.pathname = route.path;
  target.search = url.search;
  const headers = new Headers(request.headers);
  // The Host is the origin's (from the URL); the origin learns the site's from X-Forwarded-Host.
  headers.delete("host");
  headers.set("X-Forwarded-Host", url.host);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  if (route.kind === "decide") {
    for (const name of NEGOTIATING) headers.delete(name);
    headers.set("Accept", DECIDED_ACCEPT);
  }
  return context.origin(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
}

/**
 * A redirect to ORIGIN_URL itself (an origin that knows only its own name) sent to the same path and query on the
 * visitor's host instead: the visitor must stay on the site, behind the proxy.
 */
export function onVisitorHost(response: Response, url: URL, context: ProxyContext): Response {
  if (response.status < 300 || response.status >= 400) return response;
  const location = response.headers.get("location");
  if (!location) return response;
  let target: URL;
  try {
    target = new URL(location, context.config.originUrl);
    // A relative Location already resolves on the visitor's host.
    if (target.origin !== context.config.originUrl || new URL(location, url.origin).origin === url.origin) return response;
  } catch {
    return response;
  }
  const onSite = new URL(url.origin);
  onSite.pathname = target.pathname;
  onSite.search = target.search;
  onSite.hash = target.hash;
  const rewritten = new Response(response.body, { status: response.status, statusText: response.statusText, headers: response.headers });
  rewritten.headers.set("Location", onSite.href);
  return rewritten;
}

/** The charset a Content-Type names, lowercased, or null. */
function charsetOf(contentType: string): string | null {
  return /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1]?.toLowerCase() ?? null;
}

/**
 * Why the origin's answer to a decided request passes as is, or null when the page gets its decision: only a 200
 * (an error page or a redirect has nothing to sell) HTML page in UTF-8 (the rewriter reads and writes UTF-8: another
 * charset would come out garbled) is decided.
 */
export function passThroughReason(response: Response): "status" | "not html" | "charset" | null {
  if (response.status !== 200) return "status";
  const type = response.headers.get("content-type") ?? "";
  if (!/^\s*text\/html\b/i.test(type)) return "not html";
  const charset = charsetOf(type);
  if (charset !== null && charset !== "utf-8" && charset !== "utf8") return "charset";
  return null;
}

/** Pages larger than this are not decided (5 MiB): read whole, they would hold the Worker's memory. */
export const MAX_PAGE_BYTES = 5 * 1024 * 1024;

/**
 * The page's text, read whole (the decision needs its <head> first, and a failed rewrite must still leave the page
 * to serve) — or, past MAX_PAGE_BYTES (its Content-Length, or what was read), `tooLarge`: the origin's answer, the
 * part already read and the rest streamed after it, as it came.
 */
export async function readPage(response: Response): Promise<{ html: string } | { tooLarge: Response; cancel(): Promise<void> }> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > MAX_PAGE_BYTES) return { tooLarge: response, cancel: () => response.body?.cancel() ?? Promise.resolve() };
  if (!response.body) return { html: "" };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > MAX_PAGE_BYTES) {
      const rest = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
        },
        async pull(controller) {
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel: (reason) => reader.cancel(reason),
      });
      return {
        tooLarge: new Response(rest, { status: response.status, statusText: response.statusText, headers: response.headers }),
        cancel: () => reader.cancel(),
      };
    }
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { html: new TextDecoder().decode(bytes) };
}
