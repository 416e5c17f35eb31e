/**
 * Stage 3 — middleware workflows: all run concurrently and their results merge in slug order. A `fail` rejects the
 * request (its 4xx); `identifier` and `bot` replace the identity's; `properties` reach every later workflow as
 * `middlewareProperties`.
 */
import { ApiError } from "../../errors";
import { validateMiddleware, type MiddlewareResult } from "../../workflows/stages";
import type { Identified } from "../context";
import type { Services } from "../services";

export async function runMiddleware<C extends Identified>(services: Services, context: C): Promise<C> {
  const session = context.workflows;
  const workflows = session?.of("middleware") ?? [];
  if (!session || workflows.length === 0) return context;
  const results = await Promise.all(workflows.map((workflow) => session.run(workflow, () => session.middlewareArgs(), validateMiddleware)));
  const merged: MiddlewareResult = {};
  for (const result of results) {
    if (!result) continue;
    if (result.fail && !merged.fail) merged.fail = result.fail;
    if (result.identifier) merged.identifier = result.identifier;
    if (result.bot) merged.bot = result.bot;
    if (result.properties) merged.properties = { ...merged.properties, ...result.properties };
  }
  if (merged.fail) throw new ApiError("rejected_by_workflow", merged.fail.message, undefined, merged.fail.status);
  const identity = merged.identifier ? { ...context.identity, identifier: merged.identifier } : context.identity;
  const bot = merged.bot ?? context.bot;
  session.setSubject(identity, bot);
  session.middlewareProperties = merged.properties ?? {};
  services.timing.mark("middleware");
  return { ...context, identity, bot };
}
