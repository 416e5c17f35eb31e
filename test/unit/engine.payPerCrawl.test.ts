import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatCrawlerPrice, negotiateCrawl, parseCrawlerPrice, type CrawlerRequest } from "../../workers/engine/payPerCrawl";

const CENT = { currency: "USD", micros: 10_000 };
const signedCovering = (...covered: string[]) => ({ status: "verified" as const, covered: ["@authority", "signature-agent", ...covered] });

describe("crawler prices", () => {
  it("parses and formats `USD 0.01` in micro-units, never floats", () => {
    expect(parseCrawlerPrice("USD 0.01")).toEqual(CENT);
    expect(parseCrawlerPrice(" usd 1.5 ")).toEqual({ currency: "USD", micros: 1_500_000 });
    expect(parseCrawlerPrice("EUR 0.000001")).toEqual({ currency: "EUR", micros: 1 });
    for (const bad of ["0.01", "USD", "USD -0.01", "USD 0.0000001", "USD 1e-2", "USD  0.01", "US 0.01", "USD 0,01", "USD .5", ""]) {
      expect(parseCrawlerPrice(bad), bad).toBeNull();
    }
    expect([CENT, { currency: "USD", micros: 5_000 }, { currency: "USD", micros: 1_000_000 }, { currency: "EUR", micros: 1_234_500 }].map(formatCrawlerPrice)).toEqual([
      "USD 0.01",
      "USD 0.005",
      "USD 1.00",
      "EUR 1.2345",
    ]);
  });

  it("formats every amount so that it parses back to itself", () => {
    fc.assert(
      fc.property(fc.constantFrom("USD", "EUR", "GBP"), fc.integer({ min: 0, max: 999_999_999_999 }), (currency, micros) => {
        expect(parseCrawlerPrice(formatCrawlerPrice({ currency, micros }))).toEqual({ currency, micros });
      }),
      { seed: 15, numRuns: 500 },
    );
  });
});

describe("the pay-per-crawl negotiation", () => {
  const negotiate = (request: Partial<CrawlerRequest>) => negotiateCrawl({ price: CENT, signature: { status: "absent" }, ...request });

  it("answers a first request 402 with the price, and a signed one without a price MissingCrawlerPrice", () => {
    expect(negotiate({})).toEqual({ kind: "refuse", status: 402, code: null, headers: { "crawler-price": "USD 0.01" } });
    expect(negotiate({ signature: signedCovering() })).toEqual({
      kind: "refuse",
      status: 402,
      code: "MissingCrawlerPrice",
      headers: { "crawler-price": "USD 0.01", "crawler-error": "MissingCrawlerPrice" },
    });
  });

  it("charges a signed retry at the exact price, or within its maximum, the resource's price", () => {
    expect(negotiate({ exactPrice: "USD 0.01", signature: signedCovering("crawler-exact-price") })).toEqual({
      kind: "charge",
      status: 200,
      charged: CENT,
      headers: { "crawler-charged": "USD 0.01" },
    });
    const capped = negotiate({ maxPrice: "USD 0.05", signature: signedCovering("crawler-max-price") });
    expect(capped).toMatchObject({ kind: "charge", charged: CENT, headers: { "crawler-charged": "USD 0.01" } });
    expect(negotiate({ maxPrice: "usd 0.010", signature: signedCovering("crawler-max-price") })).toMatchObject({ kind: "charge" });
  });

  it("asks in the ISO code whatever case the configuration wrote, and refuses a price the headers cannot state", () => {
    const lower = { currency: "usd", micros: 10_000 };
    expect(negotiate({ price: lower })).toMatchObject({ status: 402, headers: { "crawler-price": "USD 0.01" } });
    expect(negotiate({ price: lower, exactPrice: "USD 0.01", signature: signedCovering("crawler-exact-price") })).toMatchObject({
      kind: "charge",
      charged: { currency: "USD", micros: 10_000 },
    });
    for (const price of [{ currency: "USD", micros: 10_000.5 }, { currency: "USD", micros: 1e15 }, { currency: "USD", micros: -1 }, { currency: "US", micros: 1 }]) {
      expect(negotiate({ price }), JSON.stringify(price)).toMatchObject({ kind: "refuse", status: 502, code: "InvalidContentPrice" });
    }
  });

  it("answers every refusal with the protocol's status and crawler-error", () => {
    const cases: [Partial<CrawlerRequest>, number, string][] = [
      [{ price: null }, 403, "CrawlerForbidden"],
      [{ exactPrice: "USD 0.01", maxPrice: "USD 0.02", signature: signedCovering("crawler-exact-price", "crawler-max-price") }, 400, "ConflictingPriceHeaders"],
      [{ maxPrice: "a lot", signature: signedCovering("crawler-max-price") }, 400, "InvalidCrawlerPriceValue"],
      [{ maxPrice: "USD 0.05" }, 400, "StrongAuthRequired"],
      [{ maxPrice: "USD 0.05", signature: { status: "invalid" } }, 400, "InvalidSignature"],
      // Signed, but not over the price: someone on the way could have raised it.
      [{ maxPrice: "USD 0.05", signature: signedCovering() }, 400, "InvalidSignature"],
      [{ exactPrice: "USD 0.02", signature: signedCovering("crawler-exact-price") }, 402, "InvalidCrawlerExactPrice"],
      [{ exactPrice: "EUR 0.01", signature: signedCovering("crawler-exact-price") }, 402, "InvalidCrawlerExactPrice"],
      [{ maxPrice: "USD 0.009999", signature: signedCovering("crawler-max-price") }, 402, "InvalidCrawlerMaxPrice"],
      [{ maxPrice: "EUR 1.00", signature: signedCovering("crawler-max-price") }, 402, "InvalidCrawlerMaxPrice"],
    ];
    for (const [request, status, code] of cases) {
      const outcome = negotiate(request);
      expect(outcome, JSON.stringify(request)).toMatchObject({ kind: "refuse", status, code, headers: { "crawler-error": code } });
      // A 402 always says what the price is, so the crawler can retry with it.
      if (status === 402) expect(outcome.headers["crawler-price"]).toBe("USD 0.01");
    }
  });

  it("never charges more than the crawler agreed to, nor anything without a verified signature over its price", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.boolean(),
        fc.constantFrom("absent", "invalid", "verified-covering", "verified-not-covering"),
        (priceMicros, offeredMicros, exact, signing) => {
          const header = exact ? "crawler-exact-price" : "crawler-max-price";
          const signature =
            signing === "absent" ? { status: "absent" as const } : signing === "invalid" ? { status: "invalid" as const } : signedCovering(...(signing === "verified-covering" ? [header] : []));
          const offered = formatCrawlerPrice({ currency: "USD", micros: offeredMicros });
          const outcome = negotiateCrawl({ price: { currency: "USD", micros: priceMicros }, signature, ...(exact ? { exactPrice: offered } : { maxPrice: offered }) });
          if (outcome.kind === "charge") {
            expect(signing).toBe("verified-covering");
            expect(outcome.charged.micros).toBe(priceMicros);
            expect(exact ? offeredMicros === priceMicros : offeredMicros >= priceMicros).toBe(true);
          } else {
            expect(signing !== "verified-covering" || (exact ? offeredMicros !== priceMicros : offeredMicros < priceMicros)).toBe(true);
          }
        },
      ),
      { seed: 402, numRuns: 1_000 },
    );
  });
});
