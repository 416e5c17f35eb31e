/**
 * Offer redemptions (`POST /api/v1/offer-redemptions`): the customer's server redeems an offer token a surface decision
 * handed out. In order, and nothing is written before the token is accepted:
 * 1. the token: signed with the caller's environment's key (400 `invalid_offer_token`) and not expired (410);
 * 2. the identity, resolved as decisions resolve it (config → identity → middleware), must be the one the token was
 *    shown to, signed in or anonymous alike (403 `offer_token_not_yours`);
 * 3. the offer must still be deployed with the token's fingerprint (409 `offer_changed`: ask for a new decision);
 * 4. the method's read-only checks: the checkout's prices (offers/checkout.ts), the subscription and price a change
 *    moves (offers/subscriptionChange.ts), the workflow's input (decision/redemptionWorkflow.ts) — a refusal up to
 *    here leaves no row, event or webhook;
 * 5. the redemption is claimed, then the method writes: the Stripe Checkout, the subscription change (now or at the
 *    period's end), or the offer's redemption workflow.
 *
 * Idempotent per token (offers/redemptions.ts): one row per jti; a repeat answers what the first request answered (a
 * checkout: the same session, opened under a Stripe idempotency key derived from the environment and the jti; a
 * subscription change: one key per token, and a change this token already made is answered as made), a completed
 * redemption its stored result, and a failed one may be tried again. A workflow, which no provider deduplicates, runs
 * only in the request that claimed the try: a repeat meanwhile is 409 "in progress" (the try's lease lets another
 * request take over a try whose request died). Each outcome is one `offer_redemption` event (the funnel) and one
 * outbound webhook.
 *
 * Anonymous visitors buy too: their purchase goes to the anonymous partition of the store (services/customers.ts
 * anonymousStore), which their decisions read.
 */
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { SnapshotOffer } from "../engine/snapshot";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { openOfferCheckout, prepareOfferCheckout } from "../offers/checkout";
import {
  claimRedemption,
  failRedemption,
  getRedemption,
  type Redemption,
  redemptionEvent,
  redemptionEventId,
  REDEMPTION_LEASE_MS,
  redemptionOf,
  redemptionWebhook,
  storeRedemptionResult,
} from "../offers/redemptions";
import { redemptionInProgress } from "../offers/provider";
import {
  applySubscriptionChange,
  type PreparedSubscriptionChange,
  prepareSubscriptionChange,
  previewSubscriptionChange,
  type SubscriptionChangeTarget,
  subscriptionPriceOfToken,
} from "../offers/subscriptionChange";
import { verifyOfferToken } from "../offers/tokens";
import type { ConnectedPayments } from "../payments/checkout";
import { OFFER_REDEMPTION_KEY } from "../payments/stripe";
import { anonymousStore } from "../services/customers";
import type { EventInput } from "../services/events";
import { publishWebhookEvents, type WebhookPublisherEnv } from "../webhooks/publish";
import type { JsonValue } from "../workflows/authorTypes";
import type { CallerScope, Configured, Identified } from "./context";
import { checkRedemptionInput, redemptionWorkflowError, runRedemptionWorkflow } from "./redemptionWorkflow";
import { recordingRequiredFailures } from "./requiredWorkflows";
import type { Services } from "./services";
import { identify, loadConfig, runMiddleware } from "./stages";

export interface OfferRedemptionBody {
  identity: unknown;
  offerToken: string;
  successUrl?: string;
  cancelUrl?: string;
  input?: unknown;
  preview?: boolean;
}

export interface OfferRedemptionRequest extends CallerScope {
  body: OfferRedemptionBody;
  /** The platform secret the environments' offer-token keys derive from. */
  secretsKey: string;
  /** The environment's Stripe connection, asked for only by the methods that need it. */
  payments: () => Promise<ConnectedPayments>;
  /** Where redemption webhooks go (webhooks/publish.ts). */
  webhooks: WebhookPublisherEnv;
}

export interface OfferRedemptionResponse {
  status: "success";
  eventId: string;
  identity: { authType: string; identifier: string; isAuthenticated: boolean; jwtClaims: unknown };
  redemption: { id: string; offer: string; variant: string | null; method: SnapshotOffer["redemption"]["method"]; state: "started" | "completed" };
  checkout?: { id: string; url: string; mode: "subscription" | "payment" };
  subscription?: { id: string; effectiveAt: string; scheduled: boolean; scheduleId?: string };
  preview?: { amountDue: number; currency: string; lines: { description: string | null; amount: number }[] };
  result?: JsonValue;
}

/** What a redemption answered, stored with it and answered again to a repeat. */
type StoredResult = Pick<OfferRedemptionResponse, "checkout" | "subscription" | "result">;

type Subject = CallerScope & Configured & Identified;

