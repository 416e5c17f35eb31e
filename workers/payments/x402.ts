/**
 * x402 version 2: the messages an HTTP 402 exchange carries when a client (often an agent) pays per request with a
 * stablecoin, and their header codec. Pure: no I/O, no clock. The facilitator that verifies and settles payments is
 * x402Facilitator.ts.
 *
 * The exchange: the server answers 402 with `PAYMENT-REQUIRED` (a PaymentRequired: what it accepts), the client
 * retries with `PAYMENT-SIGNATURE` (a PaymentPayload: the offer it chose, echoed as `accepted`, and its signed,
 * scheme-specific authorization), and the server answers with `PAYMENT-RESPONSE` (the SettlementResponse). Each header
 * is base64 of a UTF-8 JSON object.
 *
 * Every decoder returns a value, never throws: a header is whatever a client sent. Decoded JSON is bounded
 * (MAX_X402_HEADER_BYTES) before it is parsed.
 */
import { z } from "zod";
import { decodeBase64, encodeBase64 } from "../lib/base64";

export const X402_VERSION = 2;

export const PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED";
export const PAYMENT_SIGNATURE_HEADER = "PAYMENT-SIGNATURE";
export const PAYMENT_RESPONSE_HEADER = "PAYMENT-RESPONSE";

/**
 * The largest decoded header accepted or produced. A PaymentRequired with a few offers or a signed payload is well
 * under 4 KiB; proxies commonly refuse header sections larger than 8–16 KiB anyway.
 */
export const MAX_X402_HEADER_BYTES = 16 * 1024;
/** Base64 characters that can hold MAX_X402_HEADER_BYTES (4 per 3 bytes, padded). */
const MAX_ENCODED_LENGTH = Math.ceil(MAX_X402_HEADER_BYTES / 3) * 4;

/** The schemes the platform takes: a fixed price (`exact`), or a cap it settles below once usage is known (`upto`). */
export const X402_SCHEMES = ["exact", "upto"] as const;
export type X402Scheme = (typeof X402_SCHEMES)[number];

/** A token amount in its smallest unit, as a decimal string (at most 78 digits: any uint256). */
const atomicAmount = z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "an amount is a non-negative integer in atomic units, as a decimal string");
/** A CAIP-2 chain id, `namespace:reference` (e.g. `eip155:8453`). */
const caip2Network = z.string().regex(/^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/, "a network is a CAIP-2 chain id such as eip155:8453");
/** A contract address, account, or ISO 4217 code: opaque here, bounded. */
const identifier = z.string().min(1).max(256);
/** Scheme- or extension-specific data, passed on untouched. */
const openObject = z.record(z.string(), z.unknown());

export const ResourceInfoSchema = z.object({
  url: z.string().min(1).max(2048),
  description: z.string().max(1024).optional(),
  mimeType: z.string().max(256).optional(),
});
export type ResourceInfo = z.infer<typeof ResourceInfoSchema>;

export const PaymentRequirementsSchema = z.object({
  scheme: z.enum(X402_SCHEMES),
  network: caip2Network,
  /** exact: the price. upto: the most the payment may settle for. */
  amount: atomicAmount,
  asset: identifier,
  payTo: identifier,
  maxTimeoutSeconds: z.number().int().positive().max(86_400),
  extra: openObject.optional(),
});
export type PaymentRequirements = z.infer<typeof PaymentRequirementsSchema>;

export const PaymentRequiredSchema = z.object({
  x402Version: z.literal(X402_VERSION),
  error: z.string().max(1024).optional(),
  resource: ResourceInfoSchema,
  accepts: z.array(PaymentRequirementsSchema).min(1).max(16),
  extensions: openObject.optional(),
});
export type PaymentRequired = z.infer<typeof PaymentRequiredSchema>;

export const PaymentPayloadSchema = z.object({
  x402Version: z.literal(X402_VERSION),
  resource: ResourceInfoSchema.optional(),
  /** The offer of the PaymentRequired the client chose, as it read it. */
  accepted: PaymentRequirementsSchema,
  /** The scheme- and network-specific signed authorization: only the facilitator reads it. */
  payload: openObject,
  extensions: openObject.optional(),
});
export type PaymentPayload = z.infer<typeof PaymentPayloadSchema>;

