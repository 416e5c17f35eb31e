/**
 * @edge-monetization/browser: the offer and paywall custom elements, their redemption flow, and `applyContent` for
 * pages that ask the platform for decisions themselves. Importing it defines nothing: call `defineElements()` (the
 * script-tag build, dist/elements.global.js, does it for you).
 */
export { defineElements, ELEMENTS, MosOfferElement, MosOfferGroupElement, MosPaywallElement, type OfferGroupProps, type PaywallProps } from "./elements.js";
export {
  DEFAULT_REDEMPTION_URL,
  OFFER_CHANGED_MESSAGE,
  redeem,
  redemptionUrlFor,
  type RedeemEventDetail,
  type RedeemedEventDetail,
  type RedemptionErrorEventDetail,
  type RedemptionOutcome,
} from "./redemption.js";
export { applyContent, applyInstructions, elementTagOf, renderItems } from "./content.js";