export async function redeemOffer(services: Services, request: OfferRedemptionRequest): Promise<OfferRedemptionResponse> {
  const { environment, body } = request;
  const claims = await acceptedToken(request, services.clock.now());
  const subject = await recordingRequiredFailures(services, { ...request, kind: "offer_redemption", action: "offer.redemption" }, async () =>
    runMiddleware(services, await identify(services, await loadConfig(services, request))),
  );
  const { identity } = subject;
  if (identity.identifier !== claims.sub || identity.isAuthenticated === claims.anon) {
    throw new ApiError("offer_token_not_yours", "This offer token was given to another identity: redeem it with the identity the surface decision was made for");
  }
  const offer = (subject.prepared.snapshot.offers ?? []).find((candidate) => candidate.slug === claims.offer);
  if (!offer || offer.fingerprint !== claims.fp) {
    throw new ApiError("offer_changed", `Offer ${claims.offer} changed since this token was given (or is no longer deployed): ask for a new decision`);
  }
  const method = offer.redemption.method;
  if (body.preview && method !== "subscription_change") {
    throw new ApiError("validation_failed", `Invalid request: preview: only a subscription_change offer can be previewed (offer ${offer.slug} is ${method})`, [
      { path: "preview", message: `only a subscription_change offer can be previewed (this one is ${method})` },
    ]);
  }
  if ((method === "subscription_change" || method === "scheduled_change") && !identity.isAuthenticated) {
    throw new ApiError("forbidden_identity_form", `A ${method} offer changes a signed-in customer's subscription: an anonymous identity has none`);
  }
  const target = { organizationId: environment.organizationId, environmentId: environment.id };
  const respond = (redemption: Pick<Redemption, "id" | "offer" | "variant" | "method">, state: "started" | "completed", eventId: string, result: StoredResult & Pick<OfferRedemptionResponse, "preview">): OfferRedemptionResponse => ({
    status: "success",
    eventId,
    identity: { authType: identity.authType, identifier: identity.identifier, isAuthenticated: identity.isAuthenticated, jwtClaims: identity.jwtClaims },
    redemption: { id: redemption.id, offer: redemption.offer, variant: redemption.variant, method: redemption.method as SnapshotOffer["redemption"]["method"], state },
    ...result,
  });

  // A token redeemed before: its answer, without asking Stripe (the price may have changed since, the purchase not).
  const earlier = await getRedemption(services.db, environment.id, claims.jti);
  if (earlier?.result && earlier.state !== "failed") {
    return respond(earlier, earlier.state === "completed" ? "completed" : "started", await redemptionEventId(environment.id, claims.jti, "started"), earlier.result as StoredResult);
  }

  // Everything that only reads is checked before anything is written: a refused redemption (an offer whose Stripe price
  // is gone, no subscription to change, a price other than the one shown) leaves no row, event or webhook.
  const payments = method === "workflow" ? null : await request.payments();
  const checkout = method === "checkout" ? await prepareOfferCheckout(payments!, subject.prepared, offer, claims, body) : null;
  const change =
    method === "subscription_change" || method === "scheduled_change"
      ? await prepareSubscriptionChange(payments!, await changeTarget(services, request, subject), offer, subscriptionPriceOfToken(offer, claims), {
          redemptionId: claims.jti,
          price: { amount: claims.amt, currency: claims.cur, interval: claims.int },
          retried: earlier !== null,
        })
      : null;
  if (method === "workflow") checkRedemptionInput(offer, body.input);
  if (body.preview) {
    const preview = await previewSubscriptionChange(payments!, change!);
    return respond(redemptionOf(target, claims, method), "started", await redemptionEventId(environment.id, claims.jti, "started"), {
      subscription: { id: preview.subscriptionId, effectiveAt: preview.effectiveAt, scheduled: false },
      preview: preview.proration,
    });
  }

  // A workflow runs once per try: only the request that opened the try runs it. A try whose request died is taken over
  // once its lease ran out, so a lost request does not hold the token until it expires.
  const exclusive = method === "workflow";
  const { redemption, opened } = await claimRedemption(services.db, target, claims, method, exclusive ? { leaseMs: REDEMPTION_LEASE_MS } : {});
  if (redemption.result && (redemption.state === "completed" || !opened)) {
    return respond(redemption, redemption.state === "completed" ? "completed" : "started", await redemptionEventId(environment.id, claims.jti, "started"), redemption.result as StoredResult);
  }
  if (exclusive && !opened) throw redemptionInProgress();
  const started = await redemptionEvent(redemption, "started");
  // Written with the request (not after it): the funnel's `started` precedes the webhook's `completed`.
  await services.insertEvent(started);
  if (opened) publishLater(services, request, [started]);
  // Every request of this attempt opens the same Stripe objects; a new attempt after a failure, new ones. A
  // subscription changes once per token, whatever the attempt: a retry replays the change Stripe already made.
  const keyed = change ? `${environment.id}:${claims.jti}` : `${environment.id}:${claims.jti}:${redemption.attempt}`;
  const idempotencyKey = `offer-redemption:${await sha256Hex(keyed)}`;

  let outcome: { result: StoredResult; completed: boolean };
  try {
    outcome = await runMethod(services, request, subject, offer, claims, { payments, checkout, change, idempotencyKey, redemption });
  } catch (error) {
    const reason = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
    // Only the request that opened this attempt fails it: a repeat racing it (Stripe may answer it "in progress")
    // must not fail the attempt the first request is still completing.
    if (opened && (await failRedemption(services.db, redemption, reason))) {
      const failed = await redemptionEvent(redemption, "failed", { reason });
      await services.insertEvent(failed);
      publishLater(services, request, [failed]);
    }
    throw error;
  }
  // The method's writes stand whatever happens now: failing to record them must not answer 500 (the client would retry
  // what happened). Unrecorded, the try's lease lets a later request run it again: Stripe replays its answer to the same
  // key and a workflow's apply is once per token (redemptionWorkflow.ts), so nothing is done twice.
  try {
    await storeRedemptionResult(services.db, redemption, outcome.result as Record<string, unknown>, outcome.completed ? "completed" : "started");
    if (outcome.completed) {
      const completed = await redemptionEvent(redemption, "completed", { subscriptionId: outcome.result.subscription?.id ?? null });
      await services.insertEvent(completed);
      publishLater(services, request, [completed]);
    }
  } catch (error) {
    services.logger.warn("redemption_result_unrecorded", { offer: offer.slug, redemption: redemption.id, error: error instanceof Error ? error.message : String(error) });
  }
  return respond(redemption, outcome.completed ? "completed" : "started", started.id, outcome.result);
}

