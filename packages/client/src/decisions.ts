/**
 * What every integration reads off a decision the same way, and the platform's bounds on what a visitor's request
 * puts into one: integrations cut or drop what a visitor wrote past them, so a visitor can never make the platform
 * refuse the decision (and so get the page or the tool undecided).
 */
import type { OfferGroups, OfferView, PropertyState } from "./types";

export const PLATFORM_LIMITS = {
  /** A JWT longer than this can never verify: the platform refuses it unread. */
  jwtLength: 16 * 1024,
  /** Identifiers (anonymous, user) are 1–512 characters. */
  identifierLength: 512,
  /** The request facts of `http`, in characters. */
  facts: { url: 8192, userAgent: 2048, clientIP: 100, referer: 8192 },
} as const;

/** Why a property denies access: what a 402/403 or a tool error tells the visitor. */
export type DenialReason = "limit_reached" | "insufficient_credits" | "off" | "unknown_property";

export function denialReason(state: PropertyState | undefined): DenialReason {
  if (!state) return "unknown_property";
  if (state.reason === "insufficient_credits") return "insufficient_credits";
  if (state.type === "meterable" && state.remainingUnits === 0) return "limit_reached";
  return "off";
}

/** Every offer of every group, in the groups' slot order, each once (two groups may show the same offer). */
export function offersOf(groups: OfferGroups): OfferView[] {
  const seen = new Set<string>();
  const offers: OfferView[] = [];
  for (const group of Object.values(groups)) {
    for (const { offer } of group.slots) {
      if (!offer || seen.has(offer.offer)) continue;
      seen.add(offer.offer);
      offers.push(offer);
    }
  }
  return offers;
}
