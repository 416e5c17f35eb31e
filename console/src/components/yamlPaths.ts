/**
 * Where an error's JSON path (`plans.premium.features.widget.enabled`, `slots[0].offers[1]`) sits in YAML text: the
 * line of the deepest node of the path that exists (a missing key is reported on its parent).
 */
import { isNode, LineCounter, parseDocument, type Document } from "yaml";

/** `a.b[0].c` → ["a", "b", 0, "c"]; "(root)" → []. */
export function pathSegments(path: string): (string | number)[] {
  if (!path || path === "(root)") return [];
  const segments: (string | number)[] = [];
  for (const part of path.split(".")) {
    const match = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (!match) {
      segments.push(part);
      continue;
    }
    if (match[1]) segments.push(match[1]);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]));
  }
  return segments;
}

export interface LocatedProblem {
  path: string;
  message: string;
  /** 1-based line, or undefined when the text does not parse. */
  line?: number;
}

/** Each detail with its line in `text`; `prefix` segments are prepended (the text is a part of the document). */
export function locate(text: string, details: { path: string; message: string }[], prefix: (string | number)[] = []): LocatedProblem[] {
  const lineCounter = new LineCounter();
  let document: Document;
  try {
    document = parseDocument(text, { lineCounter, keepSourceTokens: false });
  } catch {
    return details;
  }
  return details.map((detail) => {
    // A parse error names its position itself ("… at line 5, column 1"); its path is only the nearest key.
    const position = /at line (\d+), column \d+/.exec(detail.message);
    if (position) return { ...detail, line: Number(position[1]) };
    const segments = pathSegments(detail.path);
    const relative = segments.slice(0, prefix.length).every((segment, index) => segment === prefix[index]) ? segments.slice(prefix.length) : segments;
    for (let length = relative.length; length >= 0; length--) {
      const node = length === 0 ? document.contents : document.getIn(relative.slice(0, length), true);
      if (isNode(node) && node.range) {
        // A value's line is its key's line for a block mapping's child; the range start is where the value begins.
        const key = length > 0 ? keyNodeOf(document, relative.slice(0, length)) : undefined;
        const offset = key?.range?.[0] ?? node.range[0];
        return { ...detail, line: lineCounter.linePos(offset).line };
      }
    }
    return { ...detail, line: 1 };
  });
}

/** The key node of the pair at `path` (so that an error on a block mapping points at `key:`, not the line below). */
function keyNodeOf(document: Document, path: (string | number)[]) {
  const parent = path.length === 1 ? document.contents : document.getIn(path.slice(0, -1), true);
  if (!parent || typeof parent !== "object" || !("items" in parent)) return undefined;
  const last = path.at(-1);
  for (const item of (parent as { items: unknown[] }).items) {
    if (item && typeof item === "object" && "key" in item) {
      const key = (item as { key: unknown }).key;
      if (isNode(key) && "value" in key && (key as { value: unknown }).value === last) return key;
    }
  }
  return undefined;
}
