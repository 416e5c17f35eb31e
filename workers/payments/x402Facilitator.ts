/**
 * The x402 facilitator: the service that checks a client's signed payment (`verify`) and executes it on its network
 * (`settle`), so the platform holds no chain keys and runs no node. `Facilitator` is what the payments gateway needs;
 * `createHttpFacilitator` speaks the facilitator HTTP API of x402 version 2 (POST /verify and POST /settle, each with
 * `{ x402Version, paymentPayload, paymentRequirements }`).
 *
 * Every outcome is a value. A facilitator that cannot be reached, times out or answers nonsense gives a refusal whose
 * reason is one of FACILITATOR_FAILURES, so a caller tells "the payment is bad" (answer 402) from "we could not tell"
 * (answer 503, keep nothing). A settle that timed out may still have moved funds: settle is never retried here.
 */
import { isLoopback, isPublicDnsName } from "../lib/hosts";
import { z } from "zod";
import { BodyTooLargeError, readBoundedText } from "../lib/boundedBody";
import { type PaymentPayload, type PaymentRequirements, settlementRequirements, X402_VERSION } from "./x402";

export interface VerifyResult {
  isValid: boolean;
  invalidReason?: string;
  payer?: string;
}

export interface SettleResult {
  success: boolean;
  /** The transaction that moved the funds; absent or empty when none did. */
  transaction?: string;
  network: string;
  payer?: string;
  errorReason?: string;
}

