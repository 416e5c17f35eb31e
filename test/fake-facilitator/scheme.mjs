/**
 * The fake facilitator's payment network, shared by the fake (server.mjs, Node) and the test wallet (wallet.ts,
 * workerd). It stands in for a chain the way the real `exact` and `upto` schemes use one: a payer signs an
 * authorization binding the scheme, network, asset, recipient, amount, validity window and a nonce; the facilitator
 * checks the signature against the payer's address and settles each authorization once.
 *
 * An address is `0x` and the 32-byte Ed25519 public key in hex, so the signature checks out against the address
 * itself, with no key registry, as an EVM address checks out against an ECDSA signature.
 */

/** A CAIP-2 id no real chain uses. */
export const FAKE_NETWORK = "x402test:local";
/** The one token of the fake network, 6 decimals like USDC. */
export const FAKE_ASSET = "test-usd";

/** What a payer signs: every field the authorization binds, in a fixed order, so nothing can be moved between them. */
export function authorizationMessage(scheme, network, asset, authorization) {
  const { from, to, value, validAfter, validBefore, nonce } = authorization;
  return JSON.stringify(["x402-fake-facilitator/1", scheme, network, asset, from, to, value, validAfter, validBefore, nonce]);
}
