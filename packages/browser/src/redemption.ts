import type { OfferRedemptionResponse, OfferView } from "@edge-monetization/client";

/** Where a redemption goes when neither an attribute nor the page's meta tag says: the edge proxy's route. */
export const DEFAULT_REDEMPTION_URL = "/mos-api/offer-redemptions";

/** Shown for an expired token (410) or an offer that changed since the page was made (409): only a reload helps. */
export const OFFER_CHANGED_MESSAGE = "This offer has changed — reload the page";

const UNREACHABLE_MESSAGE = "The offer could not be reached — check your connection and try again";
const TIMEOUT_MESSAGE = "The offer did not answer in time — try again";
const BAD_CHECKOUT_MESSAGE = "The checkout could not be opened";
const CROSS_ORIGIN_MESSAGE = "This offer cannot be redeemed from this page";
/** How long a redemption may take: the server creates a checkout session with the payment provider meanwhile. */
const REDEMPTION_TIMEOUT_MS = 15_000;
/** A 409 `conflict` with Retry-After means the same token is still being redeemed: wait, then ask again. */
const IN_PROGRESS_RETRIES = 3;
const MAX_RETRY_AFTER_MS = 5_000;

export interface RedeemEventDetail {
  offer: OfferView;
}
export interface RedeemedEventDetail {
  offer: OfferView;
  response: OfferRedemptionResponse;
}
export interface RedemptionErrorEventDetail {
  offer: OfferView;
  status: number | null;
  code: string | null;
  message: string;
}

declare global {
  interface HTMLElementEventMap {
    "mos-redeem": CustomEvent<RedeemEventDetail>;
    "mos-redeemed": CustomEvent<RedeemedEventDetail>;
    "mos-redemption-error": CustomEvent<RedemptionErrorEventDetail>;
  }
}

/**
 * The URL an element's redemption posts to: its own `redemption-url` attribute or its nearest ancestor's (across
 * shadow roots, so a group or paywall passes its own down), else `<meta name="mos-redemption-url">`, else the edge
 * proxy's route.
 */
export function redemptionUrlFor(element: Element): string {
  for (let node: Node | null = element; node; node = node.parentNode ?? (node instanceof ShadowRoot ? node.host : null)) {
    const url = node instanceof Element ? node.getAttribute("redemption-url") : null;
    if (url) return url;
  }
  // The head only: a meta tag in the body may come from content the page does not control.
  return document.head?.querySelector<HTMLMetaElement>('meta[name="mos-redemption-url"]')?.content || DEFAULT_REDEMPTION_URL;
}

export type RedemptionOutcome =
  | { kind: "cancelled" }
  | { kind: "redeemed"; response: OfferRedemptionResponse; navigating: boolean }
  | { kind: "failed"; message: string };

/**
 * Redeems `offer` for the visitor, dispatching the events on `target`: `mos-redeem` first (cancel it and the page
 * handles the redemption itself), then `mos-redeemed` or `mos-redemption-error`. The request goes to the site's own
 * server (the edge proxy or the site's backend), which adds the visitor's identity and the secret key: a browser never
 * holds a key that can redeem — so the URL must be on the page's own origin (anything else fails). A started checkout
 * navigates to its URL (http or https only) unless `mos-redeemed` was cancelled.
 */
export async function redeem(target: Element, offer: OfferView): Promise<RedemptionOutcome> {
  const event = { bubbles: true, composed: true, cancelable: true };
  if (!target.dispatchEvent(new CustomEvent<RedeemEventDetail>("mos-redeem", { ...event, detail: { offer } }))) return { kind: "cancelled" };

  const fail = (message: string, status: number | null, code: string | null): RedemptionOutcome => {
    target.dispatchEvent(new CustomEvent<RedemptionErrorEventDetail>("mos-redemption-error", { ...event, cancelable: false, detail: { offer, status, code, message } }));
    return { kind: "failed", message };
  };

  let url: URL;
  try {
    url = new URL(redemptionUrlFor(target), location.href);
  } catch {
    return fail(CROSS_ORIGIN_MESSAGE, null, null);
  }
  // The visitor's cookies go along (they say who redeems): only to the site itself.
  if (url.origin !== location.origin) return fail(CROSS_ORIGIN_MESSAGE, null, null);
  for (let attempt = 0; ; attempt++) {
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ offerToken: offer.token, successUrl: location.href, cancelUrl: location.href }),
        credentials: "same-origin",
        signal: AbortSignal.timeout(REDEMPTION_TIMEOUT_MS),
      });
    } catch (error) {
      return fail(isTimeout(error) ? TIMEOUT_MESSAGE : UNREACHABLE_MESSAGE, null, null);
    }
    let body: Record<string, unknown> | null;
    try {
      body = (await response.json()) as Record<string, unknown> | null;
    } catch (error) {
      if (isTimeout(error)) return fail(TIMEOUT_MESSAGE, null, null);
      body = null;
    }
    if (response.ok && body) {
      const redeemed = body as unknown as OfferRedemptionResponse;
      const proceed = target.dispatchEvent(new CustomEvent<RedeemedEventDetail>("mos-redeemed", { ...event, detail: { offer, response: redeemed } }));
      const checkoutUrl = redeemed.checkout?.url;
      if (!proceed || !checkoutUrl) return { kind: "redeemed", response: redeemed, navigating: false };
      const checkout = webUrl(checkoutUrl);
      // A `javascript:` URL would run in the page: only a web page is a checkout.
      if (!checkout) return fail(BAD_CHECKOUT_MESSAGE, response.status, null);
      location.assign(checkout);
      return { kind: "redeemed", response: redeemed, navigating: true };
    }
    const code = typeof body?.code === "string" ? body.code : null;
    const retryAfter = Number(response.headers.get("retry-after"));
    if (response.status === 409 && code === "conflict" && response.headers.has("retry-after") && attempt < IN_PROGRESS_RETRIES) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(Math.max(retryAfter, 0) * 1000, MAX_RETRY_AFTER_MS)));
      continue;
    }
    // 410 offer_token_expired, 409 offer_changed; other 409s (a subscription in the way, …) say what is wrong.
    if (response.status === 410 || (response.status === 409 && (code === null || code === "offer_changed"))) {
      return fail(OFFER_CHANGED_MESSAGE, response.status, code);
    }
    const message = typeof body?.message === "string" && body.message ? body.message : `The offer could not be redeemed (${response.status})`;
    return fail(message, response.status, code);
  }
}

const isTimeout = (error: unknown): boolean => error instanceof DOMException && error.name === "TimeoutError";

/** `url` resolved against the page when it is an http(s) URL; null otherwise. */
function webUrl(url: unknown): string | null {
  if (typeof url !== "string") return null;
  try {
    const resolved = new URL(url, location.href);
    return resolved.protocol === "https:" || resolved.protocol === "http:" ? resolved.href : null;
  } catch {
    return null;
  }
}
