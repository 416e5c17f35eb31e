/**
 * Builds the `utils` RPC target for one identity in one tenant's user data store. Shared by the decision pipeline,
 * endpoint workflows and the action-workflow queue consumer, so every entry point scopes utils the same way: the
 * meter object of `${organizationId}:${store}` and the identity's identifier, never anything a workflow names.
 */
import type { MeterClient } from "../../durable-objects/meter/client";
import type { CustomDataExpectation, CustomDataWrite } from "../../durable-objects/meter/MeterObject";
import type { Period } from "../../schema/config";
import type { PreparedSnapshot } from "../engine/prepare";
import { readingUnderOverriddenLimit } from "../engine/meters";
import type { MeterReading, MeterRequest } from "../engine/types";
import type { RemoteUtilsScope } from "./capability";
import { checkFiredTrigger } from "./triggers";
import { verifyUserJwt } from "../identity/jwt";
import { type OffersPort, type PaymentsPort, type UserDataPort, WorkflowUtils } from "./utils";
import { jsonByteLength } from "../lib/json";
import { sha256Hex } from "../lib/crypto";

/** Bounds on what workflows put on the trigger queue (a queue message holds at most 128 KB). */
export const MAX_FIRED_TRIGGERS = 50;
const MAX_TRIGGER_PAYLOAD_BYTES = 32 * 1024;

export interface CounterSettings {
  limit: number;
  period: Period;
  uniqueResources: boolean;
  /**
   * Only on an unlimited counter (MeterRequest.overriddenLimit): the limit of the metered setting its `on` overrides,
   * which utils report its readings under, as the response does (readingUnderOverriddenLimit). Never sent to the meter object.
   */
  overriddenLimit?: number;
}

/** The limits a decision's meter requests put on each counter, by counter id. */
export function counterSettingsOf(requests: readonly MeterRequest[]): Map<string, CounterSettings> {
  return new Map(
    requests.map(({ counterId, limit, period, uniqueResources, overriddenLimit }) => [
      counterId,
      overriddenLimit === undefined ? { limit, period, uniqueResources } : { limit, period, uniqueResources, overriddenLimit },
    ]),
  );
}

/** A meter answer for one counter as utils hand it to the workflow: an unlimited counter's under its overridden limit. */
function reportedUnder(settings: CounterSettings, reading: MeterReading | undefined): MeterReading | undefined {
  if (settings.overriddenLimit === undefined || reading === undefined) return reading;
  return readingUnderOverriddenLimit(reading, settings.overriddenLimit);
}

/** What the meter object is told about a counter: its limits, without what only the platform's reports use. */
function meterSettingsOf({ limit, period, uniqueResources }: CounterSettings): Omit<CounterSettings, "overriddenLimit"> {
  return { limit, period, uniqueResources };
}

export interface ScopedUtilsOptions {
  /** The user's objects (only `stub` is used: utils calls have no deadline of their own). */
  meter: Pick<MeterClient, "stub">;
  organizationId: string;
  /** The user data store (`storeOf(environment)`). */
  store: string;
  prepared: PreparedSnapshot;
  /** The identity's identifier; a function because middleware may replace it during a decision. */
  identifier: () => string;
  /** Whether that identity is signed in (provided or JWT): signed-in and anonymous identities are kept apart. */
  authenticated: () => boolean;
  readOnly: boolean;
  /** Limits of counters the caller already resolved for this user; a counter not among them is refused. */
  counterSettings?: ReadonlyMap<string, CounterSettings>;
  /**
   * Where no decision resolved the counters (endpoint workflows): the limits of the user's plans, resolved on the
   * first counters call, as a counter update would resolve them.
   */
  resolveCounterSettings?: () => Promise<ReadonlyMap<string, CounterSettings>>;
  /**
   * True while the request is an idempotent replay (its meter answer was the first request's): counters then answer
   * their current reading and consume nothing, and custom-data writes are skipped, so a retry changes nothing more,
   * workflows included.
   */
  replaying?: () => boolean;
  fireTrigger: (name: string, payload: unknown) => void;
  /**
   * The payment provider for an identity (utils.payments); absent, those utils refuse. A function of the identity,
   * which middleware may still change after the target is built.
   */
  payments?: (identity: { identifier: string; authenticated: boolean }) => PaymentsPort;
  /** `utils.offers.list` (surface and component workflows of a decision); absent, the call rejects. */
  offers?: OffersPort;
  /**
   * Redemption workflows: custom-data writes are held here (reads see them) instead of reaching the meter object, to
   * be applied only once the workflow succeeded (StagedWrites.customDataWrites); counters and identity links refuse.
   * Pass `fireTrigger` a list of your own too, sent only then.
   */
  staged?: StagedWrites;
}

