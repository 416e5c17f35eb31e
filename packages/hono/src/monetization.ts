import type { MonetizationClient, Result } from "@edge-monetization/client";
import type { Context, Env, MiddlewareHandler } from "hono";
import { setCookie } from "hono/cookie";
import { requestFactsOf, type RequestFacts } from "./facts";
import { DEFAULT_ANONYMOUS_COOKIE, identityOf, mayMint } from "./identity";
import type { CookieOptions, Decision, DecideOptions, IdentityRequest, Monetization, MonetizationOptions, MonetizationVariables, Resource } from "./types";

/** The browser's upper bound for a cookie's lifetime (RFC 6265bis): 400 days. */
const ANONYMOUS_COOKIE_MAX_AGE_SECONDS = 400 * 24 * 60 * 60;

/**
 * Puts `c.var.monetization` on the context: the request's identity (cookies, JWT or your own), and `decide()` /
 * `hasAccess()` asking the platform with the request's facts. When the platform minted an anonymous identifier for a
 * new visitor, the response sets the anonymous cookie so that the visitor keeps it.
 */
export function monetization<E extends Env = any>(options: MonetizationOptions<E>): MiddlewareHandler<{ Variables: MonetizationVariables }> {
  const anonymousCookie = options.anonymousCookie ?? DEFAULT_ANONYMOUS_COOKIE;
  return async (c, next) => {
    // The options speak of the application's own context type; this middleware only adds a variable to it.
    const context = c as unknown as Context<E>;
    const client = typeof options.client === "function" ? options.client(context) : options.client;
    const requestIdentity = await identityOf(c, options as MonetizationOptions);
    const state = new RequestMonetization(client, requestIdentity.identity, requestIdentity.anonymousCookieValue, {
      facts: () => requestFactsOf(c),
      surfaceSlug: () => (typeof options.surfaceSlug === "function" ? options.surfaceSlug(context) : options.surfaceSlug),
      resource: () => options.resource?.(context) ?? { id: c.req.path },
    });
    c.set("monetization", state.api);
    await next();
    // After the handler: whichever decision minted the identifier (a requireFeature, the handler's own decide), the
    // response that goes out — a 402 included — carries it.
    if (state.mintedIdentifier) {
      const https = new URL(c.req.url).protocol === "https:";
      const cookieOptions: CookieOptions = {
        path: "/",
        maxAge: ANONYMOUS_COOKIE_MAX_AGE_SECONDS,
        sameSite: "Lax",
        httpOnly: true,
        secure: https,
        ...options.cookieOptions,
      };
      setCookie(c, anonymousCookie, state.mintedIdentifier, cookieOptions);
    }
  };
}

interface RequestDefaults {
  facts: () => RequestFacts;
  surfaceSlug: () => string | undefined;
  resource: () => Resource | undefined;
}

/** One request's decisions: memoised, and sent with one identity even when the platform mints it on the first. */
class RequestMonetization {
  mintedIdentifier: string | undefined;
  readonly api: Monetization;
  #identity: IdentityRequest;
  /** Set once a decision answered for the identity: later ones no longer wait for a minted identifier. */
  #identitySettled = false;
  #mintingTurn: Promise<unknown> = Promise.resolve();
  #facts: RequestFacts | undefined;
  readonly #decisions = new Map<string, Promise<Result<Decision>>>();

  constructor(
    private readonly client: MonetizationClient,
    identity: IdentityRequest,
    private readonly anonymousCookieValue: string | undefined,
    private readonly defaults: RequestDefaults,
  ) {
    this.#identity = identity;
    const self = this;
    this.api = {
      decide: ((decideOptions?: DecideOptions) => self.decide(decideOptions)) as Monetization["decide"],
      hasAccess: async (property, decideOptions) => client.hasAccess(await self.decide(decideOptions), property),
      get identity() {
        return self.#identity;
      },
      client,
    };
  }

  decide(options: DecideOptions = {}): Promise<Result<Decision>> {
    const surfaceSlug = options.surfaceSlug === null ? undefined : (options.surfaceSlug ?? this.defaults.surfaceSlug());
    const resource = options.resource ?? this.defaults.resource();
    const trace = options.trace === true;
    const key = JSON.stringify([surfaceSlug ? "surface" : "access", surfaceSlug ?? null, resource ?? null, options.action ?? null, trace]);
    let decision = this.#decisions.get(key);
    if (!decision) {
      decision = this.#ask(surfaceSlug, resource, options.action, trace);
      this.#decisions.set(key, decision);
    }
    return decision;
  }

  #ask(surfaceSlug: string | undefined, resource: Resource | undefined, action: string | undefined, trace: boolean): Promise<Result<Decision>> {
    const attempt = async (): Promise<Result<Decision>> => {
      const identity = this.#identity;
      this.#facts ??= this.defaults.facts();
      const body = { identity, ...this.#facts, ...(resource ? { resource } : {}), ...(action ? { action } : {}) };
      const call = trace ? { trace } : {};
      const result = surfaceSlug ? await this.client.surfaceDecision({ ...body, surfaceSlug }, call) : await this.client.accessCheck(body, call);
      if (result.ok && !this.#identitySettled) this.#settle(identity, result.data.identity);
      return result;
    };
    // Two decisions for a new visitor must not mint two identifiers: while one may mint, the next waits for it and
    // then asks for the identifier it minted.
    if (this.#identitySettled || !mayMint(this.#identity)) return attempt();
    const turn = this.#mintingTurn.then(attempt);
    this.#mintingTurn = turn.catch(() => undefined);
    return turn;
  }

  #settle(sent: IdentityRequest, decided: Decision["identity"]) {
    this.#identitySettled = true;
    if (!mayMint(sent) || decided.authType !== "anonymous") return;
    this.#identity = { anonymousIdentifier: decided.identifier };
    // A JWT that fell back while the visitor already has an anonymous identifier keeps that cookie as it is.
    if (!this.anonymousCookieValue) this.mintedIdentifier = decided.identifier;
  }
}
