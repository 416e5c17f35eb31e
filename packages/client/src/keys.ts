/**
 * The environment an environment key belongs to: keys are `sk_{environmentId}_{secret}` and
 * `pk_{environmentId}_{secret}`, and environment ids themselves contain underscores (`env_…`), so the id is what lies
 * between the prefix and the last underscore. Null for anything else (an organization key, the operator token).
 */
export function environmentIdOfKey(key: string): string | null {
  if (!key.startsWith("sk_") && !key.startsWith("pk_")) return null;
  const lastUnderscore = key.lastIndexOf("_");
  if (lastUnderscore <= 3) return null;
  return key.slice(3, lastUnderscore);
}

type WebCrypto = { randomUUID?: () => string; getRandomValues?: <T extends Uint8Array>(array: T) => T };

/**
 * A fresh Idempotency-Key. crypto.randomUUID exists only in secure contexts (an http:// page other than localhost has
 * none) and Node 18 has no global Web Crypto at all; a key must be unique, not secret, so getRandomValues — or, with
 * no Web Crypto, Math.random — stands in.
 */
export function randomId(webCrypto: WebCrypto | null = typeof crypto === "object" ? crypto : null): string {
  if (typeof webCrypto?.randomUUID === "function") return webCrypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof webCrypto?.getRandomValues === "function") webCrypto.getRandomValues(bytes);
  else for (let index = 0; index < bytes.length; index++) bytes[index] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