/**
 * Bounds on what a redemption workflow stages (it is held in the shared isolate until the workflow ends, and the
 * dispatch runtime carries it back in a result of at most 1 MiB): distinct keys written or deleted, and the JSON
 * bytes of the values set. The dispatch harness checks the same bounds with the same messages.
 */
export const MAX_STAGED_KEYS = 100;
export const MAX_STAGED_BYTES = 512 * 1024;
export const STAGED_KEYS_MESSAGE = `a redemption workflow may write at most ${MAX_STAGED_KEYS} custom-data keys (its writes are held until it succeeds)`;
export const STAGED_BYTES_MESSAGE = `a redemption workflow's custom-data values may total at most ${MAX_STAGED_BYTES / 1024} KiB of JSON (its writes are held until it succeeds)`;

/** SHA-256 digests of values as CustomDataExpectation carries them: lowercase hex. */
export const isValueDigest = (text: unknown): text is string => typeof text === "string" && /^[0-9a-f]{64}$/.test(text);

/**
 * A redemption workflow's custom-data writes while it runs: the last write of each key, applied all at once after it
 * succeeded (MeterObject.customDataApply), or dropped with everything else when it fails — never half a redemption.
 * It also remembers what each key it read from storage held then (`expectations`), so the apply is a compare-and-set:
 * a workflow that checked "not claimed yet" and then claims fails when another request claimed meanwhile.
 */
export class StagedWrites {
  private readonly writes = new Map<string, { value: unknown; bytes: number } | { deleted: true }>();
  private readonly reads = new Map<string, string>();
  private bytes = 0;

  /** The staged value of `key`: `{ value }` (null once deleted), or undefined when the workflow has not written it. */
  read(key: string): { value: unknown } | undefined {
    const write = this.writes.get(key);
    if (!write) return undefined;
    return "deleted" in write ? { value: null } : { value: write.value };
  }

  /** What storage answered for `key` (null: no value), the first time the workflow read it there. */
  async recordRead(key: string, value: unknown): Promise<void> {
    this.recordReadDigest(key, await sha256Hex(JSON.stringify(value ?? null)));
  }

  /** recordRead for a runtime that read elsewhere and sends the digest (dispatch). */
  recordReadDigest(key: string, digest: string): void {
    if (!this.reads.has(key)) this.reads.set(key, digest);
  }

  /** Refused (a clear error, nothing staged) past MAX_STAGED_KEYS keys or MAX_STAGED_BYTES of values. */
  set(key: string, value: unknown): void {
    const bytes = jsonByteLength(value ?? null);
    this.stage(key, { value, bytes }, bytes);
  }

  delete(key: string): void {
    this.stage(key, { deleted: true }, 0);
  }

  customDataWrites(): CustomDataWrite[] {
    return [...this.writes].map(([key, write]) => ("deleted" in write ? { key, delete: true as const } : { key, value: write.value }));
  }

  /** The values the writes were decided on: every key read from storage, as it was read. */
  expectations(): CustomDataExpectation[] {
    return [...this.reads].map(([key, sha256]) => ({ key, sha256 }));
  }

  private stage(key: string, write: { value: unknown; bytes: number } | { deleted: true }, bytes: number): void {
    const previous = this.writes.get(key);
    if (!previous && this.writes.size >= MAX_STAGED_KEYS) throw new Error(STAGED_KEYS_MESSAGE);
    const total = this.bytes - (previous && "bytes" in previous ? previous.bytes : 0) + bytes;
    if (total > MAX_STAGED_BYTES) throw new Error(STAGED_BYTES_MESSAGE);
    this.bytes = total;
    this.writes.set(key, write);
  }
}

const NOT_IN_REDEMPTIONS = (operation: string) =>
  new Error(`${operation} is not available to redemption workflows: their writes are applied only when the redemption succeeds, and ${operation} cannot wait for that`);

/**
 * What the platform knows about each utils target — its serializable scope, for runtimes that cannot receive the
 * target itself (dispatch), and its counter limits, for triggers — kept beside the object rather than as methods on
 * it, because every method of an RPC target is callable by the workflow. Functions, because middleware may still
 * change the identity, and later stages may learn more limits, after the target is built.
 */
