/**
 * Pay-per-crawl, the negotiation: a priced resource answers an unpaying crawler `402` with `crawler-price: USD 0.01`;
 * the crawler retries signed (Web Bot Auth) with `crawler-exact-price` (that price exactly) or `crawler-max-price`
 * (at most that), covered by its signature so nobody on the way can raise it; a retry within the price is granted
 * and charged (`crawler-charged`). Every refusal names its reason in `crawler-error`, with the status the
 * protocol gives it. Pure: the caller says what the signature verdict was and what the resource costs; charging and
 * the ledger are the meter's.
 *
 * Amounts are kept in micro-units of the currency (1 USD = 1,000,000): prices of a fraction of a cent are common
 * here, and no float ever holds money.
 */

export type CrawlerErrorCode =
  | "CrawlerForbidden"
  | "StrongAuthRequired"
  | "InvalidSignature"
  | "InvalidCrawlerPriceValue"
  | "MissingCrawlerPrice"
  | "InvalidCrawlerExactPrice"
  | "InvalidCrawlerMaxPrice"
  | "ConflictingPriceHeaders"
  | "InvalidContentPrice";

/** An amount of money: an ISO 4217 code (upper case) and micro-units. */
export interface CrawlerPrice {
  currency: string;
  micros: number;
}

export interface CrawlerRequest {
  /** What the resource costs this crawler, or null when crawlers of its kind are refused outright. */
  price: CrawlerPrice | null;
  /** The request's `crawler-exact-price` and `crawler-max-price` headers as sent (undefined when absent). */
  exactPrice?: string | undefined;
  maxPrice?: string | undefined;
  /** The Web Bot Auth verdict of the request: absent, invalid, or verified with the components it covers. */
  signature: { status: "absent" } | { status: "invalid" } | { status: "verified"; covered: readonly string[] };
}

export type CrawlerOutcome =
  | { kind: "charge"; status: 200; charged: CrawlerPrice; headers: Record<string, string> }
  | { kind: "refuse"; status: 400 | 402 | 403 | 502; code: CrawlerErrorCode | null; headers: Record<string, string> };

const MICROS = 1_000_000;
/** The largest price the headers can state (nine integer digits): anything above is the site's configuration error. */
const MAX_PRICE_MICROS = 999_999_999_999_999;
/** `USD 0.01`: a currency code, one space, a non-negative decimal with at most six places. */
const PRICE_PATTERN = /^([A-Za-z]{3}) (\d{1,9})(?:\.(\d{1,6}))?$/;

export function parseCrawlerPrice(value: string): CrawlerPrice | null {
  const match = PRICE_PATTERN.exec(value.trim());
  if (!match) return null;
  const whole = Number(match[2]);
  const fraction = Number((match[3] ?? "").padEnd(6, "0"));
  return { currency: match[1]!.toUpperCase(), micros: whole * MICROS + fraction };
}

/** `USD 0.01`, `USD 0.005`: at least two decimals, no trailing zeros beyond them. */
export function formatCrawlerPrice(price: CrawlerPrice): string {
  const whole = Math.floor(price.micros / MICROS);
  const fraction = String(price.micros % MICROS).padStart(6, "0").replace(/0{1,4}$/, "");
  return `${price.currency} ${whole}.${fraction.padEnd(2, "0")}`;
}

/** What a priced resource answers this crawler request. */
export function negotiateCrawl(request: CrawlerRequest): CrawlerOutcome {
  const { price, exactPrice, maxPrice, signature } = request;
  if (!price) return refuse(403, "CrawlerForbidden");
  if (!/^[A-Za-z]{3}$/.test(price.currency) || !Number.isSafeInteger(price.micros) || price.micros < 0 || price.micros > MAX_PRICE_MICROS) {
    return refuse(502, "InvalidContentPrice");
  }
  // Configured currencies may be written `usd`; the headers and the comparison use the ISO code.
  const asked: CrawlerPrice = { currency: price.currency.toUpperCase(), micros: price.micros };
  const priceHeader = { "crawler-price": formatCrawlerPrice(asked) };

  if (exactPrice === undefined && maxPrice === undefined) {
    // The discovery request: the price, no error; a crawler that signed but named no price is told what is missing.
    return refuse(402, signature.status === "verified" ? "MissingCrawlerPrice" : null, priceHeader);
  }
  if (exactPrice !== undefined && maxPrice !== undefined) return refuse(400, "ConflictingPriceHeaders");
  const offered = exactPrice ?? maxPrice!;
  const headerName = exactPrice !== undefined ? "crawler-exact-price" : "crawler-max-price";
  const parsed = parseCrawlerPrice(offered);
  if (!parsed) return refuse(400, "InvalidCrawlerPriceValue");

  // Paying needs a verified signature that covers the price the crawler agreed to.
  if (signature.status === "absent") return refuse(400, "StrongAuthRequired");
  if (signature.status === "invalid" || !signature.covered.includes(headerName)) return refuse(400, "InvalidSignature");

  if (exactPrice !== undefined) {
    if (parsed.currency !== asked.currency || parsed.micros !== asked.micros) return refuse(402, "InvalidCrawlerExactPrice", priceHeader);
  } else if (parsed.currency !== asked.currency || parsed.micros < asked.micros) {
    return refuse(402, "InvalidCrawlerMaxPrice", priceHeader);
  }
  return { kind: "charge", status: 200, charged: asked, headers: { "crawler-charged": formatCrawlerPrice(asked) } };
}

function refuse(status: 400 | 402 | 403 | 502, code: CrawlerErrorCode | null, headers: Record<string, string> = {}): CrawlerOutcome {
  return { kind: "refuse", status, code, headers: code ? { ...headers, "crawler-error": code } : headers };
}

/** The price plans give a surface: undefined when none of them prices it. */
export type SurfacePrice = { price: CrawlerPrice | null } | undefined;

/**
 * What one decision on `surfaceSlug` costs an identity holding `plans`: the lowest price any of them asks (a plan that
 * lets its crawlers in for less is the better deal, as a higher limit is for meters); refused (`price: null`) only when
 * every plan that names the surface forbids it; undefined when none names it. Prices share one currency (the
 * configuration's validation).
 */
export function crawlPriceFor(plans: readonly { payPerCrawl?: Record<string, CrawlerPrice | null> }[], surfaceSlug: string): SurfacePrice {
  let found: SurfacePrice;
  for (const plan of plans) {
    const table = plan.payPerCrawl;
    if (!table || !Object.hasOwn(table, surfaceSlug)) continue;
    const price = table[surfaceSlug]!;
    if (!found || found.price === null || (price !== null && price.micros < found.price.micros)) found = { price: price ?? found?.price ?? null };
  }
  return found;
}
