import type {
  AccessCheckResponse,
  ClientError,
  IdentityRequest,
  MonetizationClient,
  Resource,
  Result,
  SurfaceDecisionResponse,
} from "@edge-monetization/client";

/** What a decision is about: a surface (a surface decision, which consumes) or, without one, an access check. */
export interface DecisionOptions {
  surfaceSlug?: string;
  resource?: Resource;
  action?: string;
}

export interface DecisionState<Data = SurfaceDecisionResponse | AccessCheckResponse> {
  status: "loading" | "ready" | "error";
  /** The decision (kept while a refresh loads). */
  data: Data | null;
  error: ClientError | null;
  /** The platform could not be reached and the client's failureMode is "open". */
  failedOpen: boolean;
  /** The client's result, for `client.hasAccess(result, …)`; null while the first request loads. */
  result: Result<Data> | null;
  /** Asks the platform again (a surface decision consumes again). */
  refresh(): void;
}

/** A visitor's browser keeps the anonymous identifier in this cookie as long as the edge proxy would (400 days). */
const COOKIE_MAX_AGE_SECONDS = 34_560_000;

function readCookie(name: string): string | null {
  for (const pair of document.cookie ? document.cookie.split("; ") : []) {
    const at = pair.indexOf("=");
    if (pair.slice(0, at) !== name) continue;
    try {
      return decodeURIComponent(pair.slice(at + 1)) || null;
    } catch {
      return pair.slice(at + 1) || null;
    }
  }
  return null;
}

/** Mints in flight, by cookie name: shared by every provider and React root of the page, so a visitor is minted once. */
const minting = new Map<string, Promise<void>>();
/** Identifiers minted on this page, by cookie name: used when the cookie does not keep them. */
const mintedOnThisPage = new Map<string, string>();
let warnedCookieLost = false;

/**
 * Who the decisions are for: the identity the page gave, else the anonymous identifier from the cookie, else one the
 * platform mints on the first decision — then written to the cookie. Only one request mints (per cookie, for the
 * whole page): the others wait for it and use its identifier, so a page with several hooks, providers or roots does
 * not split its visitor into several.
 */
export class IdentitySource {
  constructor(
    private readonly given: IdentityRequest | undefined,
    private readonly cookieName: string,
  ) {}

  async run<Data extends { identity?: { authType: string; identifier: string } }>(call: (identity: IdentityRequest) => Promise<Result<Data>>): Promise<Result<Data>> {
    if (this.given) return call(this.given);
    for (;;) {
      const known = readCookie(this.cookieName) ?? mintedOnThisPage.get(this.cookieName);
      if (known) return call({ anonymousIdentifier: known });
      const inFlight = minting.get(this.cookieName);
      if (inFlight) {
        // Then read the cookie again: the mint we waited for wrote it (or failed, and this request mints).
        await inFlight;
        continue;
      }
      let minted!: () => void;
      minting.set(this.cookieName, new Promise<void>((resolve) => (minted = resolve)));
      try {
        const result = await call({ createAnonymousIdentifier: true });
        if (result.ok && result.data.identity?.authType === "anonymous") this.#remember(result.data.identity.identifier);
        return result;
      } finally {
        minting.delete(this.cookieName);
        minted();
      }
    }
  }

  #remember(identifier: string): void {
    mintedOnThisPage.set(this.cookieName, identifier);
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${this.cookieName}=${encodeURIComponent(identifier)}; Path=/; Max-Age=${COOKIE_MAX_AGE_SECONDS}; SameSite=Lax${secure}`;
    // A script cannot overwrite an HttpOnly cookie of the same name (what a server sets by default): the next page load
    // would not find the identifier and would mint another visitor.
    if (readCookie(this.cookieName) !== identifier && !warnedCookieLost) {
      warnedCookieLost = true;
      console.warn(
        `@edge-monetization/browser: the "${this.cookieName}" cookie did not keep the visitor's identifier (an HttpOnly cookie of that name?), so every page load counts as a new visitor. Pass \`identity\` to <MonetizationProvider>, or make the server's cookie readable by scripts.`,
      );
    }
  }
}

interface Entry {
  options: DecisionOptions;
  state: DecisionState;
  listeners: Set<() => void>;
  /** Which request's answer the state shows: a refresh outdates the answers of the requests before it. */
  generation: number;
  /** Sent, and in flight or answered: the next `load` sends nothing. A failure clears it, so the next mount asks again. */
  started: boolean;
}

/** The key of a request: identical requests share one entry (and one consumption). */
export function decisionKey(options: DecisionOptions): string {
  return JSON.stringify([options.surfaceSlug ?? null, options.action ?? null, options.resource ?? null]);
}

/**
 * The decisions of one provider, by request. A request is sent once, whoever asks and however often (React's
 * StrictMode runs effects twice): in flight it is shared, answered it is kept until `refresh()`. A surface decision
 * consumes the visitor's meter, so sending it twice would count one page view twice. A failure is kept only until a
 * component asking for it mounts again (a platform that was unreachable may be back).
 */
export class DecisionStore {
  readonly #entries = new Map<string, Entry>();

  constructor(
    readonly client: MonetizationClient,
    private readonly identity: IdentitySource,
  ) {}

  #entry(key: string, options: DecisionOptions): Entry {
    let entry = this.#entries.get(key);
    if (!entry) {
      const created: Entry = { options, listeners: new Set(), generation: 0, started: false, state: undefined as unknown as DecisionState };
      created.state = { status: "loading", data: null, error: null, failedOpen: false, result: null, refresh: () => this.#send(created) };
      this.#entries.set(key, created);
      entry = created;
    }
    return entry;
  }

  snapshot(key: string, options: DecisionOptions): DecisionState {
    return this.#entry(key, options).state;
  }

  subscribe(key: string, options: DecisionOptions, listener: () => void): () => void {
    const entry = this.#entry(key, options);
    entry.listeners.add(listener);
    return () => entry.listeners.delete(listener);
  }

  /** Sends the request unless it was sent already. */
  load(key: string, options: DecisionOptions): void {
    const entry = this.#entry(key, options);
    if (!entry.started) this.#send(entry);
  }

  #send(entry: Entry): void {
    entry.started = true;
    const generation = ++entry.generation;
    if (entry.state.status !== "loading") this.#set(entry, { ...entry.state, status: "loading" });
    const { surfaceSlug, resource, action } = entry.options;
    const request = this.identity.run<SurfaceDecisionResponse | AccessCheckResponse>((identity) => {
      const body = { identity, ...(resource ? { resource } : {}), ...(action ? { action } : {}) };
      return surfaceSlug ? this.client.surfaceDecision({ ...body, surfaceSlug }) : this.client.accessCheck(body);
    });
    void request.then(
      (result) => {
        if (generation !== entry.generation) return;
        if (!result.ok) entry.started = false;
        this.#set(
          entry,
          result.ok
            ? { ...entry.state, status: "ready", data: result.data, error: null, failedOpen: false, result }
            : { ...entry.state, status: "error", error: result.error, failedOpen: result.failedOpen, result },
        );
      },
      (error: unknown) => {
        // The client returns failures as values; a throw is a programming error (e.g. an invalid baseUrl): show it.
        if (generation !== entry.generation) return;
        entry.started = false;
        const message = error instanceof Error ? error.message : String(error);
        this.#set(entry, { ...entry.state, status: "error", error: { kind: "network", message, cause: error }, failedOpen: false });
      },
    );
  }

  #set(entry: Entry, state: DecisionState): void {
    entry.state = state;
    for (const listener of entry.listeners) listener();
  }
}