interface UtilsState {
  /**
   * Everything a remote call needs; with `resolveCounters`, lazily resolved counter limits are resolved now (the call
   * cannot come back for them).
   */
  remote(options: { resolveCounters: boolean }): Promise<RemoteUtilsScope>;
  /** Counter limits known so far, without resolving anything more. */
  known(): Promise<ReadonlyMap<string, CounterSettings>>;
  /** The version served (dispatch hands a script the offer groups' ranking for `utils.offers.list`). */
  prepared: PreparedSnapshot;
  /** A redemption workflow's target: a runtime that runs the script elsewhere stages its writes there (dispatch). */
  staged: boolean;
  /** That target's stage, where such a runtime hands back what the script read (dispatch). */
  stage?: StagedWrites;
}

const states = new WeakMap<object, UtilsState>();

export async function remoteScopeOf(utils: object, options = { resolveCounters: true }): Promise<RemoteUtilsScope | null> {
  return (await states.get(utils)?.remote(options)) ?? null;
}

/** The version and staging of a utils target the platform built (null for any other object). */
export function dispatchFactsOf(utils: object): { prepared: PreparedSnapshot; staged: boolean } | null {
  const state = states.get(utils);
  return state ? { prepared: state.prepared, staged: state.staged } : null;
}

/** The stage of a redemption workflow's utils target (undefined for any other object). */
export function stagedWritesOf(utils: object): StagedWrites | undefined {
  return states.get(utils)?.stage;
}

/** The counter limits a utils target knows (what triggers carry to action workflows). */
export async function knownCounterSettings(utils: object): Promise<ReadonlyMap<string, CounterSettings>> {
  return (await states.get(utils)?.known()) ?? new Map();
}

/**
 * Resolving a user's plans can fail (a middleware workflow rejects, D1 is down): then the user has no limits for this
 * call — counters answer "not metered" — and the reason is logged rather than shown to customer code.
 */
function resolveLimits(resolve: () => Promise<ReadonlyMap<string, CounterSettings>>): Promise<ReadonlyMap<string, CounterSettings>> {
  return resolve().catch((error: unknown) => {
    console.warn(JSON.stringify({ event: "counter_limits_unresolved", error: error instanceof Error ? error.message : String(error) }));
    return new Map<string, CounterSettings>();
  });
}

