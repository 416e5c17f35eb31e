import { PLATFORM_LIMITS, requestMethodOf, type AccessCheckRequest } from "@edge-monetization/client";
import type { Context } from "hono";

export type RequestFacts = Pick<AccessCheckRequest, "http" | "cloudflare">;

/**
 * The visitor writes the facts (a URL, a User-Agent, a Referer): past the platform's bounds it would refuse the
 * decision, so they are cut to them instead.
 */
const FACT_LIMITS = PLATFORM_LIMITS.facts;

/**
 * What the platform may know about the visitor's request: its URL, method, user agent, IP and referer (workflows and
 * bot tags read them; an agent's signature may cover the method), and on Workers the request's `cf` object (country,
 * ASN…) — sent with a secret key, the platform takes it as the visitor's.
 *
 * The IP is only ever one nobody but the operator's own edge could have written: `clientIP(c)` when the app names its
 * source; else, on Workers (a `cf` object), `CF-Connecting-IP`, which Cloudflare sets; else none. `X-Forwarded-For` is
 * never read by default: anyone can send one, and a proxy appends to it, so only the operator knows which hop to trust.
 */
export function requestFactsOf(c: Context, clientIP?: () => string | undefined): RequestFacts {
  const header = (name: string) => c.req.header(name) || undefined;
  const cf = (c.req.raw as Request & { cf?: Record<string, unknown> }).cf;
  const http = withoutUndefined({
    url: c.req.url.slice(0, FACT_LIMITS.url),
    userAgent: header("user-agent")?.slice(0, FACT_LIMITS.userAgent),
    clientIP: (clientIP ? clientIP() || undefined : cf ? header("cf-connecting-ip") : undefined)?.slice(0, FACT_LIMITS.clientIP),
    referer: header("referer")?.slice(0, FACT_LIMITS.referer),
    method: requestMethodOf(c.req.method),
  });
  return cf ? { http, cloudflare: { cf } } : { http };
}

function withoutUndefined<T extends Record<string, string | undefined>>(record: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: string };
}