export const SettlementResponseSchema = z.object({
  success: z.boolean(),
  errorReason: z.string().max(256).optional(),
  payer: z.string().max(256).optional(),
  /** The transaction hash; empty or absent when nothing settled. */
  transaction: z.string().max(256).optional(),
  network: caip2Network,
});
export type SettlementResponse = z.infer<typeof SettlementResponseSchema>;

export type X402DecodeErrorCode =
  /** No header, or an empty one. */
  | "missing"
  /** Longer than MAX_X402_HEADER_BYTES once decoded. */
  | "too_large"
  | "not_base64"
  /** Not UTF-8 JSON. */
  | "not_json"
  /** An x402Version other than 2 (e.g. a version 1 client). */
  | "unsupported_version"
  /** JSON of the wrong shape: a missing or malformed field. */
  | "invalid";

export type X402Result<T> = { ok: true; value: T } | { ok: false; error: { code: X402DecodeErrorCode; message: string } };

const failure = (code: X402DecodeErrorCode, message: string): { ok: false; error: { code: X402DecodeErrorCode; message: string } } => ({
  ok: false,
  error: { code, message },
});

/** Base64, standard or URL-safe alphabet, padding optional: what clients send in practice. */
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const utf8Encoder = new TextEncoder();

function decodeHeader<T>(header: string | null | undefined, schema: z.ZodType<T>, versioned: boolean): X402Result<T> {
  const text = header?.trim() ?? "";
  if (text === "") return failure("missing", "the header is missing or empty");
  if (text.length > MAX_ENCODED_LENGTH) return failure("too_large", `the header is larger than ${MAX_X402_HEADER_BYTES} bytes decoded`);
  if (!BASE64_TEXT.test(text) || text.replace(/=+$/, "").length % 4 === 1) return failure("not_base64", "the header is not base64");
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(text.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return failure("not_base64", "the header is not base64");
  }
  if (bytes.byteLength > MAX_X402_HEADER_BYTES) return failure("too_large", `the header is larger than ${MAX_X402_HEADER_BYTES} bytes decoded`);
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch {
    return failure("not_json", "the header is not base64 of UTF-8 JSON");
  }
  if (versioned && typeof json === "object" && json !== null && !Array.isArray(json)) {
    const version = (json as { x402Version?: unknown }).x402Version;
    if (version !== undefined && version !== X402_VERSION) {
      return failure("unsupported_version", `x402Version ${JSON.stringify(version)} is not supported: this server speaks version ${X402_VERSION}`);
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return failure("invalid", describeIssues(parsed.error));
  return { ok: true, value: parsed.data };
}

function encodeHeader<T>(value: T, schema: z.ZodType<T>): X402Result<string> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) return failure("invalid", describeIssues(parsed.error));
  const bytes = utf8Encoder.encode(JSON.stringify(parsed.data));
  if (bytes.byteLength > MAX_X402_HEADER_BYTES) return failure("too_large", `the header would be larger than ${MAX_X402_HEADER_BYTES} bytes decoded`);
  return { ok: true, value: encodeBase64(bytes) };
}

/** The first few problems, each with where it is (`accepts[0].amount: …`). */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const where = issue.path.map((segment) => (typeof segment === "number" ? `[${segment}]` : `.${String(segment)}`)).join("").replace(/^\./, "");
      return where === "" ? issue.message : `${where}: ${issue.message}`;
    })
    .join("; ");
}

/** The `PAYMENT-REQUIRED` header of a 402. */
export const encodePaymentRequired = (value: PaymentRequired): X402Result<string> => encodeHeader(value, PaymentRequiredSchema);
export const decodePaymentRequired = (header: string | null | undefined): X402Result<PaymentRequired> =>
  decodeHeader(header, PaymentRequiredSchema, true);

/** The client's `PAYMENT-SIGNATURE` header. */
export const encodePaymentSignature = (value: PaymentPayload): X402Result<string> => encodeHeader(value, PaymentPayloadSchema);
export const decodePaymentSignature = (header: string | null | undefined): X402Result<PaymentPayload> =>
  decodeHeader(header, PaymentPayloadSchema, true);

