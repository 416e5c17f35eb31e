/**
 * Stage 10 — component workflows of the surface, in parallel, each given the surface's properties and its own offer
 * groups as the offers stage resolved them. A surface workflow that replaced the response (an http body) makes them
 * moot: they are skipped (`componentsSkipped`).
 */
import type { ComponentArgs } from "../../workflows/authorTypes";
import type { ComponentBehavior } from "../../workflows/stages";
import { validateComponentBehavior } from "../../workflows/stages";
import type { Featured, Identified, Planned, Surfaced, SurfaceFields, WithOffers, WithSurfaceBehavior } from "../context";
import type { Services } from "../services";
import { offersOfComponent } from "./offers";

export async function runComponentWorkflows<C extends Identified & Planned & Featured & WithSurfaceBehavior & WithOffers>(services: Services, context: C): Promise<C & Surfaced> {
  const { surfaceBehavior, decision, workflows: session, features, offers } = context;
  const surface = decision.surface;
  if (!surface || surfaceBehavior === undefined) return { ...context, surfaceFields: undefined };
  const componentsSkipped = typeof surfaceBehavior.http?.body === "string";
  const componentBehaviors: SurfaceFields["componentBehaviors"] = {};
  if (!componentsSkipped) {
    const workflows = session?.of("component").filter((candidate) => candidate.surface === surface.slug && candidate.component) ?? [];
    const fromWorkflows = new Map<string, ComponentBehavior>();
    if (session && workflows.length > 0) {
      const surfaceProperties = surfaceBehavior.properties ?? {};
      await Promise.all(
        workflows.map(async (workflow) => {
          const offerGroups = surface.components.find((component) => component.slug === workflow.component)?.offerGroups;
          const args = (): ComponentArgs => ({
            ...session.args(decision.planSlugs),
            features,
            surfaceSlug: surface.slug,
            componentSlug: workflow.component!,
            surfaceProperties,
            offers: offersOfComponent(offers?.views, offerGroups),
          });
          const behavior = await session.run(workflow, args, validateComponentBehavior);
          if (behavior) fromWorkflows.set(workflow.component!, behavior);
        }),
      );
    }
    for (const component of surface.components) {
      const behavior = fromWorkflows.get(component.slug) ?? {};
      // Always a metadata object: clients read `metadata.cssSelector` of every component without a guard.
      componentBehaviors[component.slug] = { ...behavior, metadata: { cssSelector: component.cssSelector ?? null } };
    }
  }
  if (session) services.timing.mark("surface_workflows");
  return { ...context, surfaceFields: { surfaceBehavior, componentsSkipped, componentBehaviors } };
}