export interface Facilitator {
  /** Whether `payment` would settle `requirements` (the server's own offer it matched, x402.ts matchPaymentRequirements). */
  verify(payment: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResult>;
  /**
   * Moves the funds. `amount`: for `upto`, the actual charge (0 to the offer's amount; the offer's amount if absent);
   * for `exact`, absent or the price.
   */
  settle(payment: PaymentPayload, requirements: PaymentRequirements, amount?: string): Promise<SettleResult>;
}

/** Reasons of the adapter's own, never a facilitator's: the payment's validity is unknown. */
export const FACILITATOR_FAILURES = {
  /** Not reachable: refused connection, DNS, TLS, a redirect. */
  unavailable: "facilitator_unavailable",
  /** No answer within the timeout. For settle: funds may have moved. */
  timeout: "facilitator_timeout",
  /** A 5xx, or an answer that is not the facilitator API's JSON. */
  badResponse: "facilitator_bad_response",
} as const;
export type FacilitatorFailure = (typeof FACILITATOR_FAILURES)[keyof typeof FACILITATOR_FAILURES];

const FAILURE_REASONS: ReadonlySet<string> = new Set(Object.values(FACILITATOR_FAILURES));
/** Whether a verify or settle refusal says nothing about the payment, only that the facilitator could not be used. */
export const isFacilitatorFailure = (reason: string | undefined): reason is FacilitatorFailure => reason !== undefined && FAILURE_REASONS.has(reason);

/** A settle the adapter refused before calling anyone: the charge does not fit the requirements. */
export const INVALID_SETTLEMENT_AMOUNT = "invalid_settlement_amount";

export interface HttpFacilitatorOptions {
  /** E.g. `https://facilitator.example/x402`; /verify and /settle are under it. */
  baseUrl: string;
  /** Per request. Settling waits for a transaction, so it gets longer than a verify needs. */
  timeoutMs?: number;
  /** Plain http to 127.0.0.1, [::1] or localhost (a local facilitator, the tests' fake). Https only otherwise. */
  allowInsecureLoopback?: boolean;
  /** Headers every request carries, e.g. a facilitator API key's `authorization`. */
  headers?: Record<string, string>;
  /** How the facilitator is reached (a service binding, a test double); default: fetch. */
  fetch?: (request: Request) => Promise<Response>;
}

const DEFAULT_TIMEOUT_MS = 15_000;
/** A verify or settle answer is a few hundred bytes. */
const MAX_RESPONSE_BYTES = 16 * 1024;

const VerifyResponseSchema = z.object({
  isValid: z.boolean(),
  invalidReason: z.string().max(256).optional(),
  payer: z.string().max(256).optional(),
});

const SettleResponseSchema = z.object({
  success: z.boolean(),
  errorReason: z.string().max(256).optional(),
  payer: z.string().max(256).optional(),
  transaction: z.string().max(256).optional(),
  network: z.string().max(64),
});

export type FacilitatorUrlResult = { ok: true; url: URL } | { ok: false; message: string };

/** The facilitator's base URL, if it is one the platform may call (https; plain http to loopback only where allowed). */
export function parseFacilitatorUrl(baseUrl: string, options: { allowInsecureLoopback?: boolean } = {}): FacilitatorUrlResult {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return { ok: false, message: `${JSON.stringify(baseUrl)} is not a URL` };
  }
  if (url.username !== "" || url.password !== "") return { ok: false, message: "the facilitator URL must not carry credentials" };
  if (url.search !== "" || url.hash !== "") return { ok: false, message: "the facilitator URL must not have a query or fragment" };
  const loopback = isLoopback(url.hostname);
  const allowedLoopback = loopback && options.allowInsecureLoopback === true;
  if (url.protocol === "https:" && !isPublicDnsName(url.hostname) && !allowedLoopback) {
    return { ok: false, message: "the facilitator must be a public DNS name (not an IP address or an internal name)" };
  }
  if (url.protocol === "https:" || (url.protocol === "http:" && allowedLoopback)) {
    if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`;
    return { ok: true, url };
  }
  return { ok: false, message: "the facilitator URL must use https (plain http only to a loopback address, where allowed)" };
}

export type HttpFacilitatorResult = { ok: true; facilitator: Facilitator } | { ok: false; message: string };

export function createHttpFacilitator(options: HttpFacilitatorOptions): HttpFacilitatorResult {
  const base = parseFacilitatorUrl(options.baseUrl, options);
  if (!base.ok) return base;
  const baseUrl = base.url;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  /** The parsed 2xx/4xx answer of `operation`, or the adapter's failure reason. */
  async function call<T>(operation: "verify" | "settle", payment: PaymentPayload, requirements: PaymentRequirements, schema: z.ZodType<T>) {
    let response: Response;
    try {
      const send = options.fetch ?? ((request: Request) => fetch(request));
      response = await send(new Request(new URL(operation, baseUrl), {
        method: "POST",
        headers: { ...options.headers, "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ x402Version: X402_VERSION, paymentPayload: payment, paymentRequirements: requirements }),
        // A redirect could lead to plain http or another host: the configured URL is the facilitator.
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      }));
    } catch (error) {
      return { ok: false as const, reason: isTimeout(error) ? FACILITATOR_FAILURES.timeout : FACILITATOR_FAILURES.unavailable };
    }
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel().catch(() => {});
      return { ok: false as const, reason: FACILITATOR_FAILURES.unavailable };
    }
    let text: string;
    try {
      text = await readBoundedText(response.body, MAX_RESPONSE_BYTES, response.headers.get("content-length"));
    } catch (error) {
      if (isTimeout(error)) return { ok: false as const, reason: FACILITATOR_FAILURES.timeout };
      return { ok: false as const, reason: error instanceof BodyTooLargeError ? FACILITATOR_FAILURES.badResponse : FACILITATOR_FAILURES.unavailable };
    }
    // Facilitators answer a refused payment with 200 or 400 and the same body; a 5xx tells nothing about the payment.
    if (response.status >= 500) return { ok: false as const, reason: FACILITATOR_FAILURES.badResponse };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false as const, reason: FACILITATOR_FAILURES.badResponse };
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) return { ok: false as const, reason: FACILITATOR_FAILURES.badResponse };
    return { ok: true as const, status: response.status, value: parsed.data };
  }

  return {
    ok: true,
    facilitator: {
      async verify(payment, requirements) {
        const answer = await call("verify", payment, requirements, VerifyResponseSchema);
        if (!answer.ok) return { isValid: false, invalidReason: answer.reason };
        const { isValid, invalidReason, payer } = answer.value;
        // Only a 2xx may say yes; a "valid" 4xx is a contradiction, not a payment.
        if (isValid && answer.status >= 300) return { isValid: false, invalidReason: FACILITATOR_FAILURES.badResponse };
        return { isValid, ...(isValid ? {} : { invalidReason: facilitatorsOwn(invalidReason, "invalid_payment") }), ...(payer === undefined ? {} : { payer }) };
      },
      async settle(payment, requirements, amount) {
        const charged = settlementRequirements(requirements, amount);
        if (!charged.ok) return { success: false, network: requirements.network, errorReason: INVALID_SETTLEMENT_AMOUNT };
        const answer = await call("settle", payment, charged.value, SettleResponseSchema);
        if (!answer.ok) return { success: false, network: requirements.network, errorReason: answer.reason };
        const { success, errorReason, payer, transaction, network } = answer.value;
        // A success is believed only as a settlement of THIS payment: from a 2xx, on the requirements' network, with the
        // transaction that moved the funds. Anything else may have moved funds or not — the adapter cannot tell.
        if (success && (answer.status >= 300 || network !== requirements.network || !transaction)) {
          return { success: false, network: requirements.network, errorReason: FACILITATOR_FAILURES.badResponse };
        }
        return {
          success,
          network,
          ...(transaction === undefined || transaction === "" ? {} : { transaction }),
          ...(payer === undefined ? {} : { payer }),
          ...(success ? {} : { errorReason: facilitatorsOwn(errorReason, "settlement_failed") }),
        };
      },
    },
  };
}

/**
 * A facilitator's own refusal reason, kept apart from the adapter's: a facilitator answering `facilitator_unavailable`
 * must not read as "could not check" (a 503 to retry) when it said the payment is bad (a 402).
 */
function facilitatorsOwn(reason: string | undefined, fallback: string): string {
  if (reason === undefined) return fallback;
  return isFacilitatorFailure(reason) ? `facilitator:${reason}` : reason;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
}
