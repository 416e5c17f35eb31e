/**
 * Helpers of the browser package's live tests: the package's bundles built from its sources with esbuild (as
 * scripts/packages/build.mjs builds them, without writing dist/ or packages/sizes.json), a site served to chromium
 * with `page.route` on its own 127.0.0.1 origin (so the platform is cross-origin to it, as for a customer's site), and
 * a tenant running the paywall example with two component workflows.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import type { Page, Request } from "playwright-core";
import { parse } from "yaml";
import { freePort } from "../../../test/browser/ports";
import { createOrganization, must, type BrowserOrganization } from "../../../test/browser/support";

const packageRoot = join(import.meta.dirname, "..");
const repositoryRoot = join(packageRoot, "..", "..");

/** A bundle for a page: `entry` relative to the package, as an IIFE (the script tag build) or an ES module. */
export async function bundle(entry: string, options: { format?: "iife" | "esm"; minify?: boolean } = {}): Promise<string> {
  const result = await build({
    entryPoints: [join(packageRoot, entry)],
    bundle: true,
    write: false,
    format: options.format ?? "esm",
    minify: options.minify ?? false,
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    logLevel: "warning",
    // StrictMode's double effects, which the React tests exercise, exist only in React's development build.
    define: { "process.env.NODE_ENV": '"development"' },
    alias: { "@edge-monetization/client": join(repositoryRoot, "packages/client/src/index.ts") },
  });
  return result.outputFiles[0]!.text;
}

export interface RoutedResponse {
  status?: number;
  contentType?: string;
  body: string;
  headers?: Record<string, string>;
}
export type SiteRoutes = Record<string, RoutedResponse | ((request: Request) => RoutedResponse | Promise<RoutedResponse>)>;

/**
 * Serves `routes` (by path) on a 127.0.0.1 origin of its own to `page`; any other path of that origin is a 404.
 * Answers the origin, e.g. `http://127.0.0.1:4711`.
 */
export async function serveSite(page: Page, routes: SiteRoutes): Promise<string> {
  const origin = `http://127.0.0.1:${await freePort()}`;
  // A routed page has no address of its own: chromium counts it as public and would refuse its calls to the platform
  // on 127.0.0.1 (Local Network Access) unless the site holds the permission, as a real site on the loopback would.
  await page.context().grantPermissions(["local-network-access"], { origin });
  await page.route(
    (url) => url.origin === origin,
    async (route) => {
      const path = new URL(route.request().url()).pathname;
      const handler = routes[path];
      const answer = typeof handler === "function" ? await handler(route.request()) : handler;
      if (!answer) return route.fulfill({ status: 404, contentType: "text/plain", body: "not found" });
      return route.fulfill({ status: answer.status ?? 200, contentType: answer.contentType ?? "text/html", body: answer.body, headers: answer.headers });
    },
  );
  return origin;
}

/** An HTML page (no favicon request: a 404 for it would be a console error). */
export function html(body: string, head = ""): RoutedResponse {
  return { contentType: "text/html", body: `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">${head}</head><body>${body}</body></html>` };
}

export const javascript = (body: string): RoutedResponse => ({ contentType: "text/javascript", body });

/** The article's teaser (what examples/workflows/article-teaser.ts does): once the reader is denied, only the first paragraph stays. */
const TEASER_WORKFLOW = `
const workflow = ({ features }) => {
  const articles = features.articles?.properties.enabled;
  if (articles?.type !== "meterable" || articles.hasAccess) return {};
  return { content: { replaceRange: { fromMarker: "p:first-of-type", replaceWith: [{ type: "html", content: '<div class="fade"></div>' }] } } };
};
export default workflow;`;

/** The paywall (as examples/workflows/paywall-offers.ts): a heading and every offer shown, as elements. */
const PAYWALL_WORKFLOW = `
const workflow = ({ features, offers }) => {
  const articles = features.articles?.properties.enabled;
  if (articles?.type !== "meterable" || articles.hasAccess) return { properties: { hidden: true } };
  const shown = Object.values(offers).flatMap((group) => group.slots.flatMap((slot) => (slot.offer ? [slot.offer] : [])));
  return {
    properties: { hidden: false },
    content: {
      append: [
        { type: "text", content: "You have read all your free articles this month" },
        ...shown.map((offer) => ({ type: "element", schema: "offer", props: offer })),
      ],
    },
  };
};
export default workflow;`;

export interface PaywallTenant {
  organization: BrowserOrganization;
  publishableKey: string;
  secretKey: string;
}

/**
 * A new organization whose live environment runs examples/paywall.yaml (3 articles a month for anonymous readers,
 * then the paywall's offers) with a `story` component (`#story`, the teaser) beside the paywall component.
 */
export async function createPaywallTenant(name: string): Promise<PaywallTenant> {
  const organization = await createOrganization(name);
  const document = parse(readFileSync(join(repositoryRoot, "examples", "paywall.yaml"), "utf8"));
  document.surfaces["article-page"].components.story = { name: "Story", cssSelector: "#story" };
  document.workflows = {
    "article-teaser": { type: "component", surface: "article-page", component: "story", source: TEASER_WORKFLOW },
    "paywall-offers": { type: "component", surface: "article-page", component: "paywall", source: PAYWALL_WORKFLOW },
  };
  await must("PUT", "/api/v1/admin/config", 200, { key: organization.adminKey, body: document });
  const version = await must("POST", "/api/v1/admin/versions", 201, { key: organization.adminKey, body: { description: "paywall" } });
  await must("POST", `/api/v1/admin/environments/${organization.live.id}/deployments`, 201, { key: organization.adminKey, body: { versionId: version.id } });
  return { organization, publishableKey: organization.live.publishableKey, secretKey: organization.live.secretKey };
}

/** Reads `count` different articles as `anonymousIdentifier` (with the secret key, as a site's server would). */
export async function readArticles(tenant: PaywallTenant, anonymousIdentifier: string, count: number): Promise<void> {
  for (let article = 1; article <= count; article++) {
    await must("POST", "/api/v1/surface-decisions", 200, {
      key: tenant.secretKey,
      body: { surfaceSlug: "article-page", identity: { anonymousIdentifier }, resource: { id: `/articles/read-${article}` } },
    });
  }
}

/** What the platform says of `anonymousIdentifier`'s articles now (an access check consumes nothing). */
export async function articlesLeft(tenant: PaywallTenant, anonymousIdentifier: string): Promise<number | undefined> {
  const body = await must("POST", "/api/v1/access-checks", 200, { key: tenant.secretKey, body: { identity: { anonymousIdentifier } } });
  return body.features.articles.properties.enabled.remainingUnits;
}
