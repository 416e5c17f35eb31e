import { agentHeadersOf, withAgentHeaders, type ClientError, type MonetizationClient, type Result } from "@edge-monetization/client";
import type { Context, Env, MiddlewareHandler } from "hono";
import { setCookie } from "hono/cookie";
import { anonymousCookieOf, checkCookieName, MAX_COOKIE_AGE_SECONDS } from "./cookies";
import { requestFactsOf, type RequestFacts } from "./facts";
import { DEFAULT_ANONYMOUS_COOKIE, DEFAULT_JWT_COOKIE, identityOf, mayMint, type RequestIdentity } from "./identity";
import type { CookieOptions, Decision, DecideOptions, IdentityRequest, Monetization, MonetizationOptions, MonetizationVariables, Resource } from "./types";

/**
 * Puts `c.var.monetization` on the context: the request's identity (cookies, JWT or your own), and `decide()` /
 * `hasAccess()` asking the platform with the request's facts and what an agent sent that the platform reads (its Web
 * Bot Auth signature, the price it agrees to pay per crawl, an x402 payment: agentHeadersOf). When the platform minted
 * an anonymous identifier for a new visitor, the response sets the anonymous cookie so that the visitor keeps it.
 */
export function monetization<E extends Env = any>(options: MonetizationOptions<E>): MiddlewareHandler<{ Variables: MonetizationVariables }> {
  // A cookie setCookie would refuse is a mistake in the app: say so now, not with a 500 on each new visitor.
  checkCookieName("jwtCookie", options.jwtCookie ?? DEFAULT_JWT_COOKIE);
  const anonymousCookie = anonymousCookieOf(checkCookieName("anonymousCookie", options.anonymousCookie ?? DEFAULT_ANONYMOUS_COOKIE), options.cookieOptions);
  return async (c, next) => {
    // The options speak of the application's own context type; this middleware only adds a variable to it.
    const context = c as unknown as Context<E>;
    const client = typeof options.client === "function" ? options.client(context) : options.client;
    const requestIdentity = await identityOf(c, options as MonetizationOptions, anonymousCookie.name);
    const state = new RequestMonetization(client, requestIdentity, {
      facts: () => requestFactsOf(c, options.clientIP ? () => options.clientIP!(context) : undefined),
      agentHeaders: () => agentHeadersOf(c.req.raw.headers),
      surfaceSlug: () => (typeof options.surfaceSlug === "function" ? options.surfaceSlug(context) : options.surfaceSlug),
      resource: () => options.resource?.(context) ?? { id: c.req.path },
    });
    c.set("monetization", state.api);
    await next();
    // After the handler: whichever decision minted the identifier (a requireFeature, the handler's own decide), the
    // response that goes out — a 402 included — carries it.
    if (state.mintedIdentifier) {
      // The scheme the app sees: behind a proxy that terminates TLS it is http (cookieOptions.secure overrides).
      const https = new URL(c.req.url).protocol === "https:";
      const cookieOptions = {
        path: "/",
        maxAge: MAX_COOKIE_AGE_SECONDS,
        sameSite: "Lax",
        httpOnly: true,
        secure: https,
        ...anonymousCookie.options,
      } as CookieOptions;
      setCookie(c, anonymousCookie.name, state.mintedIdentifier, cookieOptions);
    }
  };
}

interface RequestDefaults {
  facts: () => RequestFacts;
  agentHeaders: () => Record<string, string> | undefined;
  surfaceSlug: () => string | undefined;
  resource: () => Resource | undefined;
}

/** One request's decisions: memoised, and sent with one identity even when the platform mints it on the first. */
class RequestMonetization {
  mintedIdentifier: string | undefined;
  readonly api: Monetization;
  #identity: IdentityRequest;
  readonly #whenJwtRefused: IdentityRequest | undefined;
  readonly #anonymousCookieValue: string | undefined;
  /** Set once a decision answered for the identity: later ones no longer wait for a minted identifier. */
  #identitySettled = false;
  #mintingTurn: Promise<unknown> = Promise.resolve();
  #facts: RequestFacts | undefined;
  readonly #decisions = new Map<string, Promise<Result<Decision>>>();

  constructor(
    private readonly client: MonetizationClient,
    { identity, anonymousCookieValue, whenJwtRefused }: RequestIdentity,
    private readonly defaults: RequestDefaults,
  ) {
    this.#identity = identity;
    this.#whenJwtRefused = whenJwtRefused;
    this.#anonymousCookieValue = anonymousCookieValue;
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
    const decideFor = async (identity: IdentityRequest): Promise<Result<Decision>> => {
      this.#facts ??= this.defaults.facts();
      // Added last and only if they fit: headers as large as a visitor can make them must not get the decision refused.
      const body = withAgentHeaders({ identity, ...this.#facts, ...(resource ? { resource } : {}), ...(action ? { action } : {}) }, this.defaults.agentHeaders());
      const call = trace ? { trace } : {};
      return surfaceSlug ? await this.client.surfaceDecision({ ...body, surfaceSlug }, call) : await this.client.accessCheck(body, call);
    };
    const attempt = async (): Promise<Result<Decision>> => {
      let identity = this.#identity;
      let result = await decideFor(identity);
      if (!result.ok && this.#whenJwtRefused && identity.userJwt !== undefined && isJwtRefusal(result.error)) {
        // The refused call consumed nothing: decide again for the visitor's anonymous cookie, and so do the request's
        // later decisions (the identity stays what the platform decided for).
        identity = this.#identity = this.#whenJwtRefused;
        result = await decideFor(identity);
      }
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
    // An identity of your own that fell back while the visitor has an anonymous cookie keeps that cookie as it is.
    if (!this.#anonymousCookieValue) this.mintedIdentifier = decided.identifier;
  }
}

function isJwtRefusal(error: ClientError): boolean {
  return error.kind === "api" && error.status === 401 && error.code === "invalid_jwt";
}
