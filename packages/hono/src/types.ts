import type {
  AccessCheckResponse,
  DenialReason,
  IdentityRequest,
  MonetizationClient,
  OfferView,
  Resource,
  Result,
  SurfaceDecisionResponse,
} from "@edge-monetization/client";
import type { Context, Env } from "hono";
import type { setCookie } from "hono/cookie";

export type { IdentityRequest, Resource };

/** Options of the minted anonymous cookie (hono/cookie's). */
export type CookieOptions = NonNullable<Parameters<typeof setCookie>[3]>;

/** A surface decision (when a surface was named) or an access check. A surface decision also carries the offers. */
export type Decision = AccessCheckResponse | SurfaceDecisionResponse;

export interface MonetizationOptions<E extends Env = any> {
  /** The platform client, or a function building it from the request (when its options come from `c.env`). */
  client: MonetizationClient | ((c: Context<E>) => MonetizationClient);
  /** The surface `decide()` and `requireFeature()` ask about unless told otherwise; none → an access check. */
  surfaceSlug?: string | ((c: Context<E>) => string | undefined);
  /** The cookie that keeps an anonymous visitor's identifier. Default `mos_anon`. */
  anonymousCookie?: string;
  /** The cookie that carries a signed-in user's JWT (from your identity provider). Default `mos_jwt`. */
  jwtCookie?: string;
  /** Also read the JWT from `Authorization: Bearer <jwt>` (it wins over the cookie). Default false. */
  readJwtFromAuthorization?: boolean;
  /**
   * The identity to decide for, instead of the cookies (e.g. `{userIdentifier}` from your own session — secret keys
   * only). Returning undefined falls back to the cookies.
   */
  identity?: (c: Context<E>) => IdentityRequest | undefined | Promise<IdentityRequest | undefined>;
  /** The resource of a decision when the call names none. Default `{ id: <the request's pathname> }`. */
  resource?: (c: Context<E>) => Resource | undefined;
  /**
   * Overrides for the minted anonymous cookie: default Path=/, Max-Age 400 days, SameSite=Lax, HttpOnly, and Secure
   * when the request's URL is https — behind a proxy that terminates TLS, Node sees http: set `secure: true`. Checked
   * when `monetization()` is called (a TypeError for what hono/cookie would refuse to write).
   */
  cookieOptions?: CookieOptions;
  /**
   * The visitor's IP, for the decision's `http.clientIP`. Default: `CF-Connecting-IP` on Workers (a request with a
   * `cf` object), none elsewhere. Behind a proxy you run, read the hop you trust, e.g. the last `X-Forwarded-For`
   * address nginx appended, or `getConnInfo(c).remote.address` (hono's conninfo helper for your runtime).
   */
  clientIP?: (c: Context<E>) => string | undefined;
}

export interface DecideOptions {
  /** A surface decision for this surface (it consumes what the surface consumes); `null` forces an access check. */
  surfaceSlug?: string | null;
  resource?: Resource;
  /** Prices the request for credits properties. */
  action?: string;
  /** Ask for the decision's trace (secret keys only): the plans held and why, the limits, the workflows' inputs. */
  trace?: boolean;
}

/** What `monetization()` puts on the context: `c.var.monetization`. */
export interface Monetization {
  /**
   * Asks the platform once per request and per (kind, surface, resource, action): a second call with the same
   * arguments — from `requireFeature` and then the handler — gets the same answer and consumes nothing more.
   */
  decide(options: DecideOptions & { surfaceSlug: string }): Promise<Result<SurfaceDecisionResponse>>;
  decide(options?: DecideOptions): Promise<Result<Decision>>;
  /** Whether the default decision (or the one `options` describe) grants `property`; the client's failure mode applies. */
  hasAccess(property: `${string}.${string}`, options?: DecideOptions): Promise<boolean>;
  /** The identity sent: after the platform minted an anonymous identifier, `{anonymousIdentifier}` with it. */
  readonly identity: IdentityRequest;
  /** The client, for the calls the middleware does not make (counter updates, identity links, offer redemptions). */
  readonly client: MonetizationClient;
}

/** Put in your Hono generics: `new Hono<{ Bindings: …; Variables: MonetizationVariables }>()`. */
export interface MonetizationVariables {
  monetization: Monetization;
}

/** Why `requireFeature` refused. */
export type { DenialReason };

/** The body of `requireFeature`'s 402 (offers to unlock the feature) and 403 (nothing on offer). */
export interface FeatureDeniedBody {
  status: "error";
  statusCode: 402 | 403;
  code: "payment_required" | "feature_denied";
  message: string;
  feature: `${string}.${string}`;
  reason: DenialReason;
  /** Every offer the surface decision shows, across its offer groups (empty for a 403). */
  offers: OfferView[];
}

/** The body of `requireFeature`'s 503 (the platform unavailable, failure mode closed, or refusing the call). */
export interface ServiceUnavailableBody {
  status: "error";
  statusCode: 503;
  code: "service_unavailable";
  message: string;
  feature: `${string}.${string}`;
}
