/**
 * Types of the workflows this platform runs. Reference this file from your editor or CI to type-check workflows:
 *   /// <reference path="./workflow-types.d.ts" />
 * A workflow module's default export is the workflow function (`MiddlewareWorkflow`, `ProvisioningWorkflow`,
 * `FeatureWorkflow`, `SurfaceWorkflow`, `ComponentWorkflow`, `EndpointWorkflow`, `ActionWorkflow` or
 * `RedemptionWorkflow`); the globals below describe its arguments and results.
 *
 * Generated from workers/workflows/authorTypes.ts by scripts/workflow-types.mjs: edit that file, then run
 * `node scripts/workflow-types.mjs`.
 */

type AuthType = "anonymous" | "provided" | "jwt" | "agent";
type BotCategory = "search-crawler" | "ai-crawler" | "ai-assistant" | "ai-agent" | "analytics-monitor" | "page-previewer" | "other";
interface BotTag {
    category: BotCategory;
    /** Stable short code of the bot, e.g. "googlebot", "gptbot". */
    code: string;
    isVerified: boolean;
    operator: string;
    product: string;
}
/** Wire shape of a meterable property (docs/public-api.md). */
interface MeterableProperty {
    type: "meterable";
    counterId: string;
    hasAccess: boolean;
    isFallback: boolean;
    consumedUnits?: number;
    remainingUnits?: number;
    totalUnits?: number;
    periodStart?: string;
    uniqueResources?: boolean;
    resourceIdUsed?: boolean;
    consumedInRequest?: boolean;
    consumedUnitsInRequest?: number;
    excessUnitsInRequest?: number;
    /** Only for an `overage: overflow` setting with a reading: the units consumed beyond its limit this period (≥ 0). */
    overageUnits?: number;
}
type ValueProperty = {
    type: "boolean";
    value: boolean;
    isFallback: boolean;
} | {
    type: "number";
    value: number;
    isFallback: boolean;
} | {
    type: "string";
    value: string;
    isFallback: boolean;
};
/**
 * Wire shape of a credits property. With a reading: the balance after this request, the price of the request's
 * action, whether it was deducted, and `reason: "insufficient_credits"` when the balance does not cover the price.
 * When the meter failed: `hasAccess` per the property's `onMeterFailure`, `isFallback: true`, no balance.
 */
interface CreditsProperty {
    type: "credits";
    creditId: string;
    hasAccess: boolean;
    isFallback: boolean;
    balance?: number;
    cost?: number;
    deductedInRequest?: boolean;
    reason?: "insufficient_credits";
}
type PropertyState = MeterableProperty | ValueProperty | CreditsProperty;
interface FeatureState {
    featureId: string;
    featureSlug: string;
    properties: Record<string, PropertyState>;
}
interface MeterReading {
    counterId: string;
    hasAccess: boolean;
    consumedUnits: number;
    remainingUnits: number;
    totalUnits: number;
    /** ISO-8601 start of the current period. */
    periodStart: string;
    uniqueResources: boolean;
    resourceIdUsed: boolean;
    consumedInRequest: boolean;
    consumedUnitsInRequest: number;
    excessUnitsInRequest: number;
    /** Never from the meter object: set by reportedReading for an overflow setting (units past its limit, ≥ 0). */
    overageUnits?: number;
    /**
     * Only from the meter object, for a counter sent with `overflowLimit`: the overage units this request adds to what
     * was already billed this period — max(0, consumedUnits − limit − billed so far), decided and recorded atomically
     * with the consumption (0 when nothing was consumed). What usage-based billing reports; never on the wire.
     */
    overageBilledUnits?: number;
}
/** An invoice (amounts in the currency's smallest unit); workflows get it as it is (utils.payments.invoices). */
interface InvoiceSummary {
    id: string;
    /** draft, open, paid, uncollectible or void. */
    status: string | null;
    amountDue: number;
    amountPaid: number;
    currency: string;
    created: string;
    /** The provider's page where the customer sees (and pays) the invoice. */
    hostedInvoiceUrl: string | null;
    subscriptionId: string | null;
}
type JsonValue = string | number | boolean | null | JsonValue[] | {
    [key: string]: JsonValue;
};
type MaybePromise<T> = T | Promise<T>;
/**
 * The configuration the workflow runs under, for an editor that knows it: it declares this interface again with
 * `features` (feature slug → property slug → the property's rendered state), `plans`, `surfaces` and
 * `customTriggers` (unions of slugs), and declaration merging narrows the types below, so a misspelled feature, plan,
 * surface or trigger is a type error and the slugs autocomplete. The console's workflow editor gets such a
 * declaration for the organization's draft from `GET /api/v1/admin/workflow-types`. Left empty, as here, every slug
 * is a string.
 */
