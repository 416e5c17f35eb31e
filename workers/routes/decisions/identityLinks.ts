import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest } from "../../decision/request";
import { linkIdentity } from "../../decision/identityLink";
import { errorResponses } from "../../errors";
import { MAX_IDENTIFIER_LENGTH } from "../../identity/jwt";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

export const IdentityLinkRequest = z
  .object({
    identity: IdentityRequest.openapi({ description: "The signed-in identity (userJwt, or userIdentifier with a secret key)" }),
    anonymousIdentifier: z.string().min(1).max(MAX_IDENTIFIER_LENGTH).openapi({ description: "The identifier the visitor had before signing in" }),
  })
  .openapi("IdentityLinkRequest");

export const IdentityLinkResponse = z
  .object({
    status: z.literal("success"),
    identifier: z.string(),
    anonymousIdentifier: z.string(),
    linked: z.boolean().openapi({ description: "True the first time: the counters were copied now; false when this pair was linked before" }),
    counters: z.number().int().openapi({ description: "How many counters were carried over" }),
  })
  .openapi("IdentityLinkResponse");

const identityLinkRoute = createRoute({
  method: "post",
  path: "/api/v1/identity-links",
  tags: ["Decisions"],
  summary: "Link an anonymous visitor to the user they signed in as: current-period counters are carried over once",
  description:
    "Copies the anonymous identifier's counters of the current period onto the signed-in identity, once per pair " +
    "(copy_once): a repeated call returns linked: false and changes nothing. The anonymous identifier keeps its counters.",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret", "publishable")],
  request: { body: jsonBody(IdentityLinkRequest) },
  responses: { 200: json(IdentityLinkResponse, "Whether the counters were carried over now"), ...errorResponses(400, 401, 403, 404, 413, 503, 531) },
});

export function registerIdentityLinkRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(identityLinkRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Counters are changed");
    return c.json(await linkIdentity(c.var.services, caller), 200);
  });
}
