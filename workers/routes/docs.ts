/**
 * The OpenAPI document and the reference page that renders it with Scalar's browser bundle, served from this Worker
 * (no CDN: `npm start` works offline).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";

export function registerDocs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    description: "An environment's API key (sk_… or pk_…), an organization key (ok_…, admin routes), or the operator token",
  });
  // /docs renders this document from a sandboxed (opaque-origin) page, so its fetch is cross-origin.
  app.use("/openapi.json", async (c, next) => {
    await next();
    c.header("Access-Control-Allow-Origin", "*");
  });
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: {
      title: "Edge monetization platform API",
      version: "1.0.0",
      description: "Decision API (wire-compatible with the public contract) and the admin API of this platform.",
    },
    servers: [{ url: new URL(c.req.url).origin }],
  }));
  // The page runs script on the platform's origin, which tenants' endpoints share: sandboxed into an opaque origin like
  // every other page here, its script could never send same-origin requests (endpoints trust a same-origin marker
  // header that browsers cannot send cross-origin). The console (/console/, static assets) is the one exception: it
  // is the platform's own code under a strict CSP (docs/architecture.md "Console and its origin").
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", "sandbox allow-scripts");
    return c.html(REFERENCE_PAGE);
  });
}

/**
 * Scalar's browser bundle, from the Worker's own static assets (scripts/build-console.mjs copies it there): no CDN, so
 * `npm start` works offline. Nothing that would call Scalar's own services: no web fonts, telemetry, AI agent, MCP
 * or developer toolbar (its share and deploy menus).
 */
const SCALAR_CONFIGURATION = {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: "never",
};

/**
 * The sandbox makes the page an opaque origin, where reading localStorage or sessionStorage throws; Scalar reads them
 * as it loads (to keep preferences), so memory stands in for both, and nothing outlives the page.
 */
const MEMORY_STORAGE = `for (const name of ["localStorage", "sessionStorage"]) {
  try { void window[name]; continue; } catch {}
  const items = new Map();
  const storage = {
    getItem: (key) => (items.has(String(key)) ? items.get(String(key)) : null),
    setItem: (key, value) => void items.set(String(key), String(value)),
    removeItem: (key) => void items.delete(String(key)),
    clear: () => items.clear(),
    key: (index) => [...items.keys()][index] ?? null,
    get length() { return items.size; },
  };
  Object.defineProperty(window, name, { configurable: true, value: storage });
}`;

const REFERENCE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference</title>
<script>
${MEMORY_STORAGE}
</script>
<script src="/docs/scalar/standalone.js"></script>
</head>
<body>
<div id="app"></div>
<script>Scalar.createApiReference("#app", ${JSON.stringify(SCALAR_CONFIGURATION)});</script>
</body>
</html>`;
