/**
 * `replaceRange` with HTMLRewriter. A streaming rewriter cannot look ahead, and what a range deletes depends on where
 * its markers are, so pages with a range are read twice: a first pass numbers every element in document order and
 * finds, in each component element, the `fromMarker` element, the first `toMarker` element after it and that element's
 * ancestors; the second pass, over the same HTML (so the same numbers), removes every element and text node between
 * the end of the first and the start of the second — what a DOM Range from "after fromMarker" to "before toMarker"
 * deletes: the toMarker element's ancestors keep their tags and lose only their parts inside the range.
 */
import type { ComponentEdits } from "./instructions";
import { type Logger, warnOnce } from "../log";

/** Elements that never have an end tag (and so no content). */
const VOID_ELEMENTS = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]);
const isVoid = (element: Element) => VOID_ELEMENTS.has(element.tagName.toLowerCase());

/** Where each range starts and ends, by element number. */
interface RangePlan {
  /** The range starts after this element (the fromMarker element); its replacement goes right after it. */
  startsAfter: Map<number, string>;
  /** The range starts at the start of this component element (no fromMarker); its replacement is prepended. */
  startsInside: Map<number, string>;
  /** The range ends before this element starts (the toMarker element). */
  endsBefore: Set<number>;
  /** The range ends at the end of this component element (no toMarker, or none found after the fromMarker). */
  endsAtEndOf: Set<number>;
  /** Ancestors of toMarker elements: kept even where their start tag lies inside a range. */
  kept: Set<number>;
}

/** One component element being scanned. */
interface Instance {
  index: number;
  open: boolean;
  from: number | null;
  fromEnded: boolean;
  to: number | null;
  ancestorsOfTo: number[];
}

/** Numbers elements as they start and runs end-tag callbacks, so several handlers can await one element's end. */
class ElementCounter {
  next = 0;
  current = -1;
  /** Indexes of the elements open at this point (ancestors of whatever comes next). */
  readonly open: number[] = [];
  private readonly atEnd = new Map<number, ((end: EndTag) => void)[]>();

  /** Registered first on "*": every other handler of the same element runs after it and sees its number. */
  start(element: Element): void {
    this.current = this.next++;
    if (isVoid(element)) return;
    const index = this.current;
    this.open.push(index);
    // The only onEndTag of the element: handlers that need its end register with onEnd.
    element.onEndTag((end) => {
      const at = this.open.lastIndexOf(index);
      if (at !== -1) this.open.length = at;
      for (const callback of this.atEnd.get(index) ?? []) callback(end);
      this.atEnd.delete(index);
    });
  }

  onEnd(index: number, callback: (end: EndTag) => void): void {
    const callbacks = this.atEnd.get(index);
    if (callbacks) callbacks.push(callback);
    else this.atEnd.set(index, [callback]);
  }
}

/** Registers a handler, or logs and returns false when the selector is not one HTMLRewriter accepts. */
function onSelector(rewriter: HTMLRewriter, selector: string, handler: (element: Element) => void, edit: ComponentEdits, logger: Logger): boolean {
  try {
    rewriter.on(selector, { element: handler });
    return true;
  } catch (error) {
    warnOnce(logger, `selector ${edit.slug} ${selector}`, "edge-proxy: component skipped, its selector or marker is not valid", { component: edit.slug, selector, error: String(error) });
    return false;
  }
}

