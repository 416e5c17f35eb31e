/**
 * Friendly names for the wire types of the decision API. Every one is derived from the generated OpenAPI types
 * (./schema.d.ts, from the Worker's own document), so a change of the platform's schemas shows up here as a type
 * error instead of a silent drift; only the content instructions, which the schema leaves open (`unknown`: workflows
 * write them), are spelled out by hand.
 */
import type { components, paths } from "./schema";

export type { components, paths } from "./schema";

type Schemas = components["schemas"];
type JsonBody<Path extends keyof paths, Status extends number> = paths[Path] extends {
  post: { responses: { [S in Status]: { content: { "application/json": infer Body } } } };
}
  ? Body
  : never;

export type IdentityRequest = Schemas["IdentityRequest"];
export type Resource = Schemas["Resource"];
export type Identity = Schemas["Identity"];
export type PropertyState = Schemas["PropertyState"];
export type DecisionTrace = Schemas["DecisionTrace"];

export type AccessCheckRequest = Schemas["AccessCheckRequest"];
/** `trace` only when the call asked for it (`trace: true`, secret keys). */
export type AccessCheckResponse = JsonBody<"/api/v1/access-checks", 200>;

export type SurfaceDecisionRequest = Schemas["SurfaceDecisionRequest"];
export type SurfaceDecisionResponse = Omit<JsonBody<"/api/v1/surface-decisions", 200>, "surfaceBehavior" | "componentBehaviors" | "offers"> & {
  surfaceBehavior: SurfaceBehavior;
  componentsSkipped: boolean;
  componentBehaviors: Record<string, ComponentBehavior>;
  offers: OfferGroups;
};

/** An offer as the visitor is shown it, with the signed token its redemption needs. */
export type OfferView = NonNullable<Schemas["OfferView"]>;
export type OfferSlot = { slot: number; name: string | null; offer: OfferView | null };
/** Offer groups by slug, each with its slots in display order (a slot without an eligible offer has `offer: null`). */
export type OfferGroups = Record<string, { name: string; slots: OfferSlot[] }>;

export type CounterUpdateRequest = Schemas["CounterUpdateRequest"];
export type CounterUpdateResponse = Schemas["CounterUpdateResponse"];
export type ReservationRequest = Schemas["ReservationRequest"];
export type ReservationResponse = Schemas["ReservationResponse"];
export type ReservationFinalizeRequest = Schemas["ReservationFinalizeRequest"];
export type ReservationReleaseRequest = Schemas["ReservationReleaseRequest"];
/** A finalize's or release's answer: the settlement (`reservation`) and the counter or balance after it. */
export type ReservationSettleResponse = Schemas["ReservationSettleResponse"];
/** Settles an x402 `upto` payment a surface decision named (`payment.id`): `identity` or `agent`, and the actual `amount` ("USD 0.004"). */
export type X402SettlementRequest = Schemas["X402SettlementRequest"];
export type X402SettlementResponse = Schemas["X402SettlementResponse"];
export type IdentityLinkRequest = Schemas["IdentityLinkRequest"];
export type IdentityLinkResponse = Schemas["IdentityLinkResponse"];
export type OfferRedemptionRequest = Schemas["OfferRedemptionRequest"];
export type OfferRedemptionResponse = Schemas["OfferRedemptionResponse"];

/** The body of every failure: `{status: "error", statusCode, message, code, requestId, details?}`. */
export type ErrorBody = Schemas["Error"];

/** The platform's documented error codes (docs/public-api.md, "Errors"). */
export type ErrorCode =
  | "bad_request"
  | "invalid_json"
  | "invalid_yaml"
  | "validation_failed"
  | "invalid_identity"
  | "invalid_signature"
  | "invalid_offer_token"
  | "unauthorized"
  | "invalid_api_key"
  | "invalid_jwt"
  | "forbidden"
  | "forbidden_identity_form"
  | "rejected_by_workflow"
  | "offer_token_not_yours"
  | "not_found"
  | "organization_not_found"
  | "surface_not_found"
  | "conflict"
  | "offer_changed"
  | "insufficient_credits"
  | "reservation_not_found"
  | "reservation_expired"
  | "reservation_finalized"
  | "offer_token_expired"
  | "payload_too_large"
  | "unsupported_media_type"
  | "idempotency_key_reused"
  | "too_many_requests"
  | "internal_error"
  | "upstream_error"
  | "meter_unavailable"
  | "payments_unavailable"
  | "service_unavailable"
  | "version_unreadable"
  | "workflow_error";

/**
 * One item of content instructions. Element items render as custom elements: `schema` `"source:name@version"` →
 * `<source-name version="version" props="…">`, a schema without `:` (the platform's own, e.g. `"offer"`) →
 * `<mos-offer version="" props="…">`.
 */
export type ContentItem =
  | { type: "html"; content: string }
  | { type: "text"; content: string }
  | { type: "element"; schema: string; props: Record<string, unknown> };

/**
 * What an integration (the edge proxy, the browser package's applyContent) does to every element matching the
 * component's `cssSelector`: insert items `before` it, at its start (`prepend`), at its end (`append`) or `after` it;
 * `remove` it; or replace what lies between two markers inside it (`replaceRange`, a teaser).
 */
export interface ContentInstructions {
  before?: ContentItem[];
  prepend?: ContentItem[];
  append?: ContentItem[];
  after?: ContentItem[];
  remove?: boolean;
  replaceRange?: { fromMarker?: string; toMarker?: string; replaceWith?: ContentItem[] | null } | null;
}

/**
 * A component's behaviour in a surface decision. `content` is written by the component's workflow and the platform
 * does not validate it: a renderer must tolerate any JSON there (unknown item types render nothing).
 */
export interface ComponentBehavior {
  content?: ContentInstructions;
  properties?: Record<string, unknown>;
  metadata: { cssSelector: string | null };
}

/** Replace the response (the edge proxy answers it instead of the origin's). */
export interface HttpReplace {
  status: number;
  statusText?: string;
  headers?: Record<string, string>;
  cookies?: string[];
  body: string;
}

/** Modify the origin's response; its body is kept. */
export interface HttpModify {
  addHeaders?: { name: string; value: string }[];
  removeHeaders?: string[];
  addCookies?: string[];
  status?: number;
  statusText?: string;
  body?: undefined;
}

/** The surface workflow's behaviour; like component content, written by a workflow and not validated. */
export interface SurfaceBehavior {
  properties?: Record<string, unknown>;
  http?: HttpReplace | HttpModify;
  content?: ContentInstructions;
}
