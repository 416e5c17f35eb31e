/**
 * Encryption at rest for integration and workflow secrets: AES-256-GCM with a key from the SECRETS_KEY wrangler
 * secret (32 bytes, base64). Each value has its own random IV; the version prefix allows key rotation later.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keys = new Map<string, Promise<CryptoKey>>();

function importKey(secretsKey: string): Promise<CryptoKey> {
  let key = keys.get(secretsKey);
  if (!key) {
    const raw = Uint8Array.from(atob(secretsKey), (char) => char.charCodeAt(0));
    if (raw.length !== 32) throw new Error("SECRETS_KEY must be 32 bytes, base64-encoded");
    key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    keys.set(secretsKey, key);
  }
  return key;
}

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (char) => char.charCodeAt(0));

export async function encryptSecret(secretsKey: string, plain: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const cipher = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await importKey(secretsKey), encoder.encode(plain)));
  return `v1:${toBase64(iv)}:${toBase64(cipher)}`;
}

export async function decryptSecret(secretsKey: string, stored: string): Promise<string> {
  const [version, iv, cipher] = stored.split(":");
  if (version !== "v1" || !iv || !cipher) throw new Error("unknown secret format");
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(iv) }, await importKey(secretsKey), fromBase64(cipher));
  return decoder.decode(plain);
}
