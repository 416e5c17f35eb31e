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

/**
 * Who the decisions are for: the identity the page gave, else the anonymous identifier from the cookie, else one the
 * platform mints on the first decision — then written to the cookie. Only one request mints: the others wait for it
 * and use its identifier, so a page with several hooks does not split its visitor into several.
 */
export class IdentitySource {
  #minting: Promise<void> | null = null;
  #minted: string | null = null;

  constructor(
    private readonly given: IdentityRequest | undefined,
    private readonly cookieName: string,
  ) {}

  async run<Data extends { identity?: { authType: string; identifier: string } }>(call: (identity: IdentityRequest) => Promise<Result<Data>>): Promise<Result<Data>> {
    if (this.given) return call(this.given);
    for (;;) {
      const known = this.#minted ?? readCookie(this.cookieName);
      if (known) return call({ anonymousIdentifier: known });
      if (this.#minting) {
        await this.#minting;
        continue;
      }
      let minted!: () => void;
      this.#minting = new Promise<void>((resolve) => (minted = resolve));
      try {
        const result = await call({ createAnonymousIdentifier: true });
        if (result.ok && result.data.identity?.authType === "anonymous") this.#remember(result.data.identity.identifier);
        return result;
      } finally {
        this.#minting = null;
        minted();
      }
    }
  }

  #remember(identifier: string): void {
    this.#minted = identifier;
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${this.cookieName}=${encodeURIComponent(identifier)}; Path=/; Max-Age=${COOKIE_MAX_AGE_SECONDS}; SameSite=Lax${secure}`;
  }
}

interface Entry {
  options: DecisionOptions;
  state: DecisionState;
  listeners: Set<() => void>;
  /** Which request's answer the state shows: a refresh outdates the answers of the requests before it. */
  generation: number;
  started: boolean;
}

/** The key of a request: identical requests share one entry (and one consumption). */
export function decisionKey(options: DecisionOptions): string {
  return JSON.stringify([options.surfaceSlug ?? null, options.action ?? null, options.resource ?? null]);
}

/**
 * The decisions of one provider, by request. A request is sent once, whoever asks and however often (React's
 * StrictMode runs effects twice): in flight it is shared, settled it is kept until `refresh()`. A surface decision
 * consumes the visitor's meter, so sending it twice would count one page view twice.
 */
export class DecisionStore {
  readonly #entries = new Map<string, Entry>();

  constructor(
    public client: MonetizationClient,
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
