/**
 * Charging a request in x402: what the platform offers (`PAYMENT-REQUIRED`), and taking a client's payment
 * (`PAYMENT-SIGNATURE`) through the environment's facilitator. Free of Hono and of the decision: the caller gives the
 * environment's settings, the price and the resource, and gets back values and the headers to answer with.
 *
 * Prices are money in micro-units (1 USD = 1,000,000), as pay-per-crawl keeps them (engine/payPerCrawl.ts). The
 * platform takes USD prices only, paid in the settings' asset, a USD stablecoin with 6 decimals: a price's micro-units
 * are its amount in the asset's atomic units. A price in any other currency gets no x402 offer at all.
 *
 * Two schemes:
 * - `exact`: the client pays the price. `chargeX402` verifies, then settles BEFORE the resource is served, so nothing
 *   is served unpaid.
 * - `upto`: the client authorizes a maximum; the actual cost is known only once the work is done (LLM tokens).
 *   `authorizeX402Upto` verifies the authorization; `settleX402Upto` settles the actual amount, up to the maximum.
 *
 * Nothing here throws: every refusal is a value with the `PAYMENT-REQUIRED` header to answer it with (its `error`
 * saying what was wrong). A refusal whose `facilitatorFailure` is set says nothing about the payment — the
 * facilitator could not be used (answer 503 rather than 402); after a settle, such a failure may have moved funds
 * (the facilitator is never asked twice for one settlement).
 */
import { encodeBase64 } from "../lib/base64";
import type { X402Settings } from "../services/x402Settings";
import {
  encodePaymentRequired,
  encodePaymentResponse,
  decodePaymentSignature,
  matchPaymentRequirements,
  type PaymentPayload,
  type PaymentRequirements,
  type RequirementMismatch,
  type ResourceInfo,
  ResourceInfoSchema,
  type X402Scheme,
} from "./x402";
import { createHttpFacilitator, type Facilitator, FACILITATOR_FAILURES, isFacilitatorFailure, type SettleResult } from "./x402Facilitator";

/** The only currency x402 offers are made in: the settings' asset is a USD stablecoin. */
export const X402_CURRENCY = "USD";

/** An amount of money: an ISO 4217 code and micro-units (engine/payPerCrawl.ts's CrawlerPrice has this shape). */
export interface X402Price {
  currency: string;
  micros: number;
}

/** What is paid for: the URL the client asked for, as the client sees it, and optionally what it is. */
export interface X402Resource {
  url: string;
  description?: string;
}

export type X402RefusalReason =
  /** The environment's settings cannot take this price (another currency than USD, or not a positive amount). */
  | "price_not_payable"
  /** No `payment-signature` header. */
  | "payment_missing"
  /** The header is not a version 2 PaymentPayload (not base64 JSON, wrong shape, too large, another x402 version). */
  | "payment_malformed"
  /** It pays another offer than the ones made: another scheme, network, asset, recipient or amount. */
  | RequirementMismatch
  /** The facilitator says the payment is not good (bad signature, insufficient funds, used nonce…): see `facilitatorReason`. */
  | "payment_invalid"
  /** The facilitator verified it but refused to settle it: see `facilitatorReason`. */
  | "settlement_failed"
  /** upto: the actual amount is more than the client authorized (or than the offer's maximum). */
  | "amount_above_authorization"
  /** upto: the authorization would lapse before the offer's timeout (or does not say when it lapses): it could not be settled in time. */
  | "authorization_too_short"
  /** The facilitator could not be used: unreachable, timed out, or answered nonsense (see `facilitatorReason`). */
  | "facilitator_unavailable";

export interface X402Refusal {
  ok: false;
  reason: X402RefusalReason;
  /** The facilitator's own reason (`insufficient_funds`, `nonce_already_used`…) or the adapter's failure, when it gave one. */
  facilitatorReason?: string;
  /** Said to the client, in the PAYMENT-REQUIRED header's `error`. */
  message: string;
  /** True when nothing is known of the payment: the facilitator could not be used (503, not 402). */
  facilitatorFailure: boolean;
  /** The `PAYMENT-REQUIRED` value to answer with (the offer again, with `error`); null when no offer can be made. */
  paymentRequiredHeader: string | null;
  /** A failed settlement's `PAYMENT-RESPONSE` value: x402 answers a failed settlement with it too. */
  paymentResponseHeader?: string;
}

