import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";

const FLOOR_BODY = JSON.stringify({ status: "success" });

export function registerHealth(app: OpenAPIHono<AppEnv>): void {
  app.get("/health", (c) => c.json({ status: "ok" }));
  // The benchmark floor: authenticates nothing and returns a constant small JSON, so every scenario can be
  // reported as a ratio to what this runtime does with no work at all.
  app.get("/bench/floor", () => new Response(FLOOR_BODY, { headers: { "content-type": "application/json" } }));
}
