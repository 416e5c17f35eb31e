/**
 * The offer funnel of an environment, from its events: impressions (the `offers` of surface decision records), then
 * redemptions started, completed and failed (`offer_redemption` events), per offer and A/B variant, with the
 * conversion from impression to completed redemption.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { offerFunnel } from "../../offers/funnel";
import { eventStoreOf } from "../../services/eventStore";
import { EnvironmentIdParam, json, permit, security } from "./shared";

const FunnelRow = z
  .object({
    offer: z.string(),
    variant: z.string().nullable().openapi({ description: "The A/B variant; null for the offer itself" }),
    impressions: z.number().int().openapi({ description: "Times a surface decision showed it (in any group and slot)" }),
    started: z.number().int().openapi({ description: "Tokens redeemed (once per token)" }),
    completed: z.number().int().openapi({ description: "Redemptions completed (the checkout paid, the change made, the workflow done)" }),
    failed: z.number().int(),
    conversion: z.number().nullable().openapi({ description: "completed / impressions; null without impressions" }),
  })
  .openapi("OfferFunnelRow");

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_WINDOW_DAYS = 92;

const funnelRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/environments/{environmentId}/offers/funnel",
  tags: ["Offers"],
  summary: "The offer funnel of the environment: impressions, redemptions started, completed and failed, per offer and variant",
  security,
  middleware: permit("events.read", "environment"),
  request: {
    params: EnvironmentIdParam,
    query: z.object({
      from: z.iso.datetime({ offset: true }).optional().openapi({ description: "ISO-8601, inclusive; 30 days before `to` by default" }),
      to: z.iso.datetime({ offset: true }).optional().openapi({ description: "ISO-8601, inclusive; now by default" }),
    }),
  },
  responses: {
    200: json(z.object({ from: z.string(), to: z.string(), data: z.array(FunnelRow) }), "The funnel, by offer and variant"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerOfferFunnelRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(funnelRoute, async (c) => {
    const { organizationId, environment } = c.var.target;
    const query = c.req.valid("query");
    // Normalized to the stored form (milliseconds, UTC), so the bounds compare as instants, not as strings.
    const to = new Date(query.to ?? Date.now()).toISOString();
    const from = new Date(query.from ?? Date.parse(to) - 30 * DAY_MS).toISOString();
    // Impressions are counted from the decision records of the window: a bounded window keeps it one bounded query.
    if (Date.parse(to) - Date.parse(from) > MAX_WINDOW_DAYS * DAY_MS || from > to) {
      const message = `from must not be after to, and the window at most ${MAX_WINDOW_DAYS} days`;
      throw new ApiError("validation_failed", `Invalid request: from: ${message}`, [{ path: "from", message }]);
    }
    const scope = { organizationId, environmentId: environment.id, from, to };
    const data = await offerFunnel(c.env.DB, await eventStoreOf(c.env).offerImpressions(scope), scope);
    return c.json({ from, to, data }, 200);
  });
}