/** The `PAYMENT-RESPONSE` header: how settlement went. */
export const encodePaymentResponse = (value: SettlementResponse): X402Result<string> => encodeHeader(value, SettlementResponseSchema);
export const decodePaymentResponse = (header: string | null | undefined): X402Result<SettlementResponse> =>
  decodeHeader(header, SettlementResponseSchema, false);

export type RequirementMismatch =
  /** No offer has the payload's scheme, network, asset and recipient. */
  | "no_matching_offer"
  /** exact: the payload's amount is not the price. */
  | "amount_mismatch"
  /** upto: the payload authorizes less than the most the request may cost. */
  | "authorization_too_small";

export type RequirementMatch =
  | {
      ok: true;
      /** The server's own offer (never the client's copy of it): what verification and settlement are held to. */
      requirements: PaymentRequirements;
    }
  | { ok: false; reason: RequirementMismatch; message: string };

/**
 * The offer a payment answers, or why it answers none. Same scheme, network, asset and recipient; then the amount:
 * `exact` pays the price exactly, `upto` authorizes at least the offer's amount (the most the request may cost — the
 * actual charge, up to that, is settled after the response). This checks what the client says it accepted; that its
 * signed authorization says the same is the facilitator's check.
 */
export function matchPaymentRequirements(payment: PaymentPayload, offers: readonly PaymentRequirements[]): RequirementMatch {
  const chosen = payment.accepted;
  const sameOffer = offers.filter(
    (offer) =>
      offer.scheme === chosen.scheme &&
      offer.network === chosen.network &&
      sameAddress(offer.network, offer.asset, chosen.asset) &&
      sameAddress(offer.network, offer.payTo, chosen.payTo),
  );
  if (sameOffer.length === 0) {
    return { ok: false, reason: "no_matching_offer", message: `no offer for scheme ${chosen.scheme} of ${chosen.asset} on ${chosen.network} to ${chosen.payTo}` };
  }
  const paid = BigInt(chosen.amount);
  for (const offer of sameOffer) {
    const price = BigInt(offer.amount);
    if (offer.scheme === "exact" ? paid === price : paid >= price) return { ok: true, requirements: offer };
  }
  return chosen.scheme === "exact"
    ? { ok: false, reason: "amount_mismatch", message: `the payment is for ${chosen.amount}, the price is ${sameOffer.map((offer) => offer.amount).join(" or ")}` }
    : { ok: false, reason: "authorization_too_small", message: `the payment authorizes up to ${chosen.amount}, the request may cost up to ${sameOffer[0]!.amount}` };
}

/**
 * The requirements to settle a matched payment with: `exact` settles the price (an `amount`, if given, must be it);
 * `upto` settles the actual charge, from 0 to the offer's amount (the most the server said the request may cost, even
 * where the client authorized more), which replaces the offer's amount — that is how a facilitator's /settle is told
 * what to transfer.
 */
export function settlementRequirements(requirements: PaymentRequirements, amount?: string): X402Result<PaymentRequirements> {
  if (amount === undefined) return { ok: true, value: requirements };
  if (!atomicAmount.safeParse(amount).success) return failure("invalid", `amount ${JSON.stringify(amount)} is not an amount in atomic units`);
  const charge = BigInt(amount);
  if (requirements.scheme === "exact") {
    return charge === BigInt(requirements.amount) ? { ok: true, value: requirements } : failure("invalid", `an exact payment settles its price, ${requirements.amount}, not ${amount}`);
  }
  if (charge > BigInt(requirements.amount)) return failure("invalid", `the charge ${amount} is more than the ${requirements.amount} offered at most`);
  return { ok: true, value: { ...requirements, amount } };
}

/** EVM addresses are hex, checksummed by letter case (EIP-55): the same address may arrive in either case. */
function sameAddress(network: string, a: string, b: string): boolean {
  return network.startsWith("eip155:") ? a.toLowerCase() === b.toLowerCase() : a === b;
}
