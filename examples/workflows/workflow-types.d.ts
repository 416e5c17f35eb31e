/**
 * Types of the workflows this platform runs. Reference this file from your editor or CI to type-check workflows:
 *   /// <reference path="./workflow-types.d.ts" />
 * A workflow module's default export is the workflow function; the globals below describe its arguments.
 */

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

interface WorkflowIdentity {
  authType: "anonymous" | "provided" | "jwt";
  identifier: string;
  isAuthenticated: boolean;
  jwtClaims: Record<string, JsonValue>;
  /** "anonymous", "authenticated" or "bot". */
  userType: "anonymous" | "authenticated" | "bot";
  /** Stable 0–99 bucket of the identifier, for A/B tests. */
  testGroup100: number;
}

interface BotTag {
  category: "search-crawler" | "ai-crawler" | "ai-assistant" | "ai-agent" | "analytics-monitor" | "page-previewer" | "other";
  code: string;
  isVerified: boolean;
  operator: string;
  product: string;
}

interface WorkflowContext {
  userAgent: string | null;
  url: string | null;
  referer: string | null;
  clientIp: string | null;
  geo: { country: string | null; region: string | null; city: string | null; continent: string | null; timezone: string | null };
  bot: BotTag | null;
  isVerifiedBotRequest: boolean;
}

interface WorkflowResource {
  id?: string;
  meta?: Record<string, JsonValue>;
  [key: string]: unknown;
}

type MeterableProperty = {
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
};
/** A credits balance: the price of this request's action, and whether it was deducted. */
type CreditsProperty = {
  type: "credits";
  creditId: string;
  hasAccess: boolean;
  isFallback: boolean;
  balance?: number;
  cost?: number;
  deductedInRequest?: boolean;
  reason?: "insufficient_credits";
};
type ValueProperty =
  | { type: "boolean"; value: boolean; isFallback: boolean }
  | { type: "number"; value: number; isFallback: boolean }
  | { type: "string"; value: string; isFallback: boolean };
type PropertyState = MeterableProperty | ValueProperty | CreditsProperty;
type FeatureStates = Record<string, { featureId: string; featureSlug: string; properties: Record<string, PropertyState> }>;

interface CounterResult {
  hasAccess: boolean;
  consumedUnits: number;
  remainingUnits: number;
  totalUnits: number;
}

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
    consume(counterId: string, options?: { resourceId?: string }): Promise<CounterResult>;
    incrementCounter(counterId: string, update?: number, options?: { resourceId?: string }): Promise<CounterResult>;
  };
  resolveJwt(token: string): Promise<{ ok: boolean; identifier?: string; claims?: Record<string, JsonValue>; reason?: string }>;
  identities: {
    /** Carries the counters of `fromIdentifier` (e.g. the anonymous id before sign-in) over to this identity, once. */
    link(fromIdentifier: string, options?: { mode?: "copy_once" }): Promise<{ linked: boolean }>;
  };
  triggers: { fire(name: string, payload?: JsonValue): Promise<void> };
  testGroup100(identifier: string): Promise<number>;
}

interface BaseArgs {
  identity: WorkflowIdentity;
  context: WorkflowContext;
  resource: WorkflowResource | null;
  /** Variables and secrets of the environment. */
  env: Record<string, string>;
  plans: string[];
  utils: WorkflowUtils;
}

type MiddlewareWorkflow = (args: BaseArgs) => Promise<MiddlewareResult | void> | MiddlewareResult | void;
interface MiddlewareResult {
  /** Replace the request's identifier. */
  identifier?: string;
  /** Fail the request with a 4xx. */
  fail?: { status: number; message: string };
  /** Extra properties handed to later workflows (as `middlewareProperties`). */
  properties?: Record<string, JsonValue>;
  /** Tag the request as a bot. */
  bot?: BotTag;
}

/** Returns the slugs of plans to add to the user's provisioned plans. Utils are read-only here. */
type ProvisioningWorkflow = (args: BaseArgs) => Promise<string[]> | string[];

/** Returns overrides for the properties of its feature: `{ premium: true, quality: "high" }`. */
type FeatureWorkflow = (args: BaseArgs & { feature: FeatureStates[string]; features: FeatureStates }) =>
  | Promise<Record<string, boolean | number | string>>
  | Record<string, boolean | number | string>;

interface HttpReplace {
  status: number;
  statusText?: string;
  headers?: Record<string, string>;
  cookies?: string[];
  body: string;
}
interface HttpModify {
  addHeaders?: { name: string; value: string }[];
  removeHeaders?: string[];
  addCookies?: string[];
  status?: number;
  statusText?: string;
}
interface SurfaceBehavior {
  properties?: Record<string, JsonValue>;
  http?: HttpReplace | HttpModify;
  content?: JsonValue;
}
type SurfaceWorkflow = (args: BaseArgs & { features: FeatureStates; surfaceSlug: string }) => Promise<SurfaceBehavior> | SurfaceBehavior;

interface ComponentBehavior {
  content?: JsonValue;
  properties?: Record<string, JsonValue>;
}
type ComponentWorkflow = (
  args: BaseArgs & { features: FeatureStates; surfaceSlug: string; componentSlug: string; surfaceProperties: Record<string, JsonValue> },
) => Promise<ComponentBehavior> | ComponentBehavior;

type EndpointWorkflow = (request: Request, args: Omit<BaseArgs, "resource" | "plans"> & { path: string }) => Promise<Response> | Response;

type ActionWorkflow = (args: { trigger: string; payload: JsonValue; env: Record<string, string>; utils: WorkflowUtils }) => Promise<void> | void;
