/** Small JSON helpers shared by the services and workflow stages. */

/** A plain JSON object (not null, not an array). */
export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

const encoder = new TextEncoder();

/** Bytes of `text` in UTF-8: what storage and queue limits count, unlike `text.length`. */
export const utf8ByteLength = (text: string): number => encoder.encode(text).byteLength;

/** Bytes of `value` serialized as JSON, in UTF-8. */
export const jsonByteLength = (value: unknown): number => utf8ByteLength(JSON.stringify(value));
