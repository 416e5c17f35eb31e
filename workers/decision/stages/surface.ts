/**
 * Stage 9 — the surface workflow (surface decisions only): the surface's behaviour (properties, content, an http
 * replace or modify). A failure falls back to no behaviour.
 */
import type { SurfaceArgs } from "../../workflows/authorTypes";
import { validateSurfaceBehavior } from "../../workflows/stages";
import type { DecisionRequest, Featured, Identified, Planned, WithSurfaceBehavior } from "../context";
import type { Services } from "../services";

export async function runSurfaceWorkflow<C extends DecisionRequest & Identified & Planned & Featured>(_services: Services, context: C): Promise<C & WithSurfaceBehavior> {
  const { surfaceSlug, workflows: session, features, decision } = context;
  if (surfaceSlug === undefined) return { ...context, surfaceBehavior: undefined };
  const workflow = session?.of("surface").find((candidate) => candidate.surface === surfaceSlug);
  if (!session || !workflow) return { ...context, surfaceBehavior: {} };
  const behavior = await session.run(workflow, (): SurfaceArgs => ({ ...session.args(decision.planSlugs), features, surfaceSlug }), validateSurfaceBehavior);
  return { ...context, surfaceBehavior: behavior ?? {} };
}
