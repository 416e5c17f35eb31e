/**
 * Encryption at rest for integration and workflow secrets: AES-256-GCM with a key from the SECRETS_KEY wrangler
 * secret (32 bytes, base64). Each value has its own random IV; the version prefix allows key rotation later.
 */
import { LRUCache } from "lru-cache";
import { decodeBase64, encodeBase64 } from "./base64";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** One deployment has one SECRETS_KEY; the bound only matters to tests that try several. */
const keys = new LRUCache<string, Promise<CryptoKey>>({ max: 16 });

/** The raw bytes of SECRETS_KEY; throws when it is not base64 of 32 bytes. */
export function secretsKeyBytes(secretsKey: string): Uint8Array<ArrayBuffer> {
  const raw = decodeBase64(secretsKey);
  if (raw.length !== 32) throw new Error("SECRETS_KEY must be 32 bytes, base64-encoded");
  return raw;
}

function importKey(secretsKey: string): Promise<CryptoKey> {
  let key = keys.get(secretsKey);
  if (!key) {
    key = crypto.subtle.importKey("raw", secretsKeyBytes(secretsKey), "AES-GCM", false, ["encrypt", "decrypt"]);
    keys.set(secretsKey, key);
  }
  return key;
}

export async function encryptSecret(secretsKey: string, plain: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const cipher = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await importKey(secretsKey), encoder.encode(plain)));
  return `v1:${encodeBase64(iv)}:${encodeBase64(cipher)}`;
}

export async function decryptSecret(secretsKey: string, stored: string): Promise<string> {
  const [version, iv, cipher] = stored.split(":");
  if (version !== "v1" || !iv || !cipher) throw new Error("unknown secret format");
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: decodeBase64(iv) }, await importKey(secretsKey), decodeBase64(cipher));
  return decoder.decode(plain);
}
