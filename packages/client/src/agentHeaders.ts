/**
 * What an agent sends that the platform reads, as an integration forwards it in a decision's `http`: its Web Bot Auth
 * signature (`Signature`, `Signature-Input`, `Signature-Agent` and every header the signature covers), the price it
 * agrees to pay per crawl (`Crawler-Exact-Price` / `Crawler-Max-Price`) and an x402 payment (`Payment-Signature`).
 * Nothing else of the request's headers leaves the integration.
 */

/** The platform's bounds on `http.headers`: past them it would refuse the decision, so what does not fit is left out. */
export const AGENT_HEADER_LIMITS = { entries: 32, nameLength: 100, valueLength: 8192 } as const;

/** The platform's bound on a decision's body, in bytes: a larger one is refused unread (413). */
export const MAX_DECISION_BODY_BYTES = 64 * 1024;

const SIGNATURE_HEADERS = ["signature", "signature-input", "signature-agent"] as const;
const PRICE_AND_PAYMENT_HEADERS = ["crawler-exact-price", "crawler-max-price", "payment-signature"] as const;
/**
 * The visitor's credentials never leave for the platform, even when a signature covers them: such a signature is not
 * forwarded (the request is decided unsigned).
 */
const NEVER_FORWARDED = new Set(["cookie", "authorization", "proxy-authorization"]);
/** An HTTP field name (RFC 9110 token), lower-case: anything else cannot be a header of the request. */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * The request's headers the platform reads, by lower-case name, or undefined when it sent none. A signature is
 * forwarded whole or not at all: when one of its headers (or a header it covers) is over the platform's bounds, none
 * of them is, and the request is simply unsigned — a part of a signature verifies nothing. The price and payment
 * headers each go when they fit.
 */
export function agentHeadersOf(headers: Headers): Record<string, string> | undefined {
  const forwarded: Record<string, string> = { ...signatureOf(headers) };
  for (const name of PRICE_AND_PAYMENT_HEADERS) {
    const value = headers.get(name);
    if (value === null || name in forwarded) continue;
    if (value.length > AGENT_HEADER_LIMITS.valueLength || Object.keys(forwarded).length >= AGENT_HEADER_LIMITS.entries) continue;
    forwarded[name] = value;
  }
  return Object.keys(forwarded).length > 0 ? forwarded : undefined;
}

/** The signature's headers and the headers it covers that the request has, or nothing when they cannot all go. */
function signatureOf(headers: Headers): Record<string, string> {
  const signatureInput = headers.get("signature-input");
  const names = new Set<string>(SIGNATURE_HEADERS);
  if (signatureInput !== null) for (const name of coveredHeaderNames(signatureInput)) names.add(name);
  const signature: Record<string, string> = {};
  for (const name of names) {
    if (NEVER_FORWARDED.has(name) || name.length > AGENT_HEADER_LIMITS.nameLength) return {};
    // A covered name that is no field name cannot be one of the request's headers (Headers.get would throw on it).
    const value = FIELD_NAME.test(name) ? headers.get(name) : null;
    if (value === null) continue;
    if (value.length > AGENT_HEADER_LIMITS.valueLength) return {};
    signature[name] = value;
  }
  return Object.keys(signature).length > AGENT_HEADER_LIMITS.entries ? {} : signature;
}

// Signature-Input is a structured-field dictionary (RFC 8941) of inner lists: `sig1=("@authority" "signature-agent"
// "crawler-max-price");created=…;keyid="…"`. A quoted string is consumed whole wherever it stands, so a `(` or `)` in a
// parameter's value never opens or closes a list.
const QUOTED = String.raw`"(?:[^"\\]|\\.)*"`;
const INNER_LISTS = new RegExp(String.raw`${QUOTED}|\(((?:[^)"]|${QUOTED})*)\)`, "g");
// In a list, an item's parameters (`;key="value"`) are consumed whole too: only the items' own strings are captured.
const LIST_ITEMS = new RegExp(String.raw`;\s*[^=;\s"]+(?:=(?:${QUOTED}|[^;\s"]*))?|"((?:[^"\\]|\\.)*)"`, "g");

/** The lower-case header names the signatures of a Signature-Input cover (derived components, `@…`, are not headers). */
function coveredHeaderNames(signatureInput: string): string[] {
  const names = new Set<string>();
  for (const [, list] of signatureInput.matchAll(INNER_LISTS)) {
    if (list === undefined) continue;
    for (const [, item] of list.matchAll(LIST_ITEMS)) {
      if (item === undefined) continue;
      const name = item.replace(/\\(.)/g, "$1").toLowerCase();
      if (name !== "" && !name.startsWith("@")) names.add(name);
    }
  }
  return [...names];
}

/**
 * The request's method as a decision carries it (a signature may cover `@method`, so as sent: methods are
 * case-sensitive), or undefined for one longer than the platform accepts (16).
 */
export function requestMethodOf(method: string): string | undefined {
  return method.length > 0 && method.length <= 16 ? method : undefined;
}

const encoder = new TextEncoder();

/**
 * `body` with `agentHeaders` in its `http`, when the body stays within MAX_DECISION_BODY_BYTES; else `body` as it was.
 * Added last, so the agent's headers never crowd out what the decision needs (identity, resource, the page's meta):
 * a request too large to carry them is decided unsigned, never refused.
 */
export function withAgentHeaders<Body extends { http?: object | undefined }>(body: Body, agentHeaders: Record<string, string> | undefined): Body {
  if (!agentHeaders) return body;
  const withHeaders = { ...body, http: { ...body.http, headers: agentHeaders } };
  return encoder.encode(JSON.stringify(withHeaders)).byteLength <= MAX_DECISION_BODY_BYTES ? withHeaders : body;
}
