/** Applies the components' content instructions to a page with HTMLRewriter. */
import type { ComponentEdits } from "./instructions";
import { replaceRanges } from "./range";
import { escapeAttribute } from "./render";
import { type Logger, warnOnce } from "../log";

export interface RewriteOptions {
  /** A module script added to the page's <head>. */
  injectScriptUrl?: string | undefined;
  logger: Logger;
}

/**
 * The page with every component's instructions applied to every element its selector matches: ranges first (they
 * need their own passes, see ./range), then the insertions and removals. A component whose selector HTMLRewriter
 * rejects is skipped and logged; the others still apply.
 */
export async function rewritePage(html: string, edits: ComponentEdits[], options: RewriteOptions): Promise<string> {
  const ranged = await replaceRanges(html, edits, options.logger);
  const rewriter = new HTMLRewriter();
  for (const edit of edits) {
    if (!edit.before && !edit.prepend && !edit.append && !edit.after && !edit.remove) continue;
    try {
      rewriter.on(edit.selector, {
        element: (element) => {
          // One call per position keeps the items in list order.
          if (edit.before) element.before(edit.before, { html: true });
          if (edit.after) element.after(edit.after, { html: true });
          if (edit.remove) {
            element.remove();
            return;
          }
          if (edit.prepend) element.prepend(edit.prepend, { html: true });
          if (edit.append) element.append(edit.append, { html: true });
        },
      });
    } catch (error) {
      warnOnce(options.logger, `selector ${edit.slug} ${edit.selector}`, "edge-proxy: component skipped, its selector is not valid", { component: edit.slug, selector: edit.selector, error: String(error) });
    }
  }
  if (options.injectScriptUrl) {
    const script = `<script src="${escapeAttribute(options.injectScriptUrl)}" type="module" async></script>`;
    // At the end of <head>; a page without a <head> tag gets it at the start of <body> (a page with neither, nowhere).
    let placed = false;
    rewriter.on("head", {
      element: (head) => {
        placed = true;
        head.append(script, { html: true });
      },
    });
    rewriter.on("body", {
      element: (body) => {
        if (!placed) body.prepend(script, { html: true });
        placed = true;
      },
    });
  }
  return rewriter.transform(new Response(ranged)).text();
}

const NAMED_REFERENCES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/**
 * An attribute value as a browser reads it: HTMLRewriter hands out the raw source text, character references and all.
 * Numeric references and the common named ones are decoded; other named ones stay as written.
 */
export function decodeAttribute(raw: string): string {
  return raw.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (reference, name: string) => {
    if (name.startsWith("#")) {
      const codePoint = name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
      return codePoint > 0 && codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : reference;
    }
    return NAMED_REFERENCES[name.toLowerCase()] ?? reference;
  });
}

/** `<meta name|property content>` of the page's <head>, for the decision's `resource.meta`. */
export async function headMeta(html: string): Promise<Record<string, string>> {
  const meta = new Map<string, string>();
  await new HTMLRewriter()
    .on("head meta", {
      element: (element) => {
        const name = element.getAttribute("name") ?? element.getAttribute("property");
        const content = element.getAttribute("content");
        if (!name || content === null) return;
        const key = decodeAttribute(name);
        if (!meta.has(key)) meta.set(key, decodeAttribute(content));
      },
    })
    .transform(new Response(html))
    .text();
  return Object.fromEntries(meta);
}