interface DeclaredConfiguration {
}
/** The features' states by feature slug, as the decision rendered them. */
type FeatureStates = DeclaredConfiguration extends {
    features: infer Features;
} ? {
    [Slug in keyof Features]?: {
        featureId: string;
        featureSlug: Slug;
        properties: Features[Slug];
    };
} : Record<string, FeatureState>;
type FeatureSlug = DeclaredConfiguration extends {
    features: infer Features;
} ? Extract<keyof Features, string> : string;
type PlanSlug = DeclaredConfiguration extends {
    plans: infer Slug extends string;
} ? Slug : string;
type SurfaceSlug = DeclaredConfiguration extends {
    surfaces: infer Slug extends string;
} ? Slug : string;
/** The triggers workflows may fire: the configuration's own (`triggers`), never a system trigger. */
type CustomTriggerName = DeclaredConfiguration extends {
    customTriggers: infer Name extends string;
} ? Name : string;
/** Fired by the platform itself (schema/config.ts SYSTEM_TRIGGERS). */
type SystemTriggerName = "decision.made" | "counters.updated" | "plans.changed" | "user.added";
interface WorkflowIdentity {
    authType: AuthType;
    identifier: string;
    isAuthenticated: boolean;
    jwtClaims: Record<string, JsonValue>;
    /** "bot" for a verified bot, else "authenticated" or "anonymous". */
    userType: "anonymous" | "authenticated" | "bot";
    /** Stable 0–99 bucket of the identifier, for A/B tests. */
    testGroup100: number;
}
interface WorkflowContext {
    userAgent: string | null;
    url: string | null;
    referer: string | null;
    clientIp: string | null;
    geo: {
        country: string | null;
        region: string | null;
        city: string | null;
        continent: string | null;
        timezone: string | null;
    };
    bot: BotTag | null;
    isVerifiedBotRequest: boolean;
}
/** The resource of the decision request, as the caller sent it. */
interface WorkflowResource {
    id?: string;
    meta?: Record<string, JsonValue>;
    [key: string]: unknown;
}
/** One offer as a visitor is shown it, with the signed token its redemption (`POST /api/v1/offer-redemptions`) needs. */
interface OfferView {
    offer: string;
    /** The A/B variant the identity's testGroup100 falls in; null for the offer itself. */
    variant: string | null;
    title: string;
    description?: string;
    priceDisplay?: string;
    callToAction?: string;
    imageUrl?: string;
    fields?: Record<string, unknown>;
    /** Minor units (cents); a bundle lists its items, whose amounts add up to `amount`. */
    price?: {
        amount: number;
        currency: string;
        interval?: "day" | "week" | "month" | "year";
        items?: {
            name: string;
            amount: number;
        }[];
    };
    redemption: {
        method: "checkout" | "subscription_change" | "scheduled_change" | "workflow";
    };
    /** Signed, short-lived, bound to the environment, the offer, its price and the identity. */
    token: string;
    /** When the token stops being accepted (ISO 8601). */
    expiresAt: string;
}
interface OfferSlotView {
    /** Position in the group (0 first). */
    slot: number;
    name: string | null;
    /** The highest-ranked eligible offer of the slot not shown by an earlier slot; null when none is eligible. */
    offer: OfferView | null;
}
/** Offer groups by slug, each with its slots in display order. */
type OfferGroupsView = Record<string, {
    name: string;
    slots: OfferSlotView[];
}>;
/** The reading of a counter after a `utils.counters` call. */
type CounterResult = Pick<MeterReading, "hasAccess" | "consumedUnits" | "remainingUnits" | "totalUnits">;
/** The identity as a customer of the payment provider, as the platform keeps it from the provider's webhooks. */
interface PaymentsCustomer {
    isCustomer: boolean;
    /** The provider's customer ids linked to the identity (e.g. `cus_…`). */
    customerIds: string[];
    /** The products the identity's subscriptions and purchases grant right now. */
    productIds: string[];
    subscriptions: {
        id: string;
        /** trialing, active, canceling, past_due, unpaid, paused, incomplete, canceled, revoked or unknown. */
        state: string;
        /** The provider's own status. */
        status: string;
        productIds: string[];
        currentPeriodEnd: string | null;
        cancelAtPeriodEnd: boolean;
        /** Whether it grants its products now, and until when (null: open-ended). */
        access: {
            granted: boolean;
            until: string | null;
        };
    }[];
    purchases: {
        paymentId: string;
        state: "paid" | "refunded" | "disputed";
        productIds: string[];
    }[];
}
/** An invoice of the identity (amounts in the currency's smallest unit, e.g. cents). */
type PaymentsInvoice = InvoiceSummary;
interface WorkflowUtils {
    customData: {
        get(key: string): Promise<JsonValue | null>;
        set(key: string, value: JsonValue): Promise<void>;
        delete(key: string): Promise<boolean>;
    };
    /**
     * Under the user's own plan limits: those of the decision (feature, surface, component workflows), of the caller's
     * plans (endpoint workflows) or of the request that fired the trigger (action workflows). Middleware runs before
     * plans are known, so a counter call there rejects; so does a counter none of the user's plans meters.
     */
    counters: {
        /** Consumes one unit of a metered property (e.g. "default:feat_ab12cd34.enabled"), atomically. */
        consume(counterId: string, options?: {
            resourceId?: string;
        }): Promise<CounterResult>;
        incrementCounter(counterId: string, update?: number, options?: {
            resourceId?: string;
        }): Promise<CounterResult>;
    };
    resolveJwt(token: string): Promise<{
        ok: boolean;
        identifier?: string;
        claims?: Record<string, JsonValue>;
        reason?: string;
    }>;
    identities: {
        /** Carries the counters of `fromIdentifier` (e.g. the anonymous id before sign-in) over to this identity, once. */
        link(fromIdentifier: string, options?: {
            mode?: "copy_once";
        }): Promise<{
            linked: boolean;
        }>;
    };
    triggers: {
        fire(name: CustomTriggerName, payload?: JsonValue): Promise<void>;
    };
    /**
     * The identity's payments, through the environment's payment provider connection (never its keys). `customer` reads
     * what the platform keeps; `invoices` and the two sessions call the provider. Opening sessions is refused to
     * provisioning workflows (read-only utils); a signed-in identity is needed for everything but `customer`.
     */
    payments: {
        customer(): Promise<PaymentsCustomer>;
        invoices(options?: {
            limit?: number;
        }): Promise<PaymentsInvoice[]>;
        /** A hosted Checkout page for one of a plan's prices; URLs must be on the environment's allowed origins. */
        createCheckoutSession(input: {
            plan: PlanSlug;
            price?: string;
            successUrl: string;
            cancelUrl: string;
        }): Promise<{
            id: string;
            url: string;
            mode: "subscription" | "payment";
        }>;
        createPortalSession(input: {
            returnUrl: string;
        }): Promise<{
            url: string;
        }>;
    };
    testGroup100(identifier: string): Promise<number>;
    /**
     * Offers for this request's identity (surface and component workflows, where plans and feature states are known;
     * elsewhere the call rejects): every offer whose targeting it meets, each with its own token (`group` and `slot` of
     * the token are null), in slug order. `groups` keeps the offers ranked in those groups' slots, `offers` those slugs.
     */
    offers: {
        list(options?: {
            groups?: string[];
            offers?: string[];
        }): Promise<OfferView[]>;
    };
}
type MiddlewareArgs = {
    identity: WorkflowIdentity;
    context: WorkflowContext;
    resource: WorkflowResource | null;
    /** Variables and secrets of the environment. */
    env: Record<string, string>;
    /** The user's plans; empty for middleware, which runs before plans are known. */
    plans: PlanSlug[];
};
/** The arguments of every decision workflow after middleware. */
type BaseArgs = MiddlewareArgs & {
    /** The `properties` the middleware workflows returned, merged (`{}` when none set any). */
    middlewareProperties: Record<string, JsonValue>;
};
/** `plans` are the plans assigned automatically (anonymous, authenticated, bot categories). */
type ProvisioningArgs = BaseArgs;
type FeatureArgs = BaseArgs & {
    /** The feature this workflow is bound to. */
    feature: FeatureState;
    features: FeatureStates;
};
type SurfaceArgs = BaseArgs & {
    features: FeatureStates;
    surfaceSlug: SurfaceSlug;
};
type ComponentArgs = BaseArgs & {
    features: FeatureStates;
    surfaceSlug: SurfaceSlug;
    componentSlug: string;
    /** The `properties` of the surface workflow's behaviour (`{}` when it set none). */
    surfaceProperties: Record<string, JsonValue>;
    /** The offer groups this component names (`offerGroups`), resolved per slot; `{}` when it names none. */
    offers: OfferGroupsView;
};
type EndpointArgs = {
    identity: WorkflowIdentity;
    context: WorkflowContext;
    env: Record<string, string>;
    /** The request path after `/endpoints/`, without leading or trailing slashes. */
    path: string;
};
type ActionArgs = {
    trigger: SystemTriggerName | CustomTriggerName;
    payload: JsonValue;
    env: Record<string, string>;
};
type WithUtils<Args> = Args & {
    utils: WorkflowUtils;
};
interface MiddlewareResult {
    /** Replace the request's identifier. */
    identifier?: string;
    /** Fail the request with a 4xx. */
    fail?: {
        status: number;
        message: string;
    };
    /** Extra properties handed to later workflows (as `middlewareProperties`). */
    properties?: Record<string, JsonValue>;
    /** Tag the request as a bot. */
    bot?: BotTag;
}
/** The slugs of plans to add to the user's plans. */
type ProvisioningResult = PlanSlug[];
/**
 * Overrides of the feature's properties: `{ premium: true, quality: "high" }`. A meterable or credits property takes
 * a boolean (or "on" / "off"): access only, counters and balances change only through the meter.
 */
