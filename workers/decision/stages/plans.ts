/**
 * Stage 6 — plans, in the pure engine: the auto-assign category, the provisioned plans (auto ∪ Stripe-linked ∪
 * workflows), the conflict-resolved base feature states, and the meter and credit requests a decision would send.
 */
import { autoAssignCategoryFor, decide } from "../../engine";
import type { Planned, Subject } from "../context";
import type { Services } from "../services";

export function planDecision<C extends Subject & { surfaceSlug?: string }>(services: Services, context: C): C & Planned {
  const { prepared, store, identity, bot, stripeProductIds, workflowPlanSlugs, surfaceSlug, body } = context;
  const category = autoAssignCategoryFor(identity, bot);
  // The config stage already refused an unknown surface, so decide() cannot throw SurfaceNotFoundError here.
  const decision = decide({ prepared, category, stripeProductIds, workflowPlanSlugs, storeId: store, surfaceSlug, action: body.action, resource: body.resource });
  // Workflows that run from now on enforce exactly these limits in utils.counters (unlimited counters never refuse).
  context.workflows?.knowCounters(decision.countedMeterRequests);
  services.timing.mark("plans");
  return { ...context, category, decision };
}