export function scopedUtils(options: ScopedUtilsOptions): WorkflowUtils {
  const { meter, organizationId, store, prepared, identifier, authenticated, readOnly, fireTrigger } = options;
  const counterSettings = options.counterSettings ?? new Map<string, CounterSettings>();
  const user = () => meter.stub({ organizationId, store, authenticated: authenticated(), identifier: identifier() });
  // Only counters whose limit and period this request resolved for the user: guessing (say, lifetime and unlimited)
  // would overwrite the stored period of a monthly counter and lose its usage.
  let resolved: Promise<ReadonlyMap<string, CounterSettings>> | undefined;
  const resolveLazily = (resolve: () => Promise<ReadonlyMap<string, CounterSettings>>) => (resolved ??= resolveLimits(resolve));
  let firedCount = 0;
  const settingsOf = async (counterId: string): Promise<CounterSettings> => {
    let settings = counterSettings.get(counterId);
    if (!settings && options.resolveCounterSettings) settings = (await resolveLazily(options.resolveCounterSettings)).get(counterId);
    if (!settings) throw new Error(`counter ${counterId} is not metered for this user (none of their plans, as resolved for this call, gives it a limit)`);
    return settings;
  };
  const isReplay = () => options.replaying?.() === true;
  const evaluateOne = async (counterId: string, resourceId: string | undefined, consume: boolean) => {
    const settings = await settingsOf(counterId);
    const result = await user().evaluate({ counters: [{ counterId, ...meterSettingsOf(settings), consume }], resourceId, timeZone: prepared.snapshot.timeZone });
    return "readings" in result ? reportedUnder(settings, result.readings[0]) : result;
  };
  const consume = (counterId: string, resourceId: string | undefined) => evaluateOne(counterId, resourceId, true);
  const peek = (counterId: string, resourceId: string | undefined) => evaluateOne(counterId, resourceId, false);
  const paymentsFor = options.payments;
  const payments: PaymentsPort | undefined = paymentsFor && {
    customer: () => paymentsFor({ identifier: identifier(), authenticated: authenticated() }).customer(),
    invoices: (limit) => paymentsFor({ identifier: identifier(), authenticated: authenticated() }).invoices(limit),
    checkout: (input) => paymentsFor({ identifier: identifier(), authenticated: authenticated() }).checkout(input),
    portal: (input) => paymentsFor({ identifier: identifier(), authenticated: authenticated() }).portal(input),
  };
  const utils = new WorkflowUtils({
    ...(payments ? { payments } : {}),
    ...(options.offers ? { offers: options.offers } : {}),
    store,
    counterIds: new Set(prepared.snapshot.features.map((feature) => `${store}:${feature.id}.enabled`)),
    readOnly,
    user: options.staged ? stagedUserPort(options.staged, () => user()) : {
      customDataGet: (key) => user().customDataGet(key) as Promise<unknown>,
      // A replay changes nothing: the first request's writes stand.
      customDataSet: async (key, value) => {
        if (!isReplay()) await user().customDataSet(key, value);
      },
      customDataDelete: async (key) => (isReplay() ? false : ((await user().customDataDelete(key)) as boolean)),
      consume: (counterId, resourceId) => (isReplay() ? peek(counterId, resourceId) : consume(counterId, resourceId)),
      increment: async (counterId, update, resourceId) => {
        if (isReplay()) return peek(counterId, resourceId);
        const settings = await settingsOf(counterId);
        const result = await user().updateCounter({ counterId, ...meterSettingsOf(settings), update, resourceId, timeZone: prepared.snapshot.timeZone });
        return "reading" in result ? reportedUnder(settings, result.reading) : result;
      },
      linkFrom: async (fromIdentifier) => {
        if (fromIdentifier === identifier()) return { linked: false, counters: 0 };
        // Links carry an anonymous visitor's counters over to the signed-in user.
        const counters = await meter.stub({ organizationId, store, authenticated: false, identifier: fromIdentifier }).exportCounters();
        return user().importOnce(`${fromIdentifier}->${identifier()}`, counters);
      },
    },
    resolveJwt: async (token) => {
      const result = await verifyUserJwt(token, prepared.snapshot.authMethods);
      return result.ok ? { ok: true, claims: result.claims, identifier: result.identifier } : { ok: false, reason: result.reason };
    },
    fireTrigger: (name, payload) => {
      if (++firedCount > MAX_FIRED_TRIGGERS) throw new Error(`a request's workflows may fire at most ${MAX_FIRED_TRIGGERS} triggers`);
      const bytes = jsonByteLength(payload ?? null);
      if (bytes > MAX_TRIGGER_PAYLOAD_BYTES) throw new Error(`trigger payloads must be JSON of at most ${MAX_TRIGGER_PAYLOAD_BYTES / 1024} KiB`);
      checkFiredTrigger(prepared.snapshot, name, payload);
      fireTrigger(name, payload);
    },
  });
  const known = async (): Promise<ReadonlyMap<string, CounterSettings>> => {
    const lazy = resolved ? await resolved : new Map<string, CounterSettings>();
    return new Map([...lazy, ...counterSettings]);
  };
  states.set(utils, {
    known,
    prepared,
    staged: options.staged !== undefined,
    ...(options.staged ? { stage: options.staged } : {}),
    remote: async ({ resolveCounters }) => {
      if (resolveCounters && options.resolveCounterSettings) resolveLazily(options.resolveCounterSettings);
      return {
        organizationId,
        versionId: prepared.versionId,
        store,
        identifier: identifier(),
        authenticated: authenticated(),
        readOnly,
        // Staged writes never leave the runtime that runs the workflow: the platform rebuilding these utils elsewhere
        // (dispatch) serves reads, payments and refusals, never custom-data writes (the script stages those itself).
        ...(options.staged ? { staged: true } : {}),
        ...(isReplay() ? { replaying: true } : {}),
        counters: [...(await known())],
      };
    },
  });
  return utils;
}

/** The user port of a redemption workflow: custom data through the stage, no counters, no links. */
function stagedUserPort(staged: StagedWrites, user: () => ReturnType<ScopedUtilsOptions["meter"]["stub"]>): UserDataPort {
  // What the workflow wrote wins over what is stored, null (deleted) included.
  const read = async (key: string): Promise<unknown> => {
    const written = staged.read(key);
    if (written) return written.value;
    const stored = (await user().customDataGet(key)) as unknown;
    await staged.recordRead(key, stored);
    return stored;
  };
  return {
    customDataGet: read,
    customDataSet: async (key, value) => staged.set(key, value),
    customDataDelete: async (key) => {
      const existed = (await read(key)) !== null;
      staged.delete(key);
      return existed;
    },
    consume: async () => {
      throw NOT_IN_REDEMPTIONS("counters.consume");
    },
    increment: async () => {
      throw NOT_IN_REDEMPTIONS("counters.incrementCounter");
    },
    linkFrom: async () => {
      throw NOT_IN_REDEMPTIONS("identities.link");
    },
  };
}
