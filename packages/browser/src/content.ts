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

/** The nodes of content items, in list order: HTML parsed (inert: its scripts do not run), text as text, elements as custom elements. Unknown items render nothing. */
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

/**
 * Applies one component's content instructions to `element`, as the edge proxy does to the HTML it passes: the
 * teaser's range first, then prepend/append inside, before/after outside, and `remove` last (before/after stay).
 */
export function applyInstructions(element: Element, content: ContentInstructions): void {
  const document_ = element.ownerDocument;
  const range = content.replaceRange;
  if (range) replaceRange(element, range);
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
 * `replaceWith` there. Identical markers, or a fromMarker that matches nothing, change nothing.
 */
function replaceRange(element: Element, { fromMarker, toMarker, replaceWith }: NonNullable<ContentInstructions["replaceRange"]>): void {
  if (fromMarker && fromMarker === toMarker) return;
  const from = fromMarker ? element.querySelector(fromMarker) : null;
  if (fromMarker && !from) return;
  const to = toMarker
    ? Array.from(element.querySelectorAll(toMarker)).find((candidate) => !from || (from.compareDocumentPosition(candidate) & Node.DOCUMENT_POSITION_FOLLOWING && !from.contains(candidate)))
    : undefined;
  const range = element.ownerDocument.createRange();
  if (from) range.setStartAfter(from);
  else range.setStart(element, 0);
  if (to) range.setEndBefore(to);
  else range.setEnd(element, element.childNodes.length);
  range.deleteContents();
  if (replaceWith?.length) range.insertNode(renderItems(replaceWith, element.ownerDocument));
}

/**
 * Applies a surface decision's component content (`componentBehaviors[slug].content`) to the elements of `root`
 * matching each component's `metadata.cssSelector` — for a page that asks the platform itself (a `pk_` key) instead
 * of running the edge proxy. Element items become our custom elements, which this defines. A component without a
 * selector or content changes nothing; an invalid selector skips its component (with a warning), never the others.
 */
export function applyContent(root: ParentNode, decision: Pick<SurfaceDecisionResponse, "componentBehaviors" | "componentsSkipped">): void {
  if (decision.componentsSkipped) return;
  defineElements();
  for (const [slug, behavior] of Object.entries(decision.componentBehaviors ?? {})) {
    const selector = behavior?.metadata?.cssSelector;
    const content = behavior?.content;
    if (!selector || !content || typeof content !== "object") continue;
    let elements: Element[];
    try {
      elements = Array.from(root.querySelectorAll(selector));
    } catch {
      console.warn(`@edge-monetization/browser: component ${slug} has an invalid cssSelector ${JSON.stringify(selector)}; skipped`);
      continue;
    }
    for (const element of elements) applyInstructions(element, content as ContentInstructions);
  }
}