type FeatureResult = Record<string, boolean | number | string>;
/** Replace the response. */
interface HttpReplace {
    status: number;
    statusText?: string;
    headers?: Record<string, string>;
    cookies?: string[];
    body: string;
}
/** Modify the origin's response (its body is kept). */
interface HttpModify {
    addHeaders?: {
        name: string;
        value: string;
    }[];
    removeHeaders?: string[];
    addCookies?: string[];
    status?: number;
    statusText?: string;
    body?: undefined;
}
/**
 * A custom element the edge proxy and the browser package render: `schema` `"offer"`, `"offer-group"` or `"paywall"`
 * becomes `<mos-offer>`, `<mos-offer-group>`, `<mos-paywall>` (the browser package's web components; an offer's
 * `props` are the OfferView, token included, as `offers` or `utils.offers.list` gave it), and `"source:name@version"`
 * becomes `<source-name version="version">`, so your own web components render too. `props` go to the element as JSON.
 */
interface ElementItem {
    type: "element";
    schema: "offer" | (string & {});
    props: OfferView | Record<string, JsonValue>;
}
/** Markup inserted as is. */
interface HtmlItem {
    type: "html";
    content: string;
}
/** Text, escaped where it is inserted. */
interface TextItem {
    type: "text";
    content: string;
}
type ContentItem = HtmlItem | TextItem | ElementItem;
/**
 * What the edge proxy (with HTMLRewriter) and the browser package's `applyContent` do to every element matching the
 * component's `cssSelector`: insert items `before` it, at its start (`prepend`), at its end (`append`) or `after` it,
 * in list order; `remove` it; or `replaceRange` inside it — remove what lies between the end of the first descendant
 * matching `fromMarker` (the start, without one) and the start of the first one matching `toMarker` (the end, without
 * one), and put `replaceWith` there: a teaser is `{ replaceRange: { fromMarker: "p:first-of-type", replaceWith: [...] } }`.
 */
