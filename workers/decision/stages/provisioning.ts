/**
 * Stage 5 — provisioning workflows: each may add plans to the ones the identity already gets (auto-assigned and
 * Stripe-linked, which it receives as `plans`). They run concurrently with read-only utils; the union of their slugs
 * is kept, and a failed one adds nothing.
 */
import { autoAssignCategoryFor, provisionPlans } from "../../engine";
import type { ProvisioningArgs } from "../../workflows/authorTypes";
import { validatePlanSlugs } from "../../workflows/stages";
import type { Configured, Identified, Provisioned, WithCustomer } from "../context";
import type { Services } from "../services";

export async function runProvisioning<C extends Configured & Identified & WithCustomer>(services: Services, context: C): Promise<C & Provisioned> {
  const session = context.workflows;
  const workflows = session?.of("provisioning") ?? [];
  if (!session || workflows.length === 0) return { ...context, workflowPlanSlugs: [] };
  const category = autoAssignCategoryFor(context.identity, context.bot);
  const basePlans = provisionPlans(context.prepared, { category, stripeProductIds: context.stripeProductIds }).planSlugs;
  const results = await Promise.all(workflows.map((workflow) => session.run(workflow, (): ProvisioningArgs => session.args(basePlans), validatePlanSlugs, { readOnly: true })));
  services.timing.mark("provisioning");
  return { ...context, workflowPlanSlugs: [...new Set(results.flatMap((slugs) => slugs ?? []))] };
}
