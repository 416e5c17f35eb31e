/**
 * Who a request is about and which plans they hold before feature state is resolved: config → identity →
 * middleware → customer → provisioning. Decisions, counter updates and endpoint workflows (for utils.counters)
 * resolve their subject this way, so each sees exactly the plans a decision would; identity links need no plans and
 * stop after middleware.
 */
import type { CallerScope, Subject } from "./context";
import type { Services } from "./services";
import { findCustomer, identify, loadConfig, runMiddleware, runProvisioning } from "./stages";

export async function resolveSubject<C extends CallerScope & { surfaceSlug?: string }>(services: Services, request: C): Promise<C & Subject> {
  const configured = await loadConfig(services, request);
  const identified = await identify(services, configured);
  const filtered = await runMiddleware(services, identified);
  const withCustomer = await findCustomer(services, filtered);
  return runProvisioning(services, withCustomer);
}
