/**
 * Stage 7: the components' content instructions on the page (each on the elements its cssSelector matches), and the
 * INJECT_SCRIPT_URL script in its <head>.
 */
import type { SurfaceDecisionResponse } from "@edge-monetization/client";
import type { ProxyContext } from "../context";
import { componentEdits } from "../content/instructions";
import { rewritePage } from "../content/rewrite";

export function applyContent(html: string, decision: SurfaceDecisionResponse, context: ProxyContext): Promise<string> {
  return rewritePage(html, componentEdits(decision), { injectScriptUrl: context.config.injectScriptUrl ?? undefined, logger: context.logger });
}
