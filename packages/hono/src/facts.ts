import type { AccessCheckRequest } from "@edge-monetization/client";
import type { Context } from "hono";

export type RequestFacts = Pick<AccessCheckRequest, "http" | "cloudflare">;

/**
 * What the platform may know about the visitor's request: its URL, user agent, IP and referer (workflows and bot tags
 * read them), and on Workers the request's `cf` object (country, ASN…) — sent with a secret key, the platform takes
 * it as the visitor's.
 */
export function requestFactsOf(c: Context): RequestFacts {
  const header = (name: string) => c.req.header(name) || undefined;
  const forwardedFor = header("x-forwarded-for")?.split(",")[0]?.trim() || undefined;
  const http = withoutUndefined({
    url: c.req.url,
    userAgent: header("user-agent"),
    clientIP: header("cf-connecting-ip") ?? forwardedFor,
    referer: header("referer"),
  });
  const cf = (c.req.raw as Request & { cf?: Record<string, unknown> }).cf;
  return cf ? { http, cloudflare: { cf } } : { http };
}

function withoutUndefined<T extends Record<string, string | undefined>>(record: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: string };
}
