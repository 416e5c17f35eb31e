/**
 * Request and response shapes of the public decision API (docs/public-api.md). Top-level objects are open
 * (`passthrough`) so that clients of the original product that send extra fields keep working.
 */
import { z } from "@hono/zod-openapi";

export const MAX_DECISION_BODY_BYTES = 64 * 1024;

export const IdentityRequest = z
  .object({
    anonymousIdentifier: z.string().optional(),
    createAnonymousIdentifier: z.boolean().optional(),
    userIdentifier: z.string().optional(),
    userJwt: z.string().optional(),
    createAnonymousIdentifierFallback: z.boolean().optional(),
  })
  .openapi("IdentityRequest", { description: "Exactly one identity form" });

export const ResourceRequest = z
  .object({
    id: z.string().min(1).max(512).optional(),
    meta: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough()
  .openapi("Resource");

export const HttpRequestInfo = z
  .object({
    url: z.string().max(8192).optional(),
    userAgent: z.string().max(2048).optional(),
    clientIP: z.string().max(100).optional(),
    referer: z.string().max(8192).optional(),
    cookies: z.record(z.string(), z.string()).optional(),
    /** The visitor's request method; a Web Bot Auth signature may cover it (`@method`). GET when absent. */
    method: z.string().min(1).max(16).optional(),
    /**
     * Request headers an agent sent, by lower-case name, that the platform reads (secret keys only): the Web Bot Auth
     * signature (`signature`, `signature-input`, `signature-agent` and any header it covers), pay-per-crawl's
     * `crawler-exact-price` / `crawler-max-price`, and x402's `payment-signature`. Other headers are ignored.
     */
    headers: z
      .record(z.string().max(100), z.string().max(8192))
      .refine((headers) => Object.keys(headers).length <= 32, "at most 32 headers")
      .optional()
      .openapi({ example: { "signature-agent": '"https://agent.example"', "signature-input": "sig1=(...)", signature: "sig1=:...:" } }),
  })
  .passthrough();

export const CloudflareInfo = z.object({ cf: z.record(z.string(), z.unknown()).optional() }).passthrough();

export const AccessCheckRequest = z
  .object({
    identity: IdentityRequest,
    /** Prices the request for credits properties (their `costs.actions`); the base price when absent or unknown. */
    action: z.string().min(1).max(100).optional().openapi({ example: "generate" }),
    resource: ResourceRequest.optional(),
    http: HttpRequestInfo.optional(),
    cloudflare: CloudflareInfo.optional(),
  })
  .passthrough()
  .openapi("AccessCheckRequest");
export type AccessCheckRequest = z.infer<typeof AccessCheckRequest>;

export const SurfaceDecisionRequest = AccessCheckRequest.extend({
  surfaceSlug: z.string().min(1).max(100),
}).openapi("SurfaceDecisionRequest");
export type SurfaceDecisionRequest = z.infer<typeof SurfaceDecisionRequest>;

const PropertyStateSchema = z
  .object({
    type: z.enum(["meterable", "boolean", "number", "string", "credits"]),
    isFallback: z.boolean(),
    value: z.union([z.boolean(), z.number(), z.string()]).optional(),
    counterId: z.string().optional(),
    hasAccess: z.boolean().optional(),
    consumedUnits: z.number().optional(),
    remainingUnits: z.number().optional(),
    totalUnits: z.number().optional(),
    periodStart: z.string().optional(),
    uniqueResources: z.boolean().optional(),
    resourceIdUsed: z.boolean().optional(),
    consumedInRequest: z.boolean().optional(),
    consumedUnitsInRequest: z.number().optional(),
    excessUnitsInRequest: z.number().optional(),
    creditId: z.string().optional(),
    balance: z.number().optional(),
    cost: z.number().optional(),
    deductedInRequest: z.boolean().optional(),
    reason: z.literal("insufficient_credits").optional(),
  })
  .openapi("PropertyState");

export const IdentityResponse = z
  .object({
    authType: z.enum(["anonymous", "provided", "jwt", "agent"]),
    identifier: z.string(),
    isAuthenticated: z.boolean(),
    jwtClaims: z.record(z.string(), z.unknown()),
  })
  .openapi("Identity");

export const AccessCheckResponse = z
  .object({
    status: z.literal("success"),
    eventId: z.string(),
    identity: IdentityResponse,
    customer: z.object({ isCustomer: z.boolean(), hasProducts: z.boolean(), customerIdentifiers: z.array(z.string()) }),
    features: z.record(
      z.string(),
      z.object({ featureId: z.string(), featureSlug: z.string(), properties: z.record(z.string(), PropertyStateSchema) }),
    ),
    plans: z.array(z.string()).optional(),
  })
  .openapi("AccessCheckResponse");

/** One offer as a surface decision shows it (engine/offerTypes.ts OfferView). */
export const OfferViewResponse = z
  .object({
    offer: z.string(),
    variant: z.string().nullable(),
    title: z.string(),
    description: z.string().optional(),
    priceDisplay: z.string().optional(),
    callToAction: z.string().optional(),
    imageUrl: z.string().optional(),
    fields: z.record(z.string(), z.unknown()).optional(),
    price: z
      .object({
        amount: z.number().int().openapi({ description: "Minor units (cents); a bundle's items add up to it." }),
        currency: z.string(),
        interval: z.enum(["day", "week", "month", "year"]).optional().openapi({ description: "Absent for a one-time payment." }),
        items: z.array(z.object({ name: z.string(), amount: z.number().int() })).optional(),
      })
      .optional(),
    redemption: z.object({ method: z.enum(["checkout", "subscription_change", "scheduled_change", "workflow"]) }),
    token: z.string().openapi({ description: "Signed, short-lived offer token for POST /api/v1/offer-redemptions." }),
    expiresAt: z.string(),
  })
  .openapi("OfferView");

export const OfferGroupsResponse = z
  .record(
    z.string(),
    z.object({
      name: z.string(),
      slots: z.array(z.object({ slot: z.number().int(), name: z.string().nullable(), offer: OfferViewResponse.nullable() })),
    }),
  )
  .openapi("OfferGroups", { description: "Offer groups the surface and its components name, by slug, each slot resolved for the identity." });

export const SurfaceDecisionResponse = AccessCheckResponse.extend({
  surfaceBehavior: z.object({ properties: z.record(z.string(), z.unknown()).optional(), http: z.unknown().optional(), content: z.unknown().optional() }),
  componentsSkipped: z.boolean(),
  componentBehaviors: z.record(z.string(), z.object({ content: z.unknown().optional(), properties: z.record(z.string(), z.unknown()).optional(), metadata: z.object({ cssSelector: z.string().nullable() }) })),
  offers: OfferGroupsResponse,
  payment: z
    .object({
      method: z.literal("x402"),
      scheme: z.literal("upto"),
      id: z.string().openapi({ example: "pay_0123456789abcdefghij" }),
      maxAmount: z.string().openapi({ example: "USD 0.01", description: "The most the payment may be settled for" }),
      expiresAt: z.string().openapi({ description: "Unsettled by then, the payment is released and nothing is charged" }),
    })
    .optional()
    .openapi({ description: "Granted on an x402 `upto` payment: settle it with the actual cost at POST /api/v1/x402-settlements/{id}" }),
}).openapi("SurfaceDecisionResponse");