export interface X402Charge {
  ok: true;
  settlement: SettleResult;
  /** The `PAYMENT-RESPONSE` value to serve the resource with. */
  paymentResponseHeader: string;
  payer: string | undefined;
  transaction: string;
  amountMicros: number;
}

export interface X402Authorization {
  ok: true;
  payload: PaymentPayload;
  /** The platform's own upto offer the payment answered: what settling is held to. */
  requirements: PaymentRequirements;
  payer: string | undefined;
  /** The most the actual charge may be. */
  maxMicros: number;
  /** When the authorization stops being settleable (ms): its `validBefore`, at most the offer's timeout from now. */
  settleBy: number;
  /** When the authorization itself lapses (its `validBefore`, ms): until then anyone holding it could present it. */
  lapsesAt: number;
  /**
   * What identifies the authorization whatever its encoding: the payer and its nonce (EIP-3009 style), else its
   * signature — never the header's bytes, which a client can re-encode (or pad with fields) without re-signing.
   */
  key: string;
}

/** An upto settlement: a refusal here comes after the work is done, so it offers nothing again (no PAYMENT-REQUIRED). */
export type X402Settlement =
  | {
      ok: true;
      /** Absent when nothing was settled (an actual amount of 0). */
      settlement?: SettleResult;
      paymentResponseHeader?: string;
      transaction?: string;
      amountMicros: number;
    }
  | (X402Refusal & { paymentRequiredHeader: null });

/** Micro-units as a decimal string of atomic units, or null when they are not a whole non-negative amount. */
function atomicAmount(micros: number): string | null {
  return Number.isSafeInteger(micros) && micros >= 0 ? String(micros) : null;
}

const notPayable = (price: X402Price) => `x402 takes positive ${X402_CURRENCY} prices only, not ${price.micros} micro-units of ${price.currency}`;

const payable = (price: X402Price): boolean => price.currency.toUpperCase() === X402_CURRENCY && atomicAmount(price.micros) !== null && price.micros > 0;

function offer(settings: X402Settings, scheme: X402Scheme, micros: number): PaymentRequirements {
  return {
    scheme,
    network: settings.network,
    amount: String(micros),
    asset: settings.asset,
    payTo: settings.payTo,
    maxTimeoutSeconds: settings.maxTimeoutSeconds,
    ...(settings.extra === undefined ? {} : { extra: settings.extra }),
  };
}

/**
 * The offers for a price: `exact` at the price, and `upto` at `maxMicros` when the caller asks for one. Null when the
 * price cannot be paid in x402 here.
 */
export function x402Offers(settings: X402Settings, price: X402Price, options: { maxMicros?: number } = {}): PaymentRequirements[] | null {
  if (!payable(price)) return null;
  const offers = [offer(settings, "exact", price.micros)];
  if (options.maxMicros !== undefined) {
    if (!payable({ currency: price.currency, micros: options.maxMicros })) return null;
    offers.push(offer(settings, "upto", options.maxMicros));
  }
  return offers;
}

/** The resource as x402 states it: bounded as its schema is (a URL too long loses its query, a description is cut). */
function resourceInfo(resource: X402Resource): ResourceInfo | null {
  const limits = ResourceInfoSchema.shape;
  let url = resource.url;
  if (!limits.url.safeParse(url).success) {
    const parsed = URL.parse(url);
    url = parsed ? `${parsed.origin}${parsed.pathname}` : url;
    if (!limits.url.safeParse(url).success) return null;
  }
  const description = resource.description?.slice(0, 1024);
  return { url, ...(description ? { description } : {}) };
}

function paymentRequiredHeader(offers: PaymentRequirements[] | null, resource: X402Resource, error?: string): string | null {
  const info = resourceInfo(resource);
  if (!offers || !info) return null;
  const encoded = encodePaymentRequired({ x402Version: 2, ...(error ? { error: error.slice(0, 1024) } : {}), resource: info, accepts: offers });
  return encoded.ok ? encoded.value : null;
}

