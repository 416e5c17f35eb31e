/**
 * Stage 6b — crawl (surface decisions on a surface the identity's plans price, `plans.*.payPerCrawl`): crawlers and
 * agents pay per decision instead of being metered. The negotiation is the pure engine's (engine/payPerCrawl.ts):
 *   - refused (no price offered, a price refused, a missing or bad signature, crawlers forbidden): the answer replaces
 *     the page (402 / 400 / 403 with `crawler-price` and `crawler-error`), nothing is consumed, no surface or component
 *     workflow runs;
 *   - paid: the meter call appends the charge to the identity's ledger in the same atomic step (an agent's operator's
 *     object, agentLedger.ts), the surface's properties are granted without consuming their meters, and the page is
 *     served with `crawler-charged`;
 *   - authorized (an x402 `upto` payment, verified for at most the price): the meter call stores it as a pending
 *     payment instead of a charge, the surface is granted as for a paid decision, and the response names the payment
 *     (`payment`) for the business to settle with the actual cost afterwards (routes/decisions/x402Settlements.ts).
 * A request that sends a price without being a priced identity (an unverified "crawler") is answered as the protocol
 * says (StrongAuthRequired, InvalidSignature): it cannot pay without a verified signature.
 * Decisions on surfaces nobody prices, and every access check, pass through untouched (one lookup per plan).
 */
import type { AgentCharge, AuthorizedX402Payment, PendingX402Payment } from "../../../durable-objects/meter/agentLedger";
import type { CreditRequest, Decision, FeatureStates, MeterRequest } from "../../engine";
import { crawlPriceFor, formatCrawlerPrice, negotiateCrawl, type CrawlerPrice, type SurfacePrice } from "../../engine/payPerCrawl";
import { sha256Hex } from "../../lib/crypto";
import { x402SchemeOf, type X402Gateway, type X402Refusal, type X402Resource } from "../../payments/x402Charge";
import { retryClaim, spendOnce } from "../agentIdentity";
import type { Configured, DecisionRequest, Identified, Planned } from "../context";
import type { Services } from "../services";

export type Crawl =
  | { kind: "refused"; status: number; code: string | null; price: CrawlerPrice | null; headers: Record<string, string>; reason?: string }
  | {
      kind: "paid";
      method: AgentCharge["method"];
      /** What was paid; for an `upto` authorization, the most it will be. */
      charged: CrawlerPrice;
      chargeId: string;
      reference?: string;
      headers: Record<string, string>;
      /** An x402 `upto` authorization: stored by the meter call (not charged), settled afterwards. */
      pending?: Omit<PendingX402Payment, "surface" | "resource" | "url">;
      /** How long the authorization must stay claimed: until it lapses, whoever could still present it. */
      claimUntil?: number;
      /** After the meter call, for `pending`: where it was stored (null: this identity had already used it). */
      payment?: AuthorizedX402Payment | null;
    };

export interface Crawled {
  /** Undefined when the decision is not priced for this request. */
  crawl: Crawl | undefined;
}

