/**
 * What the proxy tests share: a tenant whose workflows do what the page asks (so one organization serves every case),
 * an origin double serving HTML strings, and a proxy wired to the in-process platform.
 */
import { expect } from "vitest";
import { createOrganization, fetchWorker, publish, type TestOrganization } from "../../../test/support/api";
import { createEdgeProxy, type EdgeProxy, type ProxyConfig } from "../src/index";
import type { Logger } from "../src/log";

export const SITE = "https://site.example";
export const ORIGIN = "https://origin.example";
export const PLATFORM = "http://platform.test";

// The component returns the page's `test-content` meta (JSON) as its content, or, with `test-echo`, what it was told
// about the request as a text item; the surface returns `test-http` as its http behaviour.
const COMPONENT_SOURCE = `export default ({ identity, resource, context }) => {
  const meta = (resource && resource.meta) || {};
  if (meta["test-echo"]) {
    const told = { identifier: identity.identifier, authType: identity.authType, resource, url: context.url, userAgent: context.userAgent, clientIp: context.clientIp, referer: context.referer };
    return { content: { append: [{ type: "text", content: JSON.stringify(told) }] } };
  }
  return meta["test-content"] ? { content: JSON.parse(meta["test-content"]) } : {};
};`;
const SURFACE_SOURCE = `export default ({ resource }) => {
  const meta = (resource && resource.meta) || {};
  return meta["test-http"] ? { http: JSON.parse(meta["test-http"]) } : {};
};`;
const ENDPOINT_SOURCE = `export default async (request, { path }) => {
  const url = new URL(request.url);
  const headers = new Headers({ "content-type": "application/json" });
  headers.append("set-cookie", "endpoint_session=yes; Path=/; HttpOnly");
  return new Response(JSON.stringify({ path, method: request.method, query: url.search, body: await request.text(), proxyVersion: request.headers.get("x-mos-proxy-version"), proxyClient: request.headers.get("x-mos-proxy-client") }), { headers });
};`;

export async function scriptedTenant(): Promise<TestOrganization> {
  const org = await createOrganization("Edge proxy");
  await publish(
    org.adminKey,
    {
      version: 1,
      features: { articles: { name: "Articles", properties: { enabled: { type: "enabled", fallback: "off" } } } },
      plans: { anonymous: { name: "Anonymous", autoAssign: ["anonymous"], features: { articles: { enabled: "on" } } } },
      surfaces: { page: { name: "Page", components: { main: { name: "Main", cssSelector: "#main" } } } },
      workflows: {
        main: { type: "component", surface: "page", component: "main", source: COMPONENT_SOURCE },
        page: { type: "surface", surface: "page", source: SURFACE_SOURCE },
        echo: { type: "endpoint", path: "echo", access: "none", source: ENDPOINT_SOURCE },
        // A customer's middleware refusing one visitor (what the proxy must answer instead of the page).
        gate: { type: "middleware", source: `export default ({ identity }) => identity.identifier === "blocked-visitor" ? { fail: { status: 451, message: "Not for you" } } : {};` },
      },
    },
    [org.preview.id],
  );
  return org;
}

const attribute = (value: string) => value.replaceAll("&", "&amp;").replaceAll('"', "&quot;");

/** An HTML page whose meta tells the scripted tenant's workflows what to return. */
export function page(options: { content?: unknown; http?: unknown; echo?: boolean; main?: string; head?: string } = {}): string {
  const meta = [
    options.content !== undefined ? `<meta name="test-content" content="${attribute(JSON.stringify(options.content))}">` : "",
    options.http !== undefined ? `<meta name="test-http" content="${attribute(JSON.stringify(options.http))}">` : "",
    options.echo ? `<meta name="test-echo" content="yes">` : "",
  ].join("");
  return `<!doctype html><html><head><title>Page</title>${meta}${options.head ?? ""}</head><body><div id="main">${options.main ?? "<p>Hello</p>"}</div></body></html>`;
}

export type OriginAnswer = string | Response | ((request: Request) => Response | Promise<Response>);

/** An origin serving `pages` by path (a string is an HTML page), recording what it was asked. */
export function originDouble(pages: Record<string, OriginAnswer>) {
  const requests: Request[] = [];
  const fetch = async (request: Request) => {
    requests.push(request.clone());
    const answer = pages[new URL(request.url).pathname];
    if (answer === undefined) return new Response("not found", { status: 404, headers: { "content-type": "text/plain" } });
    if (typeof answer === "string") return new Response(answer, { headers: { "content-type": "text/html; charset=utf-8", etag: '"v1"', "cache-control": "public, max-age=600" } });
    return typeof answer === "function" ? answer(request) : answer.clone();
  };
  return { fetch, requests };
}

/** The platform in process, recording every request the proxy sends it. */
export function recordedPlatform(fetcher: (request: Request) => Promise<Response> = fetchWorker) {
  const requests: Request[] = [];
  return {
    requests,
    fetch: (request: Request) => {
      requests.push(request.clone());
      return fetcher(request);
    },
  };
}

export function recordingLogger() {
  const errors: string[] = [];
  const warnings: string[] = [];
  const logger: Logger = { error: (message) => errors.push(message), warn: (message) => warnings.push(message) };
  return { logger, errors, warnings };
}

export function proxyOver(
  org: TestOrganization,
  origin: { fetch: (request: Request) => Promise<Response> },
  config: Partial<ProxyConfig> = {},
  dependencies: { platform?: (request: Request) => Promise<Response>; logger?: Logger } = {},
): EdgeProxy {
  return createEdgeProxy(
    { platformUrl: PLATFORM, secretKey: org.preview.secretKey, originUrl: ORIGIN, surfaceSlug: "page", ...config },
    { platform: dependencies.platform ?? fetchWorker, origin: origin.fetch, logger: dependencies.logger ?? recordingLogger().logger },
  );
}

/** A visitor's request to the site. */
export function visit(path: string, init: RequestInit & { cookie?: string } = {}): Request {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  return new Request(`${SITE}${path}`, { ...init, headers });
}

/** The text the scripted component echoed into #main (what the workflows were told about the request). */
export function echoed(html: string): Record<string, any> {
  const match = /<div id="main"><p>Hello<\/p>(.*)<\/div>/s.exec(html);
  expect(match, html).not.toBeNull();
  return JSON.parse(match![1]!.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&"));
}

/** `name=value` of the Set-Cookie line for `name`, or undefined. */
export function setCookie(response: Response, name: string): string | undefined {
  return response.headers.getSetCookie().find((line) => line.startsWith(`${name}=`));
}
