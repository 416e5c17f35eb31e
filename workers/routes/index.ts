/** Registers every route module on the app: the list of what the API can do. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";
import { registerConfigDocumentRoutes } from "./admin/configDocument";
import { registerCustomerRoutes } from "./admin/customers";
import { registerEnvironmentSettingsRoutes } from "./admin/environmentSettings";
import { registerEventRoutes } from "./admin/events";
import { registerDraftCollectionRoutes } from "./admin/draftCollections";
import { registerEnvironmentRoutes } from "./admin/environments";
import { registerOrganizationRoutes } from "./admin/organizations";
import { registerVersionRoutes } from "./admin/versions";
import { registerDocs } from "./docs";
import { registerEndpointRoutes } from "./endpoints";
import { registerAccessCheckRoute } from "./decisions/accessChecks";
import { registerSurfaceDecisionRoute } from "./decisions/surfaceDecisions";
import { registerHealth } from "./health";
import { registerCounterUpdateRoute } from "./decisions/counterUpdates";
import { registerIdentityLinkRoute } from "./decisions/identityLinks";
import { registerMeterAdminRoutes } from "./admin/meters";
import { adminBodyLimit } from "../middleware/decisionBody";

export function registerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.use("/api/v1/admin/*", adminBodyLimit);
  registerHealth(app);
  registerAccessCheckRoute(app);
  registerSurfaceDecisionRoute(app);
  registerOrganizationRoutes(app);
  registerEnvironmentRoutes(app);
  registerDraftCollectionRoutes(app);
  registerConfigDocumentRoutes(app);
  registerVersionRoutes(app);
  registerCustomerRoutes(app);
  registerEventRoutes(app);
  registerEnvironmentSettingsRoutes(app);
  registerEndpointRoutes(app);
  registerCounterUpdateRoute(app);
  registerIdentityLinkRoute(app);
  registerMeterAdminRoutes(app);
  registerDocs(app);
}
