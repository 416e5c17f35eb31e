/**
 * Content items as HTML. Items come from workflows, which the platform does not validate: anything that is not a
 * well-formed item renders nothing instead of throwing, so one odd item never costs the visitor the page.
 */

const TEXT_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };
const ATTRIBUTE_ESCAPES: Record<string, string> = { ...TEXT_ESCAPES, '"': "&quot;", "'": "&#39;" };

export const escapeText = (text: string) => text.replace(/[&<>]/g, (character) => TEXT_ESCAPES[character]!);
export const escapeAttribute = (value: string) => value.replace(/[&<>"']/g, (character) => ATTRIBUTE_ESCAPES[character]!);

/** What a valid custom element name looks like (lowercase, starts with a letter, contains a hyphen). */
const CUSTOM_ELEMENT_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)+$/;

/**
 * The custom element an element item becomes: `"source:name@version"` → `source-name` with version `version`; a
 * schema without `:` is one of the platform's own (`"offer"` → `mos-offer`, version ""). Null when the name would not
 * be a valid custom element name: a browser would not upgrade it, and it must not smuggle in another tag.
 */
export function customElementOf(schema: string): { tag: string; version: string } | null {
  const colon = schema.indexOf(":");
  let tag: string;
  let version = "";
  if (colon === -1) tag = `mos-${schema}`;
  else {
    const nameAndVersion = schema.slice(colon + 1);
    const at = nameAndVersion.lastIndexOf("@");
    const name = at === -1 ? nameAndVersion : nameAndVersion.slice(0, at);
    version = at === -1 ? "" : nameAndVersion.slice(at + 1);
    tag = `${schema.slice(0, colon)}-${name}`;
  }
  return CUSTOM_ELEMENT_NAME.test(tag) ? { tag, version } : null;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** One item as HTML: `html` as given, `text` escaped, `element` as its custom element; anything else "". */
export function renderItem(item: unknown): string {
  if (!isRecord(item)) return "";
  switch (item.type) {
    case "html":
      return typeof item.content === "string" ? item.content : "";
    case "text":
      return typeof item.content === "string" ? escapeText(item.content) : "";
    case "element": {
      if (typeof item.schema !== "string") return "";
      const element = customElementOf(item.schema);
      if (!element) return "";
      const props = JSON.stringify(item.props ?? {});
      return `<${element.tag} version="${escapeAttribute(element.version)}" props="${escapeAttribute(props)}"></${element.tag}>`;
    }
    default:
      return "";
  }
}

/** A list of items as HTML, in list order; a value that is not a list renders nothing. */
export function renderItems(items: unknown): string {
  return Array.isArray(items) ? items.map(renderItem).join("") : "";
}
