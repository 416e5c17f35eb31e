/**
 * The shapes of offers as decisions resolve them (engine/offers.ts) and as clients and workflows receive them. Types
 * only; the engine computes them without I/O, the decision stage adds each view's signed token.
 */
import type { OfferPresentation, OfferRedemption } from "../../schema/config";

/** A price as the visitor is shown it: what the offer token binds and what redemption charges. */
export interface ResolvedPrice {
  /** Minor units (cents); for a bundle, the sum of its items' amounts. */
  amount: number;
  currency: string;
  /** Recurring interval; absent for a one-time payment. */
  interval?: "day" | "week" | "month" | "year";
  /** A bundle's items, each at its share of the bundle price (their amounts add up to `amount`). */
  items?: { name: string; stripeProductId: string; amount: number }[];
  /** The configured price was adjusted for this request (a dynamic price), so no fixed Stripe price charges it. */
  adjusted: boolean;
  /** The price as text: the presentation's `priceDisplay`, or the amount formatted in its currency. */
  display: string;
}

/** One offer resolved for one request: its variant, merged presentation and price. */
export interface ResolvedOffer {
  offer: string;
  /** The A/B variant the identity's testGroup100 falls in; null for the offer itself. */
  variant: string | null;
  presentation: OfferPresentation;
  price: ResolvedPrice | null;
  method: OfferRedemption["method"];
  /** The Stripe price that charges `price` when it is not adjusted and not a bundle (the variant's or the offer's). */
  stripePriceId: string | null;
  /** SnapshotOffer.fingerprint: the token binds it. */
  fingerprint: string;
}

/** What clients render and redeem: one offer, with its token. */
export interface OfferView {
  offer: string;
  variant: string | null;
  title: string;
  description?: string;
  priceDisplay?: string;
  callToAction?: string;
  imageUrl?: string;
  fields?: Record<string, unknown>;
  price?: { amount: number; currency: string; interval?: "day" | "week" | "month" | "year"; items?: { name: string; amount: number }[] };
  redemption: { method: OfferRedemption["method"] };
  /** Signed, short-lived, bound to the environment, the offer, its price and the identity: send it to offer-redemptions. */
  token: string;
  /** When the token stops being accepted (ISO 8601). */
  expiresAt: string;
}

export interface OfferSlotView {
  /** Position in the group (0 first). */
  slot: number;
  name: string | null;
  /** The highest-ranked eligible offer of the slot not shown by an earlier slot; null when none is eligible. */
  offer: OfferView | null;
}

/** Offer groups by slug, each with its slots in display order: the `offers` of a surface decision. */
export type OfferGroupsView = Record<string, { name: string; slots: OfferSlotView[] }>;

/**
 * What an offer token says, signed. Short claim names keep the token small: it travels in pages and cookies.
 * `sub`/`anon` are the identity it was minted for; `amt`/`cur`/`int` the price shown (null for a priceless workflow
 * offer); `fp` the offer's fingerprint in the version that minted it.
 */
export interface OfferTokenClaims {
  env: string;
  offer: string;
  variant: string | null;
  group: string | null;
  slot: number | null;
  sub: string;
  anon: boolean;
  amt: number | null;
  cur: string | null;
  int: string | null;
  fp: string;
  /** Unique per token: redemption is idempotent per `jti`. */
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
}