/**
 * The `PAYMENT-REQUIRED` header value offering `price` for `resource` (one `exact` offer, plus an `upto` one up to
 * `maxMicros` when given), or null when the price cannot be paid in x402 here: the caller then offers no x402.
 */
export function paymentRequiredFor(settings: X402Settings, price: X402Price, resource: X402Resource, options: { maxMicros?: number; error?: string } = {}): string | null {
  return paymentRequiredHeader(x402Offers(settings, price, options), resource, options.error);
}

/** The scheme a `payment-signature` header pays with, or null when it is not a readable payment. */
export function x402SchemeOf(paymentSignature: string | undefined): X402Scheme | null {
  const decoded = decodePaymentSignature(paymentSignature);
  return decoded.ok ? decoded.value.accepted.scheme : null;
}

type Refuse = (reason: X402RefusalReason, message: string, facilitatorReason?: string, paymentResponseHeader?: string) => X402Refusal;

/** Refusals that answer with `offers` again (none when null), their `error` saying why. */
function refuser(offers: PaymentRequirements[] | null, resource: X402Resource | null): Refuse {
  return (reason, message, facilitatorReason, paymentResponseHeader) => ({
    ok: false,
    reason,
    message,
    ...(facilitatorReason === undefined ? {} : { facilitatorReason }),
    facilitatorFailure: reason === "facilitator_unavailable",
    paymentRequiredHeader: resource ? paymentRequiredHeader(offers, resource, message) : null,
    ...(paymentResponseHeader === undefined ? {} : { paymentResponseHeader }),
  });
}

/** The payment a header carries, matched to one of `offers`, or the refusal. */
function matchedPayment(paymentSignature: string | undefined, offers: PaymentRequirements[], refuse: Refuse) {
  const decoded = decodePaymentSignature(paymentSignature);
  if (!decoded.ok) {
    return decoded.error.code === "missing"
      ? refuse("payment_missing", "PAYMENT-SIGNATURE header is required")
      : refuse("payment_malformed", `PAYMENT-SIGNATURE is not a payment: ${decoded.error.message}`);
  }
  const match = matchPaymentRequirements(decoded.value, offers);
  if (!match.ok) return refuse(match.reason, match.message);
  return { ok: true as const, payment: decoded.value, requirements: match.requirements };
}

/** The facilitator's verdict, a thrown error (a failing test double, a bug) counting as "could not be used". */
async function verifyWith(facilitator: Facilitator, payment: PaymentPayload, requirements: PaymentRequirements, refuse: Refuse) {
  let verdict;
  try {
    verdict = await facilitator.verify(payment, requirements);
  } catch {
    return refuse("facilitator_unavailable", "the payment could not be verified: the facilitator is unavailable", FACILITATOR_FAILURES.unavailable);
  }
  if (verdict.isValid) return { ok: true as const, payer: verdict.payer };
  if (isFacilitatorFailure(verdict.invalidReason)) {
    return refuse("facilitator_unavailable", "the payment could not be verified: the facilitator is unavailable", verdict.invalidReason);
  }
  const because = verdict.invalidReason ?? "invalid_payment";
  return refuse("payment_invalid", `the payment was refused: ${because}`, because);
}

async function settleWith(
  facilitator: Facilitator,
  payment: PaymentPayload,
  requirements: PaymentRequirements,
  amount: string | undefined,
  refuse: Refuse,
): Promise<{ ok: true; settlement: SettleResult & { transaction: string }; paymentResponseHeader: string } | X402Refusal> {
  let settlement: SettleResult;
  try {
    settlement = await facilitator.settle(payment, requirements, amount);
  } catch {
    settlement = { success: false, network: requirements.network, errorReason: FACILITATOR_FAILURES.unavailable };
  }
  const response = encodePaymentResponse({
    success: settlement.success,
    network: requirements.network,
    ...(settlement.transaction ? { transaction: settlement.transaction } : {}),
    ...(settlement.payer ? { payer: settlement.payer } : {}),
    ...(settlement.errorReason ? { errorReason: settlement.errorReason } : {}),
  });
  if (settlement.success && settlement.transaction) {
    // Funds moved: whatever the header can hold, the charge stands (a payer too long for the schema is left out).
    const paymentResponseHeader = response.ok
      ? response.value
      : encodeBase64(new TextEncoder().encode(JSON.stringify({ success: true, network: requirements.network, transaction: settlement.transaction })));
    return { ok: true, settlement: { ...settlement, transaction: settlement.transaction }, paymentResponseHeader };
  }
  const paymentResponseHeader = response.ok ? response.value : undefined;
  const because = settlement.errorReason ?? "settlement_failed";
  return isFacilitatorFailure(because)
    ? refuse("facilitator_unavailable", "the payment could not be settled: the facilitator is unavailable", because, paymentResponseHeader)
    : refuse("settlement_failed", `the payment could not be settled: ${because}`, because, paymentResponseHeader);
}

