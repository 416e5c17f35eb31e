/**
 * A payer of the fake facilitator's network (scheme.mjs), for tests: an Ed25519 key pair whose public key is its
 * address, signing payments the way an agent's wallet would, with Web Crypto (so it runs in workerd).
 */
import { inject } from "vitest";
import type { PaymentPayload, PaymentRequirements } from "../../workers/payments/x402";
import { authorizationMessage, FAKE_ASSET, FAKE_NETWORK, type FakeAuthorization } from "./scheme.mjs";

export { FAKE_ASSET, FAKE_NETWORK };

export interface TestWallet {
  address: string;
  /**
   * A PaymentPayload accepting `requirements`, signed. `authorize` replaces fields of the authorization before it is
   * signed (to pay less, to a different recipient, in an expired window…).
   */
  pay(requirements: PaymentRequirements, authorize?: Partial<FakeAuthorization>): Promise<PaymentPayload>;
}

const hex = (bytes: ArrayBuffer | Uint8Array) => [...new Uint8Array(bytes)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
const base64Url = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

export async function createTestWallet(): Promise<TestWallet> {
  const keys = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const address = `0x${hex((await crypto.subtle.exportKey("raw", keys.publicKey)) as ArrayBuffer)}`;
  return {
    address,
    async pay(requirements, authorize = {}) {
      const issuedAt = Math.floor(Date.now() / 1000);
      const authorization: FakeAuthorization = {
        from: address,
        to: requirements.payTo,
        value: requirements.amount,
        validAfter: String(issuedAt - 5),
        validBefore: String(issuedAt + requirements.maxTimeoutSeconds),
        nonce: `0x${hex(crypto.getRandomValues(new Uint8Array(32)))}`,
        ...authorize,
      };
      const message = new TextEncoder().encode(authorizationMessage(requirements.scheme, requirements.network, requirements.asset, authorization));
      const signature = base64Url(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, message));
      return { x402Version: 2, accepted: { ...requirements, amount: authorization.value }, payload: { authorization, signature } };
    },
  };
}

/** The fake facilitator's base URL (test/fake-facilitator/global-setup.ts). */
export const facilitatorBase = (): string => inject("x402FacilitatorBase");

async function control<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${facilitatorBase()}/__control/${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`fake facilitator /__control/${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

export const fund = (payer: string, amount: string) => control<{ balance: string }>("POST", "fund", { payer, amount });
export const balanceOf = async (payer: string) => (await control<{ balance: string }>("GET", `balance?payer=${payer}`)).balance;

export interface FakeSettlement {
  transaction: string;
  payer: string;
  payTo: string;
  asset: string;
  network: string;
  scheme: string;
  amount: string;
  nonce: string;
}
export const settlementsTo = async (payTo: string) => (await control<{ data: FakeSettlement[] }>("GET", `settlements?payTo=${encodeURIComponent(payTo)}`)).data;
export const requestsFor = async (payTo: string) =>
  (await control<{ data: { path: string; body: any; contentType: string | null }[] }>("GET", `requests?payTo=${encodeURIComponent(payTo)}`)).data;
/** The next request to `path` whose requirements pay `payTo` answers `status` with a non-API body, or stalls `stallMs`. */
export const failNext = (payTo: string, path: "/verify" | "/settle", fault: { status?: number; stallMs?: number } = {}) =>
  control("POST", "fail_next", { payTo, path, ...fault });
