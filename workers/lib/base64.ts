/** Standard base64 (RFC 4648 §4, with padding) for bytes, on the `btoa` / `atob` every runtime here provides. */

/** Bytes per `String.fromCharCode` call: spreading a whole large array would overflow the call stack. */
const CHUNK = 0x8000;

export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

/** Throws on text that is not base64 (as `atob` does). */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}
