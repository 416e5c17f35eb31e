/**
 * Which components of a surface decision change the page, read from what their workflows returned. A workflow may put
 * any JSON in `content`; only the documented keys are read, and a value of the wrong type counts as absent.
 */
import type { SurfaceDecisionResponse } from "@edge-monetization/client";
import { renderItems } from "./render";

/** A component's content instructions, rendered to HTML once. */
export interface ComponentEdits {
  slug: string;
  selector: string;
  before: string;
  prepend: string;
  append: string;
  after: string;
  remove: boolean;
  range: RangeEdit | null;
}

/** `replaceRange`: the markers (CSS selectors inside the component element) and the HTML put in the range's place. */
export interface RangeEdit {
  fromMarker: string | null;
  toMarker: string | null;
  replaceWith: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const nonEmptyString = (value: unknown): string | null => (typeof value === "string" && value.trim() !== "" ? value : null);

function readRange(value: unknown): RangeEdit | null {
  if (!isRecord(value)) return null;
  const fromMarker = nonEmptyString(value.fromMarker);
  const toMarker = nonEmptyString(value.toMarker);
  // The same marker at both ends names an empty range: nothing to replace.
  if (fromMarker !== null && fromMarker === toMarker) return null;
  return { fromMarker, toMarker, replaceWith: renderItems(value.replaceWith) };
}

/** The components that have a selector and content, in the decision's order. */
export function componentEdits(decision: Pick<SurfaceDecisionResponse, "componentsSkipped" | "componentBehaviors">): ComponentEdits[] {
  if (decision.componentsSkipped || !isRecord(decision.componentBehaviors)) return [];
  const edits: ComponentEdits[] = [];
  for (const [slug, behavior] of Object.entries(decision.componentBehaviors)) {
    if (!isRecord(behavior) || !isRecord(behavior.content)) continue;
    const selector = isRecord(behavior.metadata) ? nonEmptyString(behavior.metadata.cssSelector) : null;
    if (selector === null) continue;
    const content: Record<string, unknown> = behavior.content;
    edits.push({
      slug,
      selector,
      before: renderItems(content.before),
      prepend: renderItems(content.prepend),
      append: renderItems(content.append),
      after: renderItems(content.after),
      remove: content.remove === true,
      range: readRange(content.replaceRange),
    });
  }
  return edits;
}
