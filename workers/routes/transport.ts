/** What the routes read from the HTTP request itself for the flows (which never see Hono). */
import type { Context } from "hono";
import type { AppEnv } from "../context";
import type { CallerScope, TransportFacts } from "../decision/context";
import { ApiError } from "../errors";

export function transportOf(c: Context<AppEnv>): TransportFacts {
  return {
    cf: (c.req.raw as { cf?: Record<string, unknown> }).cf,
    userAgent: c.req.header("user-agent"),
    forwardedUserAgent: c.req.header("x-mos-user-agent"),
    connectingIp: c.req.header("cf-connecting-ip"),
  };
}

/** The caller of a decision route: an environment's API key (requireAuth has checked it), its body and transport. */
export function callerOf<B extends CallerScope["body"]>(c: Context<AppEnv>, body: B, what: string): Omit<CallerScope, "body"> & { body: B } {
  const auth = c.get("auth");
  if (auth.kind !== "key") throw new ApiError("forbidden", `${what} with an environment's API key`);
  return { environment: auth.environment, keyType: auth.key.type, body, transport: transportOf(c) };
}
