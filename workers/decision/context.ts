/**
 * The typed context that flows through the decision stages. Each stage takes the context it needs and returns it
 * extended with what it adds, so the pipeline reads as a list of stage calls and the compiler checks their order.
 */
import type { AutoAssignCategory, BotTag, CreditReading, Decision, FeatureStates, FilteredOffer, MeterReading, OfferGroupsView, PreparedSnapshot, ResolvedIdentity } from "../engine";
import type { KeyType } from "../services/apiKeys";
import type { CustomerRecord } from "../services/customers";
import type { Environment } from "../services/tenancy";
import type { EvaluateResult } from "../../durable-objects/meter/MeterObject";
import type { ComponentBehavior, SurfaceBehavior } from "../workflows/stages";
import type { WorkflowSession } from "./workflowSession";
import type { AgentSignature } from "./agentIdentity";

export type DecisionKind = "access_check" | "surface_decision";

/** What the HTTP request itself (not its body) says about the visitor; the route reads it from its headers and `cf`. */
export interface TransportFacts {
  /** Cloudflare's view of the connection (`request.cf`). */
  cf?: Record<string, unknown>;
  /** The `User-Agent` header. */
  userAgent?: string;
  /** `X-MOS-User-Agent`: the visitor's user agent, forwarded by the customer's server. */
  forwardedUserAgent?: string;
  /** `CF-Connecting-IP`. */
  connectingIp?: string;
}

/** The part of a request body that says who a request is about (decision routes and counter updates share it). */
export interface SubjectRequest {
  identity: unknown;
  resource?: Record<string, unknown>;
  http?: { url?: string; userAgent?: string; clientIP?: string; referer?: string; method?: string; headers?: Record<string, string> };
  cloudflare?: { cf?: Record<string, unknown> };
}

/** Where every flow starts: whose key called, from which environment, with what. */
export interface CallerScope {
  environment: Environment;
  keyType: KeyType;
  body: SubjectRequest & { action?: string };
  transport: TransportFacts;
}

/** A decision: an access check, or a surface decision when `surfaceSlug` is set. */
export interface DecisionRequest extends CallerScope {
  kind: DecisionKind;
  surfaceSlug?: string;
  idempotencyKey?: string;
  /** SHA-256 of the request body, so a reused Idempotency-Key with another body is refused. */
  requestHash?: string;
  /** `?trace=true` (secret keys only): the response explains itself (trace.ts). Costs nothing when unset. */
  trace?: boolean;
}

/** The facts about the request that workflows see (as `context`), after deciding which source to trust. */
export interface RequestFacts {
  userAgent?: string;
  url?: string;
  referer?: string;
  clientIp?: string;
  cf?: Record<string, unknown>;
  resource?: Record<string, unknown>;
}

export interface Configured {
  prepared: PreparedSnapshot;
  /** The user data store of the environment (shared by environments of one type). */
  store: string;
}

export interface Identified {
  identity: ResolvedIdentity;
  bot: BotTag | undefined;
  /** Why a JWT was refused when the request asked to fall back to an anonymous identity. */
  jwtError: string | null;
  facts: RequestFacts;
  /** Present when the deployed version has workflows; the workflow stages share it. */
  workflows: WorkflowSession | undefined;
  /** The request's Web Bot Auth signature: absent, verified (the operator) or invalid (why), for the record and trace. */
  agentSignature: AgentSignature;
  /** The agent's headers the caller relayed (`http.headers`, secret keys only), by lower-case name; read once here. */
  agentHeaders: Record<string, string> | undefined;
  /** A verified signature's nonce and covered components (pay-per-crawl's proof that the agent agreed to a price). */
  verifiedAgent: { nonce: string; covered: readonly string[] } | undefined;
}

export interface WithCustomer {
  customer: CustomerRecord | null;
  stripeProductIds: string[];
}

export interface Provisioned {
  workflowPlanSlugs: string[];
}

/** Who the request is about and which plans they hold: what decisions, counter updates and endpoints share. */
export type Subject = CallerScope & Configured & Identified & WithCustomer & Provisioned;

export interface Planned {
  category: AutoAssignCategory;
  decision: Decision;
}

/** What the one meter call said, or why there was none. */
export interface MeterOutcome {
  readings?: Map<string, MeterReading>;
  creditReadings?: Map<string, CreditReading>;
  /** Set when the meter did not answer in time or failed: each metered property falls back. */
  failure?: string;
  /** The meter answered a known Idempotency-Key with the first request's result: its triggers are already queued. */
  replayed: boolean;
  userAdded: boolean;
  plansChanged?: { from: string[] | null; to: string[] };
  /** Set when the call carried a paid decision's charge: it is on the ledger (false: it already was). */
  agentCharged?: boolean;
  /** The call this request gave up on (deadline); it may still answer, after the response. */
  late?: Promise<EvaluateResult>;
}

export interface Metered {
  meter: MeterOutcome;
}

/** A property a feature workflow set: the record says so when it denies, the trace names the workflow. */
export interface PropertyOverride {
  featureSlug: string;
  property: string;
  workflow: string;
}

export interface Featured {
  features: FeatureStates;
  /** What feature workflows set (a shared empty list when none ran). */
  overrides: readonly PropertyOverride[];
}

export interface SurfaceFields {
  surfaceBehavior: SurfaceBehavior;
  componentsSkipped: boolean;
  componentBehaviors: Record<string, ComponentBehavior & { metadata: { cssSelector: string | null } }>;
}

/** After the surface stage: the surface workflow's behaviour (undefined for access checks). */
export interface WithSurfaceBehavior {
  surfaceBehavior: SurfaceBehavior | undefined;
}

/** After the components stage: the surface part of the response (undefined for access checks). */
export interface Surfaced {
  surfaceFields: SurfaceFields | undefined;
}

/** One offer a surface decision showed: what the funnel counts as an impression (the decision record's `offers`). */
export interface OfferImpression {
  group: string;
  slot: number;
  offer: string;
  variant: string | null;
  /** The shown token's `jti`: redemption events carry it too. */
  tokenId: string;
  amount: number | null;
  currency: string | null;
}

/** After the offers stage: the offer groups a surface decision resolved (undefined for access checks). */
export interface WithOffers {
  offers:
    | {
        views: OfferGroupsView;
        impressions: OfferImpression[];
        /** Offers considered and not shown, with the first condition that failed (kept on the record as a trace). */
        filtered: FilteredOffer[];
      }
    | undefined;
}
