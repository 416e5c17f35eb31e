/** Registers every route module on the app: the list of what the API can do. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { timing } from "hono/timing";
import type { AppEnv } from "../context";
import { registerConfigDocumentRoutes } from "./admin/configDocument";
import { registerCustomerRoutes } from "./admin/customers";
import { registerDeadLetterRoutes } from "./admin/deadLetters";
import { registerEnvironmentSettingsRoutes } from "./admin/environmentSettings";
import { registerEventRoutes } from "./admin/events";
import { registerMetricsRoutes } from "./admin/metrics";
import { registerTailRoutes } from "./admin/tail";
import { registerDraftCollectionRoutes } from "./admin/draftCollections";
import { registerEnvironmentRoutes } from "./admin/environments";
import { registerOrganizationKeyRoutes } from "./admin/organizationKeys";
import { registerOrganizationRoutes } from "./admin/organizations";
import { registerPaymentRoutes } from "./admin/payments";
import { registerX402SettingsRoutes } from "./admin/x402";
import { registerPaymentSyncRoutes } from "./admin/paymentSync";
import { registerSessionRoutes } from "./admin/session";
import { registerWorkflowTypesRoutes } from "./admin/workflowTypes";
import { registerWorkflowCheckRoutes } from "./admin/workflowChecks";
import { registerPaymentWebhookRoutes } from "./paymentWebhooks";
import { registerVersionRoutes } from "./admin/versions";
import { registerConsoleRoutes } from "./console";
import { registerDocs } from "./docs";
import { registerEndpointRoutes } from "./endpoints";
import { registerAccessCheckRoute } from "./decisions/accessChecks";
import { registerSurfaceDecisionRoute } from "./decisions/surfaceDecisions";
import { registerHealth } from "./health";
import { registerCounterUpdateRoute } from "./decisions/counterUpdates";
import { registerReservationRoutes } from "./decisions/reservations";
import { registerX402SettlementRoute } from "./decisions/x402Settlements";
import { registerCheckoutRoutes } from "./decisions/checkout";
import { registerOfferRedemptionRoute } from "./decisions/offerRedemptions";
import { registerOfferFunnelRoutes } from "./admin/offers";
import { registerIdentityLinkRoute } from "./decisions/identityLinks";
import { registerMeterAdminRoutes } from "./admin/meters";
import { registerPlaygroundRoutes } from "./admin/playground";
import { registerWebhookRoutes } from "./admin/webhooks";
import { adminBodyLimit } from "../middleware/decisionBody";

/**
 * Publishable keys are made for browsers, which call the decision routes from the customer's own origin: those routes
 * answer CORS (any origin — a publishable key is no secret, and no cookie is involved). Admin routes do not.
 */
const browserCors = cors({
  origin: "*",
  allowMethods: ["POST", "OPTIONS"],
  allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
  exposeHeaders: ["Server-Timing", "X-Request-Id", "Retry-After"],
  maxAge: 86_400,
});
const TIMED_ROUTES = ["/api/v1/access-checks", "/api/v1/surface-decisions"];
const BROWSER_ROUTES = ["/api/v1/access-checks", "/api/v1/surface-decisions", "/api/v1/counter-updates", "/api/v1/identity-links"];

export function registerRoutes(app: OpenAPIHono<AppEnv>): void {
  for (const path of BROWSER_ROUTES) app.use(path, browserCors);
  // Per-stage durations of decisions in Server-Timing (the pipeline's StageTimer feeds it).
  for (const path of TIMED_ROUTES) app.use(path, timing({ total: false, enabled: (c) => c.res.ok }));
  app.use("/api/v1/admin/*", adminBodyLimit);
  registerHealth(app);
  registerConsoleRoutes(app);
  registerAccessCheckRoute(app);
  registerSurfaceDecisionRoute(app);
  registerOrganizationRoutes(app);
  registerOrganizationKeyRoutes(app);
  registerSessionRoutes(app);
  registerWorkflowTypesRoutes(app);
  registerWorkflowCheckRoutes(app);
  registerEnvironmentRoutes(app);
  registerDraftCollectionRoutes(app);
  registerConfigDocumentRoutes(app);
  registerVersionRoutes(app);
  registerCustomerRoutes(app);
  registerEventRoutes(app);
  registerTailRoutes(app);
  registerMetricsRoutes(app);
  registerDeadLetterRoutes(app);
  registerEnvironmentSettingsRoutes(app);
  registerPaymentRoutes(app);
  registerX402SettingsRoutes(app);
  registerPaymentSyncRoutes(app);
  registerPaymentWebhookRoutes(app);
  registerEndpointRoutes(app);
  registerCounterUpdateRoute(app);
  registerReservationRoutes(app);
  registerX402SettlementRoute(app);
  registerIdentityLinkRoute(app);
  registerCheckoutRoutes(app);
  registerOfferRedemptionRoute(app);
  registerOfferFunnelRoutes(app);
  registerMeterAdminRoutes(app);
  registerPlaygroundRoutes(app);
  registerWebhookRoutes(app);
  registerDocs(app);
}
