import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest } from "../../decision/request";
import { ApiError, errorResponses } from "../../errors";
import { MAX_IDENTIFIER_LENGTH } from "../../identity/jwt";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { insertEvent } from "../../services/events";
import { meterCaller } from "../../services/meterCaller";
import { json, jsonBody, security } from "../admin/shared";

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
  responses: { 200: json(IdentityLinkResponse, "Whether the counters were carried over now"), ...errorResponses(400, 401, 403, 404, 413) },
});

export function registerIdentityLinkRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(identityLinkRoute, async (c) => {
    const body = c.req.valid("json");
    const caller = await meterCaller(c, body);
    const { identity } = caller;
    if (!identity.isAuthenticated) {
      throw new ApiError("bad_request", "identity must be the signed-in user (userJwt, or userIdentifier with a secret key), not an anonymous identifier");
    }
    if (body.anonymousIdentifier === identity.identifier) throw new ApiError("bad_request", "An identity cannot be linked to itself");

    // Two calls, not atomic together; `importOnce` is what makes the copy happen once: it checks and records the link
    // key in one synchronous step of the user's object, so concurrent or repeated links import at most once.
    const linkKey = `${body.anonymousIdentifier}->${identity.identifier}`;
    const exported = await caller.stubFor(body.anonymousIdentifier, false).exportCounters();
    const imported = await caller.stubFor(identity.identifier, identity.isAuthenticated).importOnce(linkKey, exported);

    if (imported.linked) {
      c.executionCtx.waitUntil(
        insertEvent(c.env.DB, {
          organizationId: caller.environment.organizationId,
          environmentId: caller.environment.id,
          kind: "counter_update",
          identifier: identity.identifier,
          outcome: "linked",
          record: { action: "identity.link", anonymousIdentifier: body.anonymousIdentifier, identifier: identity.identifier, counters: imported.counters },
        }).catch((error) => console.error("identity link event not written", error)),
      );
    }
    return c.json(
      { status: "success" as const, identifier: identity.identifier, anonymousIdentifier: body.anonymousIdentifier, linked: imported.linked, counters: imported.counters },
      200,
    );
  });
}