export async function negotiateCrawlPrice<C extends DecisionRequest & Configured & Identified & Planned>(services: Services, context: C): Promise<C & Crawled> {
  const { surfaceSlug, prepared, decision } = context;
  // Surfaces no plan prices (nearly every decision): nothing to negotiate, whatever the request sent.
  if (surfaceSlug === undefined || !prepared.pricedSurfaces.has(surfaceSlug)) return { ...context, crawl: undefined };
  const headers = context.agentHeaders;
  const exactPrice = headers?.["crawler-exact-price"];
  const maxPrice = headers?.["crawler-max-price"];
  const held = crawlPriceFor(planTables(prepared, decision.planSlugs), surfaceSlug);
  // Someone unverified offering to pay is told why it cannot (a verified agent whose plans price nothing here just
  // decides as usual).
  const offersToPay = exactPrice !== undefined || maxPrice !== undefined;
  const payment = headers?.["payment-signature"];
  // An x402 payment speaks for itself: whoever pays the surface's price is served, verified agent or not.
  const nominal = (offersToPay && !context.verifiedAgent) || payment !== undefined;
  const priced: SurfacePrice = held ?? (nominal ? crawlPriceFor(prepared.snapshot.plans, surfaceSlug) : undefined);
  if (!priced) return { ...context, crawl: undefined };
  const resource = { url: context.body.http?.url ?? `urn:surface:${surfaceSlug}` };
  const gateway = priced.price ? await services.x402(context.environment.id) : null;
  if (payment !== undefined && gateway && priced.price) {
    const paid = await payWithX402(gateway, priced.price, resource, payment, services.clock.now());
    const crawl = paid.kind === "paid" && paid.pending ? await claimAuthorization(services, context, paid) : paid;
    services.timing.mark("crawl");
    return { ...context, decision: readOnlyDecision(decision), crawl };
  }

  const signature =
    context.verifiedAgent !== undefined
      ? { status: "verified" as const, covered: context.verifiedAgent.covered }
      : context.agentSignature.status === "invalid"
        ? { status: "invalid" as const }
        : { status: "absent" as const };
  const outcome = negotiateCrawl({ price: priced.price, exactPrice, maxPrice, signature });
  services.timing.mark("crawl");
  // negotiateCrawl charges only a verified signature, and a verified agent is priced only by its own plans.
  const crawl: Crawl =
    outcome.kind === "charge"
      ? { kind: "paid", method: "crawl", charged: outcome.charged, chargeId: await crawlChargeId(context), headers: outcome.headers }
      : { kind: "refused", status: outcome.status, code: outcome.code, price: priced.price, headers: withX402Offer(outcome, gateway, priced.price, resource) };
  return { ...context, decision: readOnlyDecision(decision), crawl };
}

/** Paid or refused, the surface's meters are not consumed: the payment (or the refusal) stands in for them. */
function readOnlyDecision(decision: Decision): Decision {
  return { ...decision, countedMeterRequests: decision.countedMeterRequests.map(readOnly), creditRequests: decision.creditRequests.map(readOnly) };
}

const readOnly = <R extends MeterRequest | CreditRequest>(request: R): R => (request.consume ? { ...request, consume: false } : request);

/**
 * A 402 also offers the price in x402 when the environment takes it (`payment-required`): `exact` at the price, and
 * `upto` with the price as the maximum, for a client that pays what the request turns out to cost.
 */
function withX402Offer(outcome: { status: number; headers: Record<string, string> }, gateway: X402Gateway | null, price: CrawlerPrice | null, resource: X402Resource): Record<string, string> {
  if (outcome.status !== 402 || !gateway || !price) return outcome.headers;
  const offer = gateway.paymentRequired(price, resource, { maxMicros: price.micros });
  return offer ? { ...outcome.headers, "payment-required": offer } : outcome.headers;
}

/**
 * An x402 payment (`payment-signature`) for the price. `exact`: verified and settled by the environment's facilitator
 * before anything is served. `upto`: verified only, for at most the price — the meter call stores it, and the
 * business settles the actual amount afterwards. A refusal offers the price again (402 with `payment-required`, both
 * schemes, and its `error`); a facilitator that could not be used is a 503 (nothing is known of the payment, which
 * stays unused).
 */
async function payWithX402(gateway: X402Gateway, price: CrawlerPrice, resource: X402Resource, payment: string, now: number): Promise<Crawl> {
  if (x402SchemeOf(payment) === "upto") {
    const authorized = await gateway.authorizeUpto(price, resource, payment, now);
    if (!authorized.ok) return x402Refusal(gateway, price, resource, authorized);
    return {
      kind: "paid",
      method: "x402",
      charged: { currency: price.currency, micros: authorized.maxMicros },
      chargeId: "x402:upto",
      // Nothing is settled yet: no `payment-response` (nor `crawler-charged`) until the business settles it.
      headers: {},
      pending: {
        paymentKey: await sha256Hex(authorized.key),
        currency: price.currency,
        maxMicros: authorized.maxMicros,
        expiresAt: authorized.settleBy,
        authorization: JSON.stringify({ payload: authorized.payload, requirements: authorized.requirements }),
      },
      claimUntil: authorized.lapsesAt,
    };
  }
  const result = await gateway.charge(price, resource, payment);
  if (result.ok) {
    return {
      kind: "paid",
      method: "x402",
      charged: { currency: price.currency, micros: result.amountMicros },
      chargeId: `x402:${result.transaction}`,
      reference: result.transaction,
      headers: { "payment-response": result.paymentResponseHeader },
    };
  }
  return x402Refusal(gateway, price, resource, result);
}

