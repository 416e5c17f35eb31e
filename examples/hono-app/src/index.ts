/**
 * A small article API on Hono, monetized by the platform: GET /api/articles/:id is metered (3 free articles a month
 * for anonymous readers with examples/hono-app/config.yaml) and answers 402 with the upgrade offers once they are used
 * up; GET /api/me says who the platform sees and which plans they hold. Runs on Workers (this file's default export)
 * and on Node (README.md: the same app under @hono/node-server).
 */
import { createClient, type MonetizationClient } from "@edge-monetization/client";
import { monetization, requireFeature, type MonetizationVariables } from "@edge-monetization/hono";
import { Hono, type MiddlewareHandler } from "hono";

export interface Env {
  /** The platform's origin, e.g. http://127.0.0.1:8787 for `npm start`. */
  PLATFORM_URL: string;
  /** The surface the article route decides with (it consumes articles.enabled and shows the upgrade offers). */
  SURFACE_SLUG: string;
  /** The environment's secret key (`sk_…`): a secret, never in wrangler.toml. */
  SECRET_KEY: string;
  /** What the article route does when the platform cannot answer: "open" serves the article, "closed" answers 503. */
  FAILURE_MODE?: string;
  /** A service binding to the platform when both Workers run on one account; calls skip the public internet. */
  PLATFORM?: { fetch(request: Request): Promise<Response> };
}

interface Article {
  title: string;
  body: string;
}

const ARTICLES: Record<string, Article> = {
  "edge-computing": { title: "Computing at the edge", body: "Requests are answered in the city they come from…" },
  "metered-paywalls": { title: "Why metered paywalls work", body: "A few free articles turn readers into subscribers…" },
  "durable-objects": { title: "One object per counter", body: "Strong consistency without a central database…" },
  "offers-that-convert": { title: "Offers that convert", body: "Show the offer when the reader wants the article…" },
  "pricing-experiments": { title: "Pricing experiments", body: "Half of the readers see the lower price…" },
};

type AppEnv = { Bindings: Env; Variables: MonetizationVariables };

// One client per environment object: the platform's bindings do not change while an isolate lives.
const clients = new WeakMap<Env, MonetizationClient>();

function clientOf(env: Env): MonetizationClient {
  let client = clients.get(env);
  if (!client) {
    const platform = env.PLATFORM;
    client = createClient({
      baseUrl: env.PLATFORM_URL,
      apiKey: env.SECRET_KEY,
      failureMode: env.FAILURE_MODE === "closed" ? "closed" : "open",
      ...(platform ? { fetch: (request: Request) => platform.fetch(request) } : {}),
    });
    clients.set(env, client);
  }
  return client;
}

/** Unknown articles are a 404 before the meter is asked: reading one must not use up a free article. */
const knownArticle: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!Object.hasOwn(ARTICLES, c.req.param("id") ?? "")) return c.json({ status: "error", statusCode: 404, code: "not_found", message: "No such article" }, 404);
  await next();
};

export const app = new Hono<AppEnv>();

app.use("/api/*", monetization<AppEnv>({ client: (c) => clientOf(c.env) }));

app.get("/api/articles", (c) => c.json({ articles: Object.entries(ARTICLES).map(([id, { title }]) => ({ id, title })) }));

app.get("/api/articles/:id", knownArticle, requireFeature<AppEnv>("articles.enabled", { surfaceSlug: (c) => c.env.SURFACE_SLUG }), async (c) => {
  const id = c.req.param("id");
  // The decision requireFeature made (memoised: asking again consumes nothing), for the reader's meter.
  const decision = await c.var.monetization.decide({ surfaceSlug: c.env.SURFACE_SLUG });
  const enabled = decision.ok ? decision.data.features.articles?.properties.enabled : undefined;
  return c.json({
    id,
    ...ARTICLES[id]!,
    freeArticlesLeft: enabled?.remainingUnits ?? null,
  });
});

app.get("/api/me", async (c) => {
  // An access check (consumes nothing) with the trace, which lists the plans held and where each comes from.
  const decision = await c.var.monetization.decide({ trace: true });
  if (!decision.ok) return c.json({ status: "error", statusCode: 503, code: "service_unavailable", message: "The platform could not be reached" }, 503);
  return c.json({
    identity: decision.data.identity,
    plans: decision.data.trace?.plans.map((plan) => plan.slug) ?? [],
    customer: decision.data.customer,
  });
});

export default app;