async function scan(html: string, edits: ComponentEdits[], logger: Logger): Promise<RangePlan> {
  const plan: RangePlan = { startsAfter: new Map(), startsInside: new Map(), endsBefore: new Set(), endsAtEndOf: new Set(), kept: new Set() };
  const counter = new ElementCounter();
  const rewriter = new HTMLRewriter().on("*", { element: (element) => counter.start(element) });
  const scanned: { edit: ComponentEdits; instances: Instance[] }[] = [];

  for (const edit of edits) {
    const range = edit.range!;
    // A scratch rewriter first: an invalid selector or marker skips this component without leaving half its handlers.
    const probe = new HTMLRewriter();
    const selectors = [edit.selector, range.fromMarker, range.toMarker].filter((selector): selector is string => selector !== null);
    if (!selectors.every((selector) => onSelector(probe, selector, () => {}, edit, logger))) continue;

    const instances: Instance[] = [];
    scanned.push({ edit, instances });
    const inside = () => instances.filter((instance) => instance.open && instance.index !== counter.current);
    rewriter.on(edit.selector, {
      element: (element) => {
        const instance: Instance = { index: counter.current, open: !isVoid(element), from: null, fromEnded: false, to: null, ancestorsOfTo: [] };
        instances.push(instance);
        if (instance.open) counter.onEnd(instance.index, () => (instance.open = false));
      },
    });
    if (range.fromMarker !== null) {
      rewriter.on(range.fromMarker, {
        element: (element) => {
          for (const instance of inside()) {
            if (instance.from !== null) continue;
            instance.from = counter.current;
            if (isVoid(element)) instance.fromEnded = true;
            else counter.onEnd(counter.current, () => (instance.fromEnded = true));
          }
        },
      });
    }
    if (range.toMarker !== null) {
      rewriter.on(range.toMarker, {
        element: () => {
          for (const instance of inside()) {
            const started = range.fromMarker === null || instance.fromEnded;
            if (!started || instance.to !== null) continue;
            instance.to = counter.current;
            instance.ancestorsOfTo = counter.open.filter((index) => index > instance.index && index !== counter.current);
          }
        },
      });
    }
  }

  await rewriter.transform(new Response(html)).text();

  for (const { edit, instances } of scanned) {
    const range = edit.range!;
    for (const instance of instances) {
      // A fromMarker that matches nothing in this element: nothing happens.
      if (range.fromMarker !== null && instance.from === null) continue;
      if (instance.from !== null) plan.startsAfter.set(instance.from, (plan.startsAfter.get(instance.from) ?? "") + range.replaceWith);
      else plan.startsInside.set(instance.index, (plan.startsInside.get(instance.index) ?? "") + range.replaceWith);
      if (instance.to !== null) {
        plan.endsBefore.add(instance.to);
        for (const ancestor of instance.ancestorsOfTo) plan.kept.add(ancestor);
      } else plan.endsAtEndOf.add(instance.index);
    }
  }
  return plan;
}

/** The HTML with every component's range replaced. Components without a range, or whose selectors are invalid, are left alone. */
export async function replaceRanges(html: string, edits: ComponentEdits[], logger: Logger): Promise<string> {
  const withRange = edits.filter((edit) => edit.range !== null);
  if (withRange.length === 0) return html;
  const plan = await scan(html, withRange, logger);
  if (plan.startsAfter.size === 0 && plan.startsInside.size === 0) return html;

  const counter = new ElementCounter();
  // How many ranges the stream is inside (ranges of nested component elements may overlap).
  let depth = 0;
  const rewriter = new HTMLRewriter()
    .on("*", {
      element: (element) => {
        counter.start(element);
        const index = counter.current;
        if (plan.endsBefore.has(index)) depth--;
        // Tags go one by one (their content is visited and removed node by node), so every element is still numbered.
        if (depth > 0 && !plan.kept.has(index)) element.removeAndKeepContent();
        const inserted = plan.startsInside.get(index);
        if (inserted !== undefined) {
          element.prepend(inserted, { html: true });
          depth++;
        }
        if (plan.endsAtEndOf.has(index)) counter.onEnd(index, () => depth--);
        const after = plan.startsAfter.get(index);
        if (after !== undefined) {
          if (isVoid(element)) {
            element.after(after, { html: true });
            depth++;
          } else {
            counter.onEnd(index, (end) => {
              end.after(after, { html: true });
              depth++;
            });
          }
        }
      },
    })
    .onDocument({
      text: (text) => {
        if (depth > 0) text.remove();
      },
      comments: (comment) => {
        if (depth > 0) comment.remove();
      },
    });
  return rewriter.transform(new Response(html)).text();
}
