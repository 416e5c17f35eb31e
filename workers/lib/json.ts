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
 * instance, a cycle, a non-finite number, more than `maxNodes` values (array slots and shared references count each
 * time, so a sparse array or a small graph cannot expand into a huge walk), nesting deeper than `maxDepth`, or more
 * than `maxBytes` once serialized (strings are counted as they are met, so an oversized one is refused before any
 * copy is serialized). Like JSON, an undefined property is left out and an undefined or empty array slot is null.
 * What customer code returns goes through here before the platform serializes it.
 */
export function toPlainJson(value: unknown, { maxBytes, maxNodes = 100_000, maxDepth = 64 }: { maxBytes: number; maxNodes?: number; maxDepth?: number }): PlainJson {
  let nodes = 0;
  /** A lower bound of the serialized size (one byte per UTF-16 unit of every string and key). */
  let characters = 0;
  const ancestors = new Set<object>();
  /** Where the walk is, formatted only when something is refused. */
  const path: (string | number)[] = [];
  const refuse = (reason: string): never => {
    const where = path.map((segment) => (typeof segment === "number" ? `[${segment}]` : `.${segment.length > 40 ? `${segment.slice(0, 40)}…` : segment}`)).join("");
    throw new NotPlainJsonError(`result${where} ${reason}`);
  };
  const countText = (text: string) => {
    characters += text.length + 2;
    if (characters > maxBytes) throw new NotPlainJsonError(`result is more than the ${Math.round(maxBytes / 1024)} KiB of JSON allowed`);
  };
  const copy = (item: unknown, depth: number): PlainJson => {
    if (++nodes > maxNodes) throw new NotPlainJsonError(`result has more than ${maxNodes} values`);
    if (item === null || item === undefined || typeof item === "boolean") return item ?? null;
    if (typeof item === "string") {
      countText(item);
      return item;
    }
    if (typeof item === "number") return Number.isFinite(item) ? item : refuse(`is ${item}, which JSON cannot carry`);
    if (typeof item !== "object") return refuse(`is a ${typeof item}, which JSON cannot carry`);
    if (depth >= maxDepth) return refuse(`is nested deeper than ${maxDepth} levels`);
    if (ancestors.has(item)) return refuse("refers back to itself (a cycle)");
    ancestors.add(item);
    try {
      if (Array.isArray(item)) {
        if (item.length > maxNodes - nodes) throw new NotPlainJsonError(`result has more than ${maxNodes} values`);
        const out: PlainJson[] = new Array(item.length);
        for (let index = 0; index < item.length; index++) {
          path.push(index);
          out[index] = copy(item[index], depth + 1);
          path.pop();
        }
        return out;
      }
      const prototype = Object.getPrototypeOf(item);
      if (prototype !== Object.prototype && prototype !== null) return refuse(`is a ${prototype?.constructor?.name ?? "class"} instance, not a plain object`);
      const out: { [key: string]: PlainJson } = {};
      for (const key of Object.keys(item)) {
        const child = (item as Record<string, unknown>)[key];
        if (child === undefined) continue;
        countText(key);
        path.push(key);
        // defineProperty, not assignment: a "__proto__" key stays an own property instead of replacing the prototype.
        Object.defineProperty(out, key, { value: copy(child, depth + 1), enumerable: true, writable: true, configurable: true });
        path.pop();
      }
      return out;
    } finally {
      ancestors.delete(item);
    }
  };
  const plain = copy(value, 0);
  const bytes = jsonByteLength(plain);
  if (bytes > maxBytes) throw new NotPlainJsonError(`result is ${bytes} bytes of JSON, more than the ${Math.round(maxBytes / 1024)} KiB allowed`);
  return plain;
}
