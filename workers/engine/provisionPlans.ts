/**
 * Stage 2: provisioned plans = auto-assigned (by category) ∪ linked to the customer's Stripe products ∪ returned by
 * provisioning workflows. Plans stack (resolveFeatureStates), so the list only has to be complete and stable:
 * auto-assigned first (plan order), then Stripe-linked (in the order of the customer's products), then workflow slugs
 * (in the order returned). A plan reached several ways appears once, with every source recorded.
 */
import type { PreparedSnapshot } from "./prepare";
import type { AutoAssignCategory } from "./types";

export type PlanSource = "auto" | "stripe" | "workflow";

export interface ProvisionInput {
  category: AutoAssignCategory;
  stripeProductIds?: readonly string[];
  workflowPlanSlugs?: readonly string[];
}

export interface ProvisionedPlans {
  planSlugs: string[];
  /** slug → how the plan was reached, in the order the sources were seen. */
  sources: Record<string, PlanSource[]>;
  /**
   * Slugs a workflow returned that the deployed version does not have (a workflow written for a newer version, a
   * typo): dropped, and reported so the caller can record them on the decision.
   */
  unknownPlanSlugs: string[];
}

const NO_STRINGS: readonly string[] = [];

export function provisionPlans(prepared: PreparedSnapshot, input: ProvisionInput): ProvisionedPlans {
  const planSlugs: string[] = [];
  // Plan slugs match the slug pattern (they start with a letter or digit), so none can collide with
  // Object.prototype members; unknown workflow slugs never become keys.
  const sources: Record<string, PlanSource[]> = {};
  const unknownPlanSlugs: string[] = [];

  for (const plan of prepared.plansByCategory.get(input.category) ?? NO_PLANS) addPlan(planSlugs, sources, plan.slug, "auto");
  for (const productId of input.stripeProductIds ?? NO_STRINGS) {
    const linked = prepared.plansByStripeProductId.get(productId);
    if (linked) for (const plan of linked) addPlan(planSlugs, sources, plan.slug, "stripe");
  }
  for (const slug of input.workflowPlanSlugs ?? NO_STRINGS) {
    if (prepared.planBySlug.has(slug)) addPlan(planSlugs, sources, slug, "workflow");
    else if (!unknownPlanSlugs.includes(slug)) unknownPlanSlugs.push(slug);
  }
  return { planSlugs, sources, unknownPlanSlugs };
}

const NO_PLANS: readonly { slug: string }[] = [];

function addPlan(planSlugs: string[], sources: Record<string, PlanSource[]>, slug: string, source: PlanSource): void {
  const seen = Object.hasOwn(sources, slug) ? sources[slug] : undefined;
  if (seen) {
    if (!seen.includes(source)) seen.push(source);
    return;
  }
  sources[slug] = [source];
  planSlugs.push(slug);
}
