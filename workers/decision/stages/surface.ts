/**
 * Stage 9 — the surface workflow (surface decisions only): the surface's behaviour (properties, content, an http
 * replace or modify). A failure falls back to no behaviour.
 */
import type { SurfaceArgs } from "../../workflows/authorTypes";
import { validateSurfaceBehavior } from "../../workflows/stages";
import type { DecisionRequest, Featured, Identified, Metered, Planned, WithSurfaceBehavior } from "../context";
import { crawlBehavior, paymentRecorded, type Crawled } from "./crawl";
import type { Services } from "../services";

export async function runSurfaceWorkflow<C extends DecisionRequest & Identified & Planned & Featured & Metered & Partial<Crawled>>(_services: Services, context: C): Promise<C & WithSurfaceBehavior> {
  const { surfaceSlug, workflows: session, features, decision, crawl } = context;
  if (surfaceSlug === undefined) return { ...context, surfaceBehavior: undefined };
  // A refused crawl answers with its own page: there is nothing for the surface's workflow to shape.
  if (crawl?.kind === "refused") return { ...context, surfaceBehavior: crawlBehavior({}, crawl, false) };
  const workflow = session?.of("surface").find((candidate) => candidate.surface === surfaceSlug);
  const behavior = session && workflow ? ((await session.run(workflow, (): SurfaceArgs => ({ ...session.args(decision.planSlugs), features, surfaceSlug }), validateSurfaceBehavior)) ?? {}) : {};
  return { ...context, surfaceBehavior: crawlBehavior(behavior, crawl, paymentRecorded(context.meter)) };
}
