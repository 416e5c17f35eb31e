/**
 * Who a request is about, and which plans they hold before feature state is resolved: identity → bot tags →
 * middleware workflows → customer (Stripe products) → provisioning workflows. Shared by decisions and by the
 * meter routes (counter updates), so a counter update sees exactly the plans a decision would.
 */
import type { Context } from "hono";
import type { AppEnv } from "../context";
import { autoAssignCategoryFor, classifyBot, provisionPlans, type AutoAssignCategory, type BotTag, type PreparedSnapshot, type ResolvedIdentity } from "../engine";
import { ApiError } from "../errors";
import { resolveIdentity, type ResolveIdentityResult } from "../identity/resolveIdentity";
import { getCustomerCached, type Customer } from "../services/customers";
import { storeOf, type Environment } from "../services/tenancy";
import { DecisionWorkflows } from "./workflows";

export interface SubjectRequest {
  identity: unknown;
  resource?: Record<string, unknown>;
  http?: { url?: string; userAgent?: string; clientIP?: string; referer?: string };
  cloudflare?: { cf?: Record<string, unknown> };
}

export interface Subject {
  resolved: Extract<ResolveIdentityResult, { ok: true }>;
  identity: ResolvedIdentity;
  bot: BotTag | undefined;
  category: AutoAssignCategory;
  customer: Customer | null;
  stripeProductIds: string[];
  workflowPlanSlugs: string[];
  /** Present when the deployed version has workflows; later stages (feature, surface, components) reuse it. */
  workflows: DecisionWorkflows | undefined;
  store: string;
}

export async function resolveSubject(
  c: Context<AppEnv>,
  prepared: PreparedSnapshot,
  environment: Environment,
  keyType: "secret" | "publishable",
  body: SubjectRequest,
): Promise<Subject> {
  const timings = c.get("timings");
  const snapshot = prepared.snapshot;
  const resolved = await resolveIdentity(body.identity, { keyType, authMethods: snapshot.authMethods });
  if (!resolved.ok) throw new ApiError(resolved.code, resolved.message);
  let identity: ResolvedIdentity = resolved.identity;
  timings.mark("identity");

  // A publishable key is used from the browser, so Cloudflare's view of this very request describes the visitor;
  // a secret key is used by the customer's server, whose own request.cf says nothing about the visitor and whose
  // body (cloudflare.cf, x-mos-user-agent) is trusted instead. A browser cannot forge a verified bot this way.
  const trusted = keyType === "secret";
  const cf = trusted ? body.cloudflare?.cf : ((c.req.raw as { cf?: Record<string, unknown> }).cf ?? undefined);
  const userAgent = body.http?.userAgent ?? (trusted ? c.req.header("x-mos-user-agent") : c.req.header("user-agent"));
  let bot: BotTag | undefined = classifyBot({ userAgent, cf });
  const store = storeOf(environment);

  const workflows =
    snapshot.workflows.length > 0
      ? new DecisionWorkflows(c, prepared, environment, store, identity, bot, {
          userAgent,
          url: body.http?.url,
          referer: body.http?.referer,
          // Like cf and the user agent: the body speaks for the visitor only when the caller is the customer's server.
          clientIp: trusted ? body.http?.clientIP : (c.req.header("cf-connecting-ip") ?? undefined),
          cf,
          resource: body.resource,
        })
      : undefined;
  if (workflows?.has("middleware")) {
    const middleware = await workflows.middleware();
    if (middleware.fail) throw new ApiError("rejected_by_workflow", middleware.fail.message, undefined, middleware.fail.status);
    ({ identity, bot } = workflows.applyMiddleware(middleware));
    timings.mark("middleware");
  }
  const category = autoAssignCategoryFor(identity, bot);

  const customer = identity.isAuthenticated ? await getCustomerCached(c.env.DB, environment.organizationId, store, identity.identifier) : null;
  const stripeProductIds = customer?.stripeProductIds ?? [];
  timings.mark("context");

  let workflowPlanSlugs: string[] = [];
  if (workflows?.has("provisioning")) {
    const basePlans = provisionPlans(prepared, { category, stripeProductIds }).planSlugs;
    workflowPlanSlugs = await workflows.provisioning(basePlans);
    timings.mark("provisioning");
  }
  return { resolved, identity, bot, category, customer, stripeProductIds, workflowPlanSlugs, workflows, store };
}
