/**
 * `/console/`: the console's page, from the static assets, with its CSP narrowed to the console's own files. The
 * build's policy (console/dist/_headers, scripts/build-console.mjs) allows scripts and workers from `'self'` — on this
 * origin that includes whatever tenants' endpoint workflows serve, so an injection into the console (none is known)
 * could load a tenant's response as script. Every script and worker of the console lives under /console/assets/, and
 * CSP cannot put a path on `'self'`: the page's policy spells out the request's origin with that path instead. Only the
 * page needs it (a policy applies to the document that loads the scripts); the assets keep the build's headers.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";
import { ApiError } from "../errors";

const CONSOLE_PAGE_PATHS = ["/console/", "/console/index.html"] as const;

/** The build's policy with `'self'` narrowed to the console's assets for scripts and workers. */
export function consolePagePolicy(buildPolicy: string, origin: string): string {
  const assets = `${origin}/console/assets/`;
  return buildPolicy
    .split(";")
    .map((directive) => directive.trim())
    .map((directive) => (/^(script-src|worker-src)\s/.test(directive) ? directive.replace(/'self'/g, assets) : directive))
    .join("; ");
}

export function registerConsoleRoutes(app: OpenAPIHono<AppEnv>): void {
  // wrangler.toml's `run_worker_first` sends these two paths here; every other console file is served as it is.
  for (const path of CONSOLE_PAGE_PATHS) {
    app.get(path, async (c) => {
      const url = new URL(c.req.url);
      const page = await c.env.ASSETS.fetch(new Request(new URL("/console/", url), { headers: { accept: "text/html" } }));
      if (!page.ok) throw new ApiError("not_found", "The console is not built: run `npm run build:console`");
      const headers = new Headers(page.headers);
      const buildPolicy = headers.get("content-security-policy");
      if (buildPolicy) headers.set("content-security-policy", consolePagePolicy(buildPolicy, url.origin));
      return new Response(page.body, { status: 200, headers });
    });
  }
}