interface ContentInstructions {
    before?: ContentItem[];
    prepend?: ContentItem[];
    append?: ContentItem[];
    after?: ContentItem[];
    remove?: boolean;
    replaceRange?: {
        fromMarker?: string;
        toMarker?: string;
        replaceWith?: ContentItem[] | null;
    } | null;
}
/**
 * `content` of a surface or component: the content instructions integrations apply, or any JSON your own front end
 * reads, with element items (and offers) anywhere inside it.
 */
type ContentValue = ContentInstructions | JsonValue | ElementItem | OfferView | ContentValue[] | {
    [key: string]: ContentValue;
};
interface SurfaceBehavior {
    properties?: Record<string, JsonValue>;
    http?: HttpReplace | HttpModify;
    content?: ContentValue;
}
interface ComponentBehavior {
    content?: ContentValue;
    properties?: Record<string, JsonValue>;
}
type MiddlewareWorkflow = (args: WithUtils<MiddlewareArgs>) => MaybePromise<MiddlewareResult | void>;
/** Utils are read-only here. */
type ProvisioningWorkflow = (args: WithUtils<ProvisioningArgs>) => MaybePromise<ProvisioningResult>;
type FeatureWorkflow = (args: WithUtils<FeatureArgs>) => MaybePromise<FeatureResult>;
type SurfaceWorkflow = (args: WithUtils<SurfaceArgs>) => MaybePromise<SurfaceBehavior>;
type ComponentWorkflow = (args: WithUtils<ComponentArgs>) => MaybePromise<ComponentBehavior>;
/** The request without the platform's `X-MOS-Key`; the Response goes back to the caller as is (sandboxed). */
type EndpointWorkflow = (request: Request, args: WithUtils<EndpointArgs>) => MaybePromise<Response>;
/** Runs off the request path, at least once per fired trigger: make it idempotent. */
type ActionWorkflow = (args: WithUtils<ActionArgs>) => MaybePromise<void>;
/** What a redemption workflow is told: who redeems which offer, and the client's `input` (valid against the offer's schema). */
type RedemptionArgs = {
    identity: WorkflowIdentity;
    context: WorkflowContext;
    env: Record<string, string>;
    offer: {
        slug: string;
        /** The A/B variant the token was minted for; null for the offer itself. */
        variant: string | null;
        title: string;
        /** The price the token binds (minor units, e.g. cents); null for an offer without a price. */
        price: {
            amount: number;
            currency: string;
            interval?: string;
        } | null;
    };
    input: JsonValue;
};
/**
 * What goes back to the client (`result` of the redemption response). To refuse the redemption, throw or return
 * `{ fail: { message } }`: then nothing the workflow wrote is applied.
 */
type RedemptionResult = {
    result?: JsonValue;
} | {
    fail: {
        message: string;
    };
};
/**
 * All or nothing: `customData.set`/`delete` and `triggers.fire` are staged while the workflow runs (reads see its own
 * writes) and applied only when it succeeds; `counters` and `identities.link` reject.
 */
type RedemptionWorkflow = (args: WithUtils<RedemptionArgs>) => MaybePromise<RedemptionResult | void>;