/**
 * An `upto` authorization pays for one request, whoever presents it: it is claimed once in the store (one of 256
 * objects of the store's `~x402` partition, by the payment's hash) before anything is granted, so a payer who switches
 * identities cannot be served twice on one authorization that settles once. A retry of the same decision under its
 * Idempotency-Key is the same request, not a reuse.
 */
async function claimAuthorization(services: Services, context: DecisionRequest & Configured & Identified, paid: Extract<Crawl, { kind: "paid" }>): Promise<Crawl> {
  const key = paid.pending!.paymentKey;
  const registry = { organizationId: context.environment.organizationId, store: `${context.store}~x402`, authenticated: true, identifier: `upto:${key.slice(0, 2)}` };
  const spent = await spendOnce(services, registry, key, paid.claimUntil ?? paid.pending!.expiresAt, retryClaim(context, context.identity));
  if (spent === "fresh") return paid;
  const reason = spent === "spent" ? "This payment was already used: an authorization pays for one request" : "The payment could not be checked; retry";
  return { kind: "refused", status: spent === "spent" ? 402 : 503, code: null, price: paid.charged, headers: {}, reason };
}

function x402Refusal(gateway: X402Gateway, price: CrawlerPrice, resource: X402Resource, result: X402Refusal & { paymentResponseHeader?: string }): Crawl {
  const headers: Record<string, string> = {};
  const offer = gateway.paymentRequired(price, resource, { maxMicros: price.micros, error: result.message }) ?? result.paymentRequiredHeader;
  if (offer) headers["payment-required"] = offer;
  if (result.paymentResponseHeader) headers["payment-response"] = result.paymentResponseHeader;
  return { kind: "refused", status: result.facilitatorFailure ? 503 : 402, code: null, price, headers, reason: result.message };
}

function planTables(prepared: Configured["prepared"], planSlugs: readonly string[]) {
  return planSlugs.flatMap((slug) => {
    const plan = prepared.planBySlug.get(slug)?.plan;
    return plan ? [plan] : [];
  });
}

/** The ledger entry the meter call appends for a paid decision. */
export function agentChargeOf(crawl: Crawl | undefined, context: Pick<DecisionRequest, "surfaceSlug" | "body">): AgentCharge | undefined {
  if (crawl?.kind !== "paid" || crawl.pending) return undefined;
  return { id: crawl.chargeId, method: crawl.method, currency: crawl.charged.currency, micros: crawl.charged.micros, ...paidFor(context), reference: crawl.reference };
}

/** The pending payment the meter call stores for an `upto` authorization. */
export function x402PaymentOf(crawl: Crawl | undefined, context: Pick<DecisionRequest, "surfaceSlug" | "body">): PendingX402Payment | undefined {
  if (crawl?.kind !== "paid" || !crawl.pending) return undefined;
  return { ...crawl.pending, ...paidFor(context) };
}

/** What a payment was for, as the ledger keeps it: the surface, the resource and the page. */
function paidFor({ surfaceSlug, body }: Pick<DecisionRequest, "surfaceSlug" | "body">): { surface: string; resource: string | undefined; url: string | undefined } {
  const resource = body.resource?.id;
  return { surface: surfaceSlug ?? "", resource: typeof resource === "string" ? resource : undefined, url: body.http?.url };
}

/** The response's `payment` of a decision granted on an `upto` authorization (stored by the meter call). */
export function paymentOf(crawl: Crawl | undefined) {
  if (crawl?.kind !== "paid" || !crawl.pending || !crawl.payment) return undefined;
  return { method: "x402" as const, scheme: "upto" as const, id: crawl.payment.id, maxAmount: formatCrawlerPrice(crawl.charged), expiresAt: crawl.payment.expiresAt };
}

/**
 * The surface's properties as the negotiation left them (their meters untouched either way): granted to a paid
 * decision whose charge the meter confirmed, denied to a refused one or one whose charge was not recorded.
 */