/**
 * Takes an `exact` payment of `price` for `resource`: decode, match against the offer, verify, then settle. Serve
 * the resource only on `ok: true`, with `paymentResponseHeader` as `PAYMENT-RESPONSE`.
 */
export async function chargeX402(
  settings: X402Settings,
  facilitator: Facilitator,
  price: X402Price,
  resource: X402Resource,
  paymentSignature: string | undefined,
): Promise<X402Charge | X402Refusal> {
  const offers = x402Offers(settings, price);
  const refuse = refuser(offers, resource);
  if (!offers) return refuse("price_not_payable", notPayable(price));
  const matched = matchedPayment(paymentSignature, offers, refuse);
  if (!matched.ok) return matched;
  const verified = await verifyWith(facilitator, matched.payment, matched.requirements, refuse);
  if (!verified.ok) return verified;
  const settled = await settleWith(facilitator, matched.payment, matched.requirements, undefined, refuse);
  if (!settled.ok) return settled;
  return {
    ok: true,
    settlement: settled.settlement,
    paymentResponseHeader: settled.paymentResponseHeader,
    payer: settled.settlement.payer ?? verified.payer,
    transaction: settled.settlement.transaction,
    amountMicros: price.micros,
  };
}

/**
 * Checks an `upto` payment authorizing at most `maxPrice` (the most the request may cost): decode, match, verify —
 * nothing is settled yet. Do the work, then `settleX402Upto` with what it actually cost.
 */
export async function authorizeX402Upto(
  settings: X402Settings,
  facilitator: Facilitator,
  maxPrice: X402Price,
  resource: X402Resource,
  paymentSignature: string | undefined,
  now = Date.now(),
): Promise<X402Authorization | X402Refusal> {
  const offers = payable(maxPrice) ? [offer(settings, "upto", maxPrice.micros)] : null;
  const refuse = refuser(offers, resource);
  if (!offers) return refuse("price_not_payable", notPayable(maxPrice));
  const matched = matchedPayment(paymentSignature, offers, refuse);
  if (!matched.ok) return matched;
  // The work is served before it is settled: an authorization that lapses first would have paid for nothing.
  const lapses = validBeforeOf(matched.payment);
  const window = matched.requirements.maxTimeoutSeconds * 1000;
  if (lapses === null || lapses < now + window - UPTO_WINDOW_GRACE_MS) {
    return refuse("authorization_too_short", `an upto authorization must stay valid for the offer's ${matched.requirements.maxTimeoutSeconds} s (its validBefore)`);
  }
  const verified = await verifyWith(facilitator, matched.payment, matched.requirements, refuse);
  if (!verified.ok) return verified;
  return {
    ok: true,
    payload: matched.payment,
    requirements: matched.requirements,
    payer: verified.payer,
    maxMicros: maxPrice.micros,
    settleBy: Math.min(now + window, lapses),
    lapsesAt: lapses,
    key: authorizationKeyOf(matched.payment),
  };
}

/** See X402Authorization.key. */
export function authorizationKeyOf(payment: PaymentPayload): string {
  const inner = payment.payload as { authorization?: { from?: unknown; nonce?: unknown }; signature?: unknown } | undefined;
  const { from, nonce } = inner?.authorization ?? {};
  if (typeof from === "string" && typeof nonce === "string") return JSON.stringify(["authorization", payment.accepted.network, from.toLowerCase(), nonce.toLowerCase()]);
  if (typeof inner?.signature === "string") return JSON.stringify(["signature", payment.accepted.network, inner.signature]);
  return JSON.stringify(["payload", canonicalJson(payment.payload)]);
}

function canonicalJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalJson);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((name) => [name, canonicalJson((value as Record<string, unknown>)[name])]));
}

/** Slack for the time between the payer signing (`validBefore` = its clock + the timeout) and this check. */
const UPTO_WINDOW_GRACE_MS = 10_000;

/** `payload.authorization.validBefore` (seconds, as EIP-3009 style schemes carry it) in ms; null when the payload has none. */
function validBeforeOf(payment: PaymentPayload): number | null {
  const authorization = (payment.payload as { authorization?: { validBefore?: unknown } } | undefined)?.authorization;
  const raw = authorization?.validBefore;
  const seconds = typeof raw === "number" ? raw : typeof raw === "string" && /^\d{1,12}$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(seconds) ? seconds * 1000 : null;
}

/**
 * Settles an authorized `upto` payment for the actual cost, from 0 to the authorization's maximum. 0 settles nothing
 * (no transaction, nothing to tell the facilitator).
 */
export async function settleX402Upto(facilitator: Facilitator, authorization: Pick<X402Authorization, "payload" | "requirements">, actualMicros: number): Promise<X402Settlement> {
  const refuse = refuser(null, null) as (...args: Parameters<Refuse>) => X402Refusal & { paymentRequiredHeader: null };
  const amount = atomicAmount(actualMicros);
  if (amount === null || BigInt(amount) > BigInt(authorization.requirements.amount)) {
    return refuse("amount_above_authorization", `the charge ${actualMicros} is not within the ${authorization.requirements.amount} authorized`);
  }
  if (actualMicros === 0) return { ok: true, amountMicros: 0 };
  const settled = await settleWith(facilitator, authorization.payload, authorization.requirements, amount, refuse);
  if (!settled.ok) return { ...settled, paymentRequiredHeader: null };
  return { ok: true, settlement: settled.settlement, paymentResponseHeader: settled.paymentResponseHeader, transaction: settled.settlement.transaction, amountMicros: actualMicros };
}

/** How the decision takes x402 payments: an interface, so that a test can give one that fails. */
export interface X402Gateway {
  readonly kind: "x402";
  paymentRequired(price: X402Price, resource: X402Resource, options?: { maxMicros?: number; error?: string }): string | null;
  charge(price: X402Price, resource: X402Resource, paymentSignature: string | undefined): Promise<X402Charge | X402Refusal>;
  authorizeUpto(maxPrice: X402Price, resource: X402Resource, paymentSignature: string | undefined, now?: number): Promise<X402Authorization | X402Refusal>;
  settleUpto(authorization: Pick<X402Authorization, "payload" | "requirements">, actualMicros: number): Promise<X402Settlement>;
}

export function createX402Gateway(settings: X402Settings, facilitator: Facilitator): X402Gateway {
  return {
    kind: "x402",
    paymentRequired: (price, resource, options) => paymentRequiredFor(settings, price, resource, options),
    charge: (price, resource, paymentSignature) => chargeX402(settings, facilitator, price, resource, paymentSignature),
    authorizeUpto: (maxPrice, resource, paymentSignature, now) => authorizeX402Upto(settings, facilitator, maxPrice, resource, paymentSignature, now),
    settleUpto: (authorization, actualMicros) => settleX402Upto(facilitator, authorization, actualMicros),
  };
}

/**
 * The gateway of an environment's settings, speaking to its facilitator over HTTP; null when the stored facilitator
 * URL is no longer one the platform may call (plain http to loopback, stored while the operator allowed it): the
 * environment then offers no x402.
 */
export function x402GatewayFor(
  settings: X402Settings,
  options: { allowLoopbackFacilitator: boolean; fetch?: (request: Request) => Promise<Response>; timeoutMs?: number },
): X402Gateway | null {
  const created = createHttpFacilitator({
    baseUrl: settings.facilitatorUrl,
    allowInsecureLoopback: options.allowLoopbackFacilitator,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return created.ok ? createX402Gateway(settings, created.facilitator) : null;
}
