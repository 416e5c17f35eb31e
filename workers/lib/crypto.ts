/** Small crypto helpers on Web Crypto (workerd; all but `timingSafeEqual`, a workerd extension, also run in Node). */

const encoder = new TextEncoder();

const sha256 = (text: string): Promise<ArrayBuffer> => crypto.subtle.digest("SHA-256", encoder.encode(text));

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const byte of view) out += byte.toString(16).padStart(2, "0");
  return out;
}

export async function sha256Hex(text: string): Promise<string> {
  return toHex(await sha256(text));
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A random string over [a-z0-9]; 36^n possibilities, drawn without modulo bias. */
export function randomToken(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const byte of bytes) {
      if (byte < 252 && out.length < length) out += ALPHABET[byte % 36];
    }
  }
  return out;
}

/**
 * Random bytes drawn from Web Crypto a pool at a time, for ids: a profile of the decision path (bench/profile.mjs)
 * showed one `getRandomValues` call per id — two per decision — among its largest entries. Ids are not secrets (keys
 * and tokens keep `randomToken`'s fresh draws), and each byte of the pool is used once.
 */
const pool = new Uint8Array(4096);
let poolOffset = pool.length;
const ALPHABET_CODES = Array.from(ALPHABET, (char) => char.charCodeAt(0));

/** A random id body over [a-z0-9], like randomToken, from the pool. */
export function randomIdChars(length: number): string {
  const codes: number[] = [];
  while (codes.length < length) {
    if (poolOffset >= pool.length) {
      crypto.getRandomValues(pool);
      poolOffset = 0;
    }
    const byte = pool[poolOffset++]!;
    if (byte < 252) codes.push(ALPHABET_CODES[byte % 36]!);
  }
  return String.fromCharCode(...codes);
}

/**
 * Constant-time string comparison, so a token check does not leak how many leading characters matched. workerd's
 * `crypto.subtle.timingSafeEqual` needs inputs of equal length, so it compares the SHA-256 digests: their length is
 * fixed, and neither the inputs' lengths nor their contents show in the time taken.
 */
export async function timingSafeEqual(a: string, b: string): Promise<boolean> {
  const [left, right] = await Promise.all([sha256(a), sha256(b)]);
  return crypto.subtle.timingSafeEqual(left, right);
}