export function applyCrawlToSurface(features: FeatureStates, context: { decision: Pick<Decision, "surface">; crawl: Crawl | undefined }, charged: boolean): FeatureStates {
  if (!context.crawl) return features;
  const hasAccess = context.crawl.kind === "paid" && charged;
  const consumes = context.decision.surface?.consumes ?? [];
  const out: FeatureStates = { ...features };
  for (const { featureSlug, property } of consumes) {
    const feature = out[featureSlug];
    const state = feature?.properties[property];
    if (!feature || !state || (state.type !== "meterable" && state.type !== "credits")) continue;
    out[featureSlug] = { ...feature, properties: { ...feature.properties, [property]: { ...state, hasAccess, isFallback: false } } };
  }
  return out;
}

/** The page a refused decision answers instead, or the paid one's headers on the surface behaviour. */
export function crawlBehavior<B extends { http?: unknown }>(behavior: B, crawl: Crawl | undefined, charged: boolean): B {
  if (!crawl) return behavior;
  if (crawl.kind === "refused") return { ...behavior, http: refusal(crawl) };
  if (crawl.pending && crawl.payment === null) {
    return { ...behavior, http: refusal({ kind: "refused", status: 402, code: null, price: crawl.charged, headers: {}, reason: "This payment was already used: an authorization pays for one request" }) };
  }
  if (!charged) {
    // The charge may not have been written (the meter did not answer): nothing is served, the agent signs again.
    return { ...behavior, http: { status: 503, headers: { "retry-after": "1", "content-type": "text/plain; charset=utf-8" }, body: "The payment could not be recorded; retry with a new signature.\n" } };
  }
  const http = behavior.http as { body?: unknown; headers?: Record<string, string>; addHeaders?: { name: string; value: string }[] } | undefined;
  if (http && typeof http.body === "string") return { ...behavior, http: { ...http, headers: { ...http.headers, ...crawl.headers } } };
  const added = Object.entries(crawl.headers).map(([name, value]) => ({ name, value }));
  return { ...behavior, http: { ...(http ?? {}), addHeaders: [...(http?.addHeaders ?? []), ...added] } };
}

function refusal(crawl: Extract<Crawl, { kind: "refused" }>) {
  const price = crawl.price ? formatCrawlerPrice(crawl.price) : null;
  const text =
    crawl.status === 403
      ? "Crawlers are not allowed here.\n"
      : crawl.status === 503
        ? "The payment could not be checked; retry.\n"
        : crawl.status === 402
          ? `Payment required: ${price} per request. ${crawl.reason ? `${crawl.reason}. ` : ""}Retry signed (Web Bot Auth) with crawler-exact-price or crawler-max-price${crawl.headers["payment-required"] ? ", or pay with x402 (payment-signature)" : ""}.\n`
          : `The request cannot be priced: ${crawl.code ?? "bad request"}.\n`;
  return { status: crawl.status, headers: { ...crawl.headers, "content-type": "text/plain; charset=utf-8", "cache-control": "private, no-store" }, body: text };
}

/** What the decision record (and the trace) keep of the negotiation. */
export function crawlRecordOf(crawl: Crawl, charged: boolean) {
  return crawl.kind === "refused"
    ? { outcome: "refused" as const, status: crawl.status, code: crawl.code, price: crawl.price ? formatCrawlerPrice(crawl.price) : null, ...(crawl.reason ? { reason: crawl.reason } : {}) }
    : crawl.pending
      ? {
          outcome: crawl.payment ? ("authorized" as const) : crawl.payment === null ? ("reused" as const) : ("unrecorded" as const),
          method: crawl.method,
          scheme: "upto" as const,
          maxAmount: formatCrawlerPrice(crawl.charged),
          ...(crawl.payment ? { paymentId: crawl.payment.id } : {}),
        }
      : { outcome: charged ? ("paid" as const) : ("unrecorded" as const), method: crawl.method, charged: formatCrawlerPrice(crawl.charged), chargeId: crawl.chargeId };
}

/**
 * One charge per signed request: the nonce is spent once per operator, and two operators may pick the same nonce
 * while acting for one signed-in user, so the id names both.
 */
async function crawlChargeId(context: Identified): Promise<string> {
  const operator = context.agentSignature.status === "verified" ? context.agentSignature.operator : "";
  return `crawl:${await sha256Hex(`${operator}\n${context.verifiedAgent!.nonce}`)}`;
}

/** Whether the meter wrote the decision's payment (its charge, or an upto authorization): only then is it served. */
export const paymentRecorded = (meter: { agentCharged?: boolean }): boolean => meter.agentCharged === true;
