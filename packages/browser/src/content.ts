import type { ContentInstructions, ContentItem, SurfaceDecisionResponse } from "@edge-monetization/client";
import { defineElements } from "./elements.js";

const CUSTOM_ELEMENT_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]*)+$/;

/**
 * The tag and version an element item's schema names: `"source:name@version"` → `source-name`, `"version"`; a schema
 * without a source is one of ours: `"offer"` → `mos-offer`. Null when that is no valid custom-element name.
 */
export function elementTagOf(schema: string): { tag: string; version: string } | null {
  const at = schema.lastIndexOf("@");
  const name = at < 0 ? schema : schema.slice(0, at);
  const version = at < 0 ? "" : schema.slice(at + 1);
  const colon = name.indexOf(":");
  const tag = colon < 0 ? `mos-${name}` : `${name.slice(0, colon)}-${name.slice(colon + 1)}`;
  return CUSTOM_ELEMENT_NAME.test(tag) ? { tag, version } : null;
}

/**
 * The nodes of content items, in list order: HTML parsed, text as text, elements as custom elements. Unknown items
 * render nothing. HTML items are trusted markup (the workflow's author's, not the visitor's): their `<script>`s do not
 * run, but event-handler attributes (`onerror`, …) do once the nodes are in the page.
 */
export function renderItems(items: readonly ContentItem[] | null | undefined, document_: Document = document): DocumentFragment {
  const fragment = document_.createDocumentFragment();
  if (!Array.isArray(items)) return fragment;
  for (const item of items as readonly unknown[]) {
    if (!item || typeof item !== "object") continue;
    const { type } = item as { type?: unknown };
    if (type === "html" && typeof (item as { content?: unknown }).content === "string") {
      const template = document_.createElement("template");
      template.innerHTML = (item as { content: string }).content;
      fragment.append(template.content);
    } else if (type === "text" && typeof (item as { content?: unknown }).content === "string") {
      fragment.append(document_.createTextNode((item as { content: string }).content));
    } else if (type === "element" && typeof (item as { schema?: unknown }).schema === "string") {
      const named = elementTagOf((item as { schema: string }).schema);
      if (!named) continue;
      const element = document_.createElement(named.tag);
      element.setAttribute("version", named.version);
      element.setAttribute("props", JSON.stringify((item as { props?: unknown }).props ?? {}));
      fragment.append(element);
    }
  }
  return fragment;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
/** A marker or selector as the edge proxy reads it: a string with something in it, else absent. */
const nonEmptyString = (value: unknown): string | null => (typeof value === "string" && value.trim() !== "" ? value : null);

/**
 * Applies one component's content instructions to `element`, as the edge proxy does to the HTML it passes: the
 * teaser's range first, then prepend/append inside, before/after outside, and `remove` last (before/after stay).
 * Keys of the wrong type count as absent; a range whose marker is not a valid selector is skipped (with a warning),
 * the other instructions still apply — as in the proxy.
 */
export function applyInstructions(element: Element, content: ContentInstructions): void {
  if (!isRecord(content as unknown)) return;
  const document_ = element.ownerDocument;
  if (isRecord(content.replaceRange)) replaceRange(element, content.replaceRange);
  if (content.prepend) element.prepend(renderItems(content.prepend, document_));
  if (content.append) element.append(renderItems(content.append, document_));
  if (content.before) element.before(renderItems(content.before, document_));
  if (content.after) element.after(renderItems(content.after, document_));
  if (content.remove === true) element.remove();
}

/**
 * Removes what lies between the end of the first descendant matching `fromMarker` (or the element's start) and the
 * start of the first descendant matching `toMarker` after it (or the element's end) — exactly what a DOM Range
 * between them deletes, so ancestors of the toMarker element stay and only their parts inside the range go — and puts
 * `replaceWith` right after the fromMarker element (or at the element's start), where the edge proxy puts it.
 * Identical markers, or a fromMarker that matches nothing, change nothing.
 */
function replaceRange(element: Element, range: Record<string, unknown>): void {
  const fromMarker = nonEmptyString(range.fromMarker);
  const toMarker = nonEmptyString(range.toMarker);
  if (fromMarker !== null && fromMarker === toMarker) return;
  let from: Element | null;
  let toCandidates: Element[];
  try {
    // Both markers are read before anything changes: an invalid one leaves the element as it was.
    from = fromMarker === null ? null : element.querySelector(fromMarker);
    toCandidates = toMarker === null ? [] : Array.from(element.querySelectorAll(toMarker));
  } catch {
    console.warn(`@edge-monetization/browser: replaceRange skipped, a marker is not a valid selector: ${JSON.stringify([fromMarker, toMarker])}`);
    return;
  }
  if (fromMarker !== null && !from) return;
  const to = toCandidates.find((candidate) => !from || (from.compareDocumentPosition(candidate) & Node.DOCUMENT_POSITION_FOLLOWING && !from.contains(candidate)));
  const deleted = element.ownerDocument.createRange();
  if (from) deleted.setStartAfter(from);
  else deleted.setStart(element, 0);
  if (to) deleted.setEndBefore(to);
  else deleted.setEnd(element, element.childNodes.length);
  deleted.deleteContents();
  // Not the collapsed range's place: with a fromMarker nested deeper than the toMarker, that is up at their common ancestor.
  const replacement = renderItems(range.replaceWith as ContentItem[] | null | undefined, element.ownerDocument);
  if (from) from.after(replacement);
  else element.prepend(replacement);
}

/**
 * Applies a surface decision's component content (`componentBehaviors[slug].content`) to the elements of `root`
 * matching each component's `metadata.cssSelector` — for a page that asks the platform itself (a `pk_` key) instead
 * of running the edge proxy. Element items become our custom elements, which this defines. A component without a
 * selector or content changes nothing; a component that cannot be applied (an invalid selector, …) is skipped with a
 * warning, never the others.
 */
export function applyContent(root: ParentNode, decision: Pick<SurfaceDecisionResponse, "componentBehaviors" | "componentsSkipped"> | null | undefined): void {
  if (!isRecord(decision) || decision.componentsSkipped || !isRecord(decision.componentBehaviors)) return;
  defineElements();
  for (const [slug, behavior] of Object.entries(decision.componentBehaviors)) {
    if (!isRecord(behavior) || !isRecord(behavior.content)) continue;
    const selector = isRecord(behavior.metadata) ? nonEmptyString(behavior.metadata.cssSelector) : null;
    if (selector === null) continue;
    try {
      for (const element of Array.from(root.querySelectorAll(selector))) applyInstructions(element, behavior.content as ContentInstructions);
    } catch (error) {
      console.warn(`@edge-monetization/browser: component ${slug} (cssSelector ${JSON.stringify(selector)}) skipped: ${String(error)}`);
    }
  }
}