/** The token's claims, or why it is refused: 400 when it is not this environment's, 410 when it expired. */
async function acceptedToken(request: OfferRedemptionRequest, now: number): Promise<OfferTokenClaims> {
  const check = await verifyOfferToken(request.secretsKey, request.environment.id, request.body.offerToken, now);
  if (check.ok && check.claims.env === request.environment.id) return check.claims;
  if (!check.ok && check.reason === "expired") throw new ApiError("offer_token_expired", "This offer token expired: ask for a new decision to get a fresh one");
  throw new ApiError("invalid_offer_token", "offerToken is not an offer token of this environment (malformed, altered, or signed for another environment)");
}

interface MethodContext {
  payments: ConnectedPayments | null;
  checkout: Awaited<ReturnType<typeof prepareOfferCheckout>> | null;
  change: PreparedSubscriptionChange | null;
  idempotencyKey: string;
  redemption: Redemption;
}

/** Runs the offer's method; `completed` when it is done now (a changed subscription, a workflow's result). */
async function runMethod(
  services: Services,
  request: OfferRedemptionRequest,
  subject: Subject,
  offer: SnapshotOffer,
  claims: OfferTokenClaims,
  context: MethodContext,
): Promise<{ result: StoredResult; completed: boolean }> {
  const { environment } = request;
  const { identity, store } = subject;
  switch (offer.redemption.method) {
    case "checkout": {
      // Anonymous visitors buy into the store's anonymous partition, kept apart from signed-in identities.
      const partition = identity.isAuthenticated ? store : anonymousStore(store);
      const customer = await services.customer(environment.organizationId, partition, identity.identifier);
      const opened = await openOfferCheckout(
        context.payments!,
        context.checkout!,
        { organizationId: environment.organizationId, store: partition, identifier: identity.identifier, customerId: customer?.stripeCustomerId ?? null },
        context.redemption,
        context.idempotencyKey,
      );
      return { result: { checkout: opened }, completed: false };
    }
    case "subscription_change":
    case "scheduled_change": {
      const changed = await applySubscriptionChange(context.payments!, context.change!, {
        idempotencyKey: context.idempotencyKey,
        metadata: { [OFFER_REDEMPTION_KEY]: claims.jti },
      });
      const scheduled = changed.status === "scheduled";
      return {
        result: { subscription: { id: changed.subscriptionId, effectiveAt: changed.effectiveAt, scheduled, ...(scheduled ? { scheduleId: changed.scheduleId } : {}) } },
        completed: true,
      };
    }
    case "workflow": {
      const ran = await runRedemptionWorkflow(services, subject, offer, claims, request.body.input);
      // A refusal 403, a conflict 409, the user's data or the platform unreachable 503, failed customer code 531.
      if (!ran.ok) throw redemptionWorkflowError(offer.slug, ran);
      return { result: { result: ran.result }, completed: true };
    }
  }
}

/** Whose subscription a subscription offer changes: the signed-in identity's, in the request's store. */
async function changeTarget(services: Services, request: OfferRedemptionRequest, subject: Subject): Promise<SubscriptionChangeTarget> {
  const { organizationId } = request.environment;
  const { identity, store } = subject;
  return {
    organizationId,
    store,
    identifier: identity.identifier,
    customer: await services.customer(organizationId, store, identity.identifier),
    plans: subject.prepared.snapshot.plans,
  };
}

/** Outbound webhooks of the redemption's events, after the response (publishWebhookEvents never throws). */
function publishLater(services: Services, request: OfferRedemptionRequest, events: (EventInput & { id: string })[]): void {
  services.waitUntil(publishWebhookEvents(request.webhooks, request.environment, events.map(redemptionWebhook)));
}
