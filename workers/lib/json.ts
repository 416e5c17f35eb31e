/** Small JSON helpers shared by the services and workflow stages. */

/** A plain JSON object (not null, not an array). */
export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

const encoder = new TextEncoder();

/** Bytes of `text` in UTF-8: what storage and queue limits count, unlike `text.length`. */
export const utf8ByteLength = (text: string): number => encoder.encode(text).byteLength;

/** Bytes of `value` serialized as JSON, in UTF-8. */
export const jsonByteLength = (value: unknown): number => utf8ByteLength(JSON.stringify(value));

export type PlainJson = null | boolean | number | string | PlainJson[] | { [key: string]: PlainJson };

/** Why a value is not plain, bounded JSON (`toPlainJson`). */
export class NotPlainJsonError extends Error {}

/**
 * A fresh copy of `value` made only of JSON's own kinds — null, booleans, finite numbers, strings, arrays and plain
 * objects — or a NotPlainJsonError saying what is not: a BigInt, a function, a Map or Date or any other class
 * instance, a cycle, a non-finite number, more than `maxNodes` values (shared references count each time they are
 * reached, so a small graph cannot expand into a huge document), nesting deeper than `maxDepth`, or more than
 * `maxBytes` once serialized. What customer code returns goes through here before the platform serializes it.
 */
export function toPlainJson(value: unknown, { maxBytes, maxNodes = 100_000, maxDepth = 64 }: { maxBytes: number; maxNodes?: number; maxDepth?: number }): PlainJson {
  let nodes = 0;
  const ancestors = new Set<object>();
  const copy = (item: unknown, depth: number, path: string): PlainJson => {
    if (++nodes > maxNodes) throw new NotPlainJsonError(`more than ${maxNodes} values`);
    if (item === null || typeof item === "boolean" || typeof item === "string") return item;
    if (typeof item === "number") {
      if (!Number.isFinite(item)) throw new NotPlainJsonError(`${path} is ${item}, which JSON cannot carry`);
      return item;
    }
    if (typeof item !== "object") throw new NotPlainJsonError(`${path} is a ${typeof item}, which JSON cannot carry`);
    if (depth >= maxDepth) throw new NotPlainJsonError(`nested deeper than ${maxDepth} levels`);
    if (ancestors.has(item)) throw new NotPlainJsonError(`${path} refers back to itself (a cycle)`);
    ancestors.add(item);
    try {
      if (Array.isArray(item)) return item.map((element, index) => copy(element, depth + 1, `${path}[${index}]`));
      const prototype = Object.getPrototypeOf(item);
      if (prototype !== Object.prototype && prototype !== null) {
        throw new NotPlainJsonError(`${path} is a ${prototype?.constructor?.name ?? "class"} instance, not a plain object`);
      }
      const out: { [key: string]: PlainJson } = {};
      for (const key of Object.keys(item)) {
        const child = (item as Record<string, unknown>)[key];
        // Like JSON: an undefined property is left out.
        if (child !== undefined) out[key] = copy(child, depth + 1, `${path}.${key}`);
      }
      return out;
    } finally {
      ancestors.delete(item);
    }
  };
  const plain = copy(value === undefined ? null : value, 0, "result");
  const bytes = jsonByteLength(plain);
  if (bytes > maxBytes) throw new NotPlainJsonError(`${bytes} bytes of JSON, more than the ${Math.round(maxBytes / 1024)} KiB allowed`);
  return plain;
}
