/**
 * The production runtime: a Workers for Platforms dispatch namespace holding one user script per workflow version
 * and environment (`wf-{48 hex}`, see workflowScriptName), uploaded by the deploy path (`uploadWorkflowScripts`) and
 * invoked with `env.DISPATCHER.get(name)`. Same `WorkflowRunner` interface as the Worker Loader runtime.
 *
 * Protocol (dispatched user Workers are reached over `fetch` only): the platform POSTs JSON to the script,
 *   run:      {protocol, mode: "run", args, budget, utils, offers?, staged?} → 200 {ok: true, value, triggers, writes?, reads?}
 *                                                                          | 200 {ok: false, error}
 *   endpoint: {protocol, mode: "endpoint", args, budget, utils, offers?,
 *              request: {method, url, headers: [[name, value]…], body: base64 | null}}
 *                                                                          → the workflow's Response, plus the
 *                                                                            `x-mos-triggers` header (base64 JSON)
 *                                                                          | 500 with `x-mos-workflow-error: 1` and {error}
 * A dispatched script is not routable from the Internet (only through the namespace binding), so the protocol has
 * no authentication of its own.
 *
 * utils: RPC stubs cannot cross a dispatch `fetch`, so the script's utils are split. `testGroup100` is computed in the
 * script (same FNV-1a as the engine) and `triggers.fire` is collected there and replayed onto the platform's utils
 * after the call. Everything that touches platform data — customData, counters, identities.link, resolveJwt — is a
 * `POST https://utils.mos.internal/v1/{method}` from the script, which the namespace's outbound Worker hands to the
 * platform's `WorkflowOutbound` entrypoint together with the call's capability token (outbound.ts, capability.ts):
 * same `WorkflowUtils`, same scoping, rebuilt from signed claims.
 *
 * Two utils cannot be served from signed claims, because they depend on what only this isolate holds:
 *   - `offers.list` answers from the decision's plans and feature states. For code that names it, the platform
 *     resolves every eligible offer (views with tokens minted here: the signing key never reaches a script) and the
 *     groups' ranking of them before the call, and sends them in the call (`offers`); the script filters them by the
 *     workflow's `groups`/`offers` as offersLister would — pure, so no round trip (and it works without the outbound
 *     Worker). Sending them in the call rather than in the capability keeps the token small and the platform's
 *     outbound side free of decision state.
 *   - a redemption workflow's writes are staged (StagedWrites) and applied only once it succeeded. The harness
 *     stages custom-data writes in the script (`staged: true`; reads of a written key see the write; same bounds as
 *     StagedWrites) and returns them with the result as `writes`, with what it read from storage as `reads` (SHA-256
 *     digests: the apply is a compare-and-set on them); the platform replays them, and the fired triggers, into the
 *     call's staged utils — same checks, same stage — only when the call succeeded, so a throw, timeout or refused
 *     write leaves nothing behind. The capability says `staged` too: its remote side refuses writes sent around the harness.
 *
 * Sandbox: the budget guard is compiled into the script like in the loader runtime, and each call passes
 * `limits: {cpuMs, subRequests}` (the workflow's CPU limit, see cpuLimitOf in runner.ts). Subrequests are allowed only when the outbound Worker is configured
 * (`WORKFLOW_OUTBOUND_WORKER`) and a probe has seen it in the path, because that Worker is what enforces the egress
 * allow-list; without it a dispatched workflow has no network and its data utils answer "not available".
 */
import { LRUCache } from "lru-cache";
import type { ConfigSnapshot, SnapshotWorkflow } from "../engine/snapshot";
import { mintCapability, PROBE_PATH, UTILS_HOST } from "./capability";
import {
  dispatchFactsOf,
  isValueDigest,
  MAX_FIRED_TRIGGERS,
  MAX_STAGED_BYTES,
  MAX_STAGED_KEYS,
  remoteScopeOf,
  STAGED_BYTES_MESSAGE,
  STAGED_KEYS_MESSAGE,
  stagedWritesOf,
} from "./scopedUtils";
import { MAX_CUSTOM_DATA_KEY_LENGTH, MAX_OFFER_FILTER } from "./utils";
import type { PreparedSnapshot } from "../engine/prepare";
import { decodeBase64, encodeBase64 } from "../lib/base64";
import { BodyTooLargeError, readBoundedText } from "../lib/boundedBody";
import { sha256Hex } from "../lib/crypto";
import {
  BUDGET_MODULE,
  BUDGET_SOURCE,
  cpuLimitOf,
  GUARD_SOURCE,
  guardModules,
  operationBudgetOf,
  refusedOutcome,
  withDeadline,
  WORKFLOW_COMPATIBILITY_DATE,
  WORKFLOW_COMPATIBILITY_FLAGS,
  WORKFLOW_SUBREQUESTS,
  type WorkflowCall,
  type WorkflowOutcome,
  type WorkflowRunner,
} from "./runner";

export const DISPATCH_PROTOCOL = "mos-workflow/3";
const DISPATCH_URL = "https://workflow.internal/__mos/invoke";
const TRIGGERS_HEADER = "x-mos-triggers";
const ERROR_HEADER = "x-mos-workflow-error";
/** A run result (JSON) or an endpoint's error body larger than this is a failure, never buffered whole. */
const MAX_RESULT_BYTES = 1024 * 1024;
/** A dispatched call's triggers beyond this are not even replayed (utils refuse more than this per request anyway). */
const MAX_TRIGGERS_PER_CALL = MAX_FIRED_TRIGGERS;

let harnessDigest: Promise<string> | undefined;
const scriptNames = new LRUCache<string, Promise<string>>({ max: 10_000 });

/**
 * `wf-` + 48 hex of SHA-256 over (protocol, harness, guard, compatibility date and flags, organization, environment,
 * compiled code): a new harness gets new scripts (old uploads are never reused by a newer platform), and identical
 * code gets one script per organization and environment, so module-level state of customer code is never shared
 * across tenants, nor between the environments of one tenant (their variables and secrets differ: a workflow that
 * keeps `env.SECRET` in a global must not hand the live secret to preview traffic).
 */
export function workflowScriptName(organizationId: string, environmentId: string, workflow: Pick<SnapshotWorkflow, "codeHash">): Promise<string> {
  const key = `${organizationId}\u0000${environmentId}\u0000${workflow.codeHash}`;
  let name = scriptNames.get(key);
  if (!name) {
    harnessDigest ??= sha256Hex(
      [DISPATCH_PROTOCOL, DISPATCH_HARNESS_SOURCE, GUARD_SOURCE, BUDGET_SOURCE, WORKFLOW_COMPATIBILITY_DATE, ...WORKFLOW_COMPATIBILITY_FLAGS].join("\u0000"),
    );
    name = harnessDigest.then(async (harness) => `wf-${(await sha256Hex(`${harness}\u0000${organizationId}\u0000${environmentId}\u0000${workflow.codeHash}`)).slice(0, 48)}`);
    scriptNames.set(key, name);
  }
  return name;
}

/** The entry module of every dispatched workflow script (plain JS; `workflow.js` is the compiled customer code). */
export const DISPATCH_HARNESS_SOURCE = `
import { withOperationBudget } from "${BUDGET_MODULE}";
import workflow from "./workflow.js";

const PROTOCOL = "${DISPATCH_PROTOCOL}";
const TRIGGER_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

function testGroup100(identifier) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < identifier.length; i++) { hash ^= identifier.charCodeAt(i); hash = Math.imul(hash, 0x01000193); }
  return (hash >>> 0) % 100;
}

const REMOTE_UTILS_URL = "https://${UTILS_HOST}/v1/";

async function remote(method, args) {
  const response = await fetch(REMOTE_UTILS_URL + method, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ args }),
  });
  let result = null;
  try { result = await response.json(); } catch {}
  if (!result || typeof result !== "object") throw new Error("utils." + method + " failed: the platform answered " + response.status);
  if (result.ok !== true) throw new Error(typeof result.error === "string" ? result.error : "utils." + method + " failed");
  return result.value;
}

const MAX_CUSTOM_DATA_KEY_LENGTH = ${MAX_CUSTOM_DATA_KEY_LENGTH};
const MAX_OFFER_FILTER = ${MAX_OFFER_FILTER};
const copy = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

function checkKey(key) {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_CUSTOM_DATA_KEY_LENGTH) {
    throw new Error("custom data keys must be strings of 1-" + MAX_CUSTOM_DATA_KEY_LENGTH + " characters");
  }
  return key;
}

const MAX_STAGED_KEYS = ${MAX_STAGED_KEYS};
const MAX_STAGED_BYTES = ${MAX_STAGED_BYTES};
const STAGED_KEYS_MESSAGE = ${JSON.stringify(STAGED_KEYS_MESSAGE)};
const STAGED_BYTES_MESSAGE = ${JSON.stringify(STAGED_BYTES_MESSAGE)};

// SHA-256 (hex) of a value's JSON text, as the platform's StagedWrites records what a workflow read.
async function digest(value) {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(value ?? null))));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

// A redemption workflow's custom data: writes stay here (last one per key) and go back with the result, reads of a
// key it wrote see that write, other reads are the platform's — and go back too (as digests, in \`reads\`), so the
// platform applies the writes only if what they were decided on is unchanged. Same checks, in the same order, and
// the same bounds as WorkflowUtils over StagedWrites.
function stagedCustomData(writes, reads, get) {
  let bytes = 0;
  const read = async (key) => {
    const write = writes.get(key);
    if (write) return "deleted" in write ? null : copy(write.value);
    const value = await get(key);
    if (!reads.has(key)) reads.set(key, await digest(value));
    return value;
  };
  const stage = (key, write, size) => {
    const previous = writes.get(key);
    if (!previous && writes.size >= MAX_STAGED_KEYS) throw new Error(STAGED_KEYS_MESSAGE);
    const total = bytes - (previous && "bytes" in previous ? previous.bytes : 0) + size;
    if (total > MAX_STAGED_BYTES) throw new Error(STAGED_BYTES_MESSAGE);
    bytes = total;
    writes.set(key, write);
  };
  return {
    get: async (key) => read(checkKey(key)),
    set: async (key, value) => {
      const serialized = JSON.stringify(value);
      if (serialized === undefined || serialized.length > 64 * 1024) throw new Error("custom data values must be JSON of at most 64 KiB");
      const size = new TextEncoder().encode(serialized).byteLength;
      stage(checkKey(key), { value: JSON.parse(serialized), bytes: size }, size);
    },
    delete: async (key) => {
      const existed = (await read(checkKey(key))) !== null;
      stage(key, { deleted: true }, 0);
      return existed;
    },
  };
}

// utils.offers.list over the offers the platform resolved before the call: the same filters as the loader runtime's
// (stages/offers.ts offersLister), pure, so no round trip.
async function listOffers(offers, options) {
  if (!offers || typeof offers.unavailable === "string") throw new Error(offers ? offers.unavailable : "utils.offers.list is available to surface and component workflows only");
  const slugs = (value, name) => {
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.length > MAX_OFFER_FILTER || !value.every((slug) => typeof slug === "string" && slug.length > 0 && slug.length <= 100)) {
      throw new Error(name + " must be a list of at most " + MAX_OFFER_FILTER + " slugs");
    }
    return value;
  };
  const groups = slugs(options?.groups, "groups");
  const named = slugs(options?.offers, "offers");
  const eligible = new Map(offers.eligible.map((view) => [view.offer, view]));
  let order;
  if (groups) {
    const ranking = new Map(offers.groups);
    const ranked = new Set();
    for (const group of groups) for (const offer of ranking.get(group) ?? []) ranked.add(offer);
    order = [...ranked];
  } else order = [...eligible.keys()];
  const wanted = named ? new Set(named) : undefined;
  return order.filter((slug) => eligible.has(slug) && (!wanted || wanted.has(slug))).map((slug) => copy(eligible.get(slug)));
}

function makeUtils(fired, remoteAvailable, writes, reads, offers) {
  const call = (name, method) => async (...args) => {
    if (!remoteAvailable) throw new Error("utils." + name + " is not available to this workflow in the dispatch runtime (no outbound Worker is configured)");
    return remote(method, args);
  };
  const customDataGet = call("customData.get", "customDataGet");
  return {
    customData: writes ? stagedCustomData(writes, reads, customDataGet) : {
      get: customDataGet,
      set: (key, value) => {
        if (value === undefined) return Promise.reject(new Error("custom data values must be JSON of at most 64 KiB"));
        return call("customData.set", "customDataSet")(key, value);
      },
      delete: call("customData.delete", "customDataDelete"),
    },
    counters: {
      consume: (counterId, options) => call("counters.consume", "countersConsume")(counterId, options ?? {}),
      incrementCounter: (counterId, update, options) => call("counters.incrementCounter", "countersIncrement")(counterId, update ?? 1, options ?? {}),
    },
    resolveJwt: call("resolveJwt", "resolveJwt"),
    identities: { link: (fromIdentifier, options) => call("identities.link", "linkIdentity")(fromIdentifier, options ?? {}) },
    triggers: {
      fire: async (name, payload) => {
        if (typeof name !== "string" || !TRIGGER_NAME.test(name)) throw new Error("trigger names are 1-100 characters of a-z, 0-9, '.', '_' or '-'");
        fired.push({ name, payload: payload == null ? {} : JSON.parse(JSON.stringify(payload)) });
      },
    },
    payments: {
      customer: () => call("payments.customer", "paymentsCustomer")(),
      invoices: (options) => call("payments.invoices", "paymentsInvoices")(options ?? {}),
      createCheckoutSession: (input) => call("payments.createCheckoutSession", "paymentsCheckout")(input ?? {}),
      createPortalSession: (input) => call("payments.createPortalSession", "paymentsPortal")(input ?? {}),
    },
    testGroup100: async (identifier) => testGroup100(String(identifier)),
    offers: { list: (options) => listOffers(offers, options ?? {}) },
  };
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}

const message = (error) => (error && typeof error.message === "string" ? error.message : String(error));

export default {
  async fetch(request) {
    if (request.method !== "POST") return new Response("method not allowed", { status: 405 });
    const call = await request.json();
    if (call.protocol !== PROTOCOL) return Response.json({ ok: false, error: "unsupported protocol " + call.protocol }, { status: 400 });
    const fired = [];
    const writes = call.mode === "run" && call.staged === true ? new Map() : null;
    const reads = new Map();
    const utils = makeUtils(fired, call.utils === "remote", writes, reads, call.offers);
    if (call.mode === "probe") {
      try {
        const response = await fetch("https://${UTILS_HOST}${PROBE_PATH}", { method: "POST" });
        return Response.json({ ok: true, value: await response.text() });
      } catch (error) {
        return Response.json({ ok: false, error: message(error) });
      }
    }
    if (call.mode === "run") {
      try {
        const value = await withOperationBudget(call.budget, () => workflow({ ...call.args, utils }));
        const staged = writes
          ? {
              writes: [...writes].map(([key, write]) => ("deleted" in write ? { key, delete: true } : { key, value: write.value })),
              reads: [...reads].map(([key, sha256]) => ({ key, sha256 })),
            }
          : {};
        return Response.json({ ok: true, value: value === undefined ? null : value, triggers: fired, ...staged });
      } catch (error) {
        return Response.json({ ok: false, error: message(error) });
      }
    }
    if (call.mode === "endpoint") {
      try {
        const inbound = call.request;
        const customerRequest = new Request(inbound.url, {
          method: inbound.method,
          headers: inbound.headers,
          body: inbound.body === null ? null : fromBase64(inbound.body),
        });
        const response = await withOperationBudget(call.budget, () => workflow(customerRequest, { ...call.args, utils }));
        if (!(response instanceof Response)) throw new TypeError("an endpoint workflow must return a Response");
        const headers = new Headers(response.headers);
        headers.delete("${ERROR_HEADER}");
        headers.set("${TRIGGERS_HEADER}", toBase64(JSON.stringify(fired)));
        return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
      } catch (error) {
        return Response.json({ error: message(error) }, { status: 500, headers: { "${ERROR_HEADER}": "1" } });
      }
    }
    return Response.json({ ok: false, error: "unknown mode " + call.mode }, { status: 400 });
  },
};
`;

/** The modules of one dispatched workflow script, by part name. */
export function workflowScriptModules(workflow: Pick<SnapshotWorkflow, "code">): Record<string, string> {
  return { "harness.js": DISPATCH_HARNESS_SOURCE, ...guardModules(), "workflow.js": workflow.code };
}

interface FiredTrigger {
  name: string;
  payload: unknown;
}

function replayTriggers(utils: object, fired: unknown): void {
  if (!Array.isArray(fired)) return;
  const fire = (utils as { fireTrigger?: (name: string, payload: unknown) => unknown }).fireTrigger;
  if (typeof fire !== "function") return;
  if (fired.length > MAX_TRIGGERS_PER_CALL) console.warn(JSON.stringify({ event: "triggers_dropped", reason: "too many in one call", fired: fired.length }));
  for (const trigger of (fired as FiredTrigger[]).slice(0, MAX_TRIGGERS_PER_CALL)) {
    try {
      fire.call(utils, trigger.name, trigger.payload);
    } catch (error) {
      console.warn("dispatched workflow fired a trigger the platform refused", error);
    }
  }
}

function decodeTriggers(header: string | null): unknown {
  if (!header) return [];
  try {
    return JSON.parse(new TextDecoder().decode(decodeBase64(header)));
  } catch {
    return [];
  }
}

export interface DispatchRunnerOptions {
  /** Scripts are per organization and environment (see workflowScriptName). */
  organizationId: string;
  environmentId: string;
  /**
   * Set when the namespace has the platform's outbound Worker: each call then gets a capability token (its utils
   * scope and the environment's egress allow-list) as the outbound parameter `mos`, and may make subrequests.
   */
  outbound?: { secretsKey: string; hosts: readonly string[] };
}

/**
 * Whether compiled code can reach `utils.counters`. Endpoint workflows resolve the caller's plan limits only for
 * code that does (it may run middleware and provisioning workflows); code that builds the name at run time gets no
 * limits in the dispatch runtime.
 */
const usesCounters = (workflow: SnapshotWorkflow) => /\bcounters\b/.test(workflow.code);

const PROBE_DEADLINE_MS = 2_000;
const PROBE_VALID_MS = 10 * 60_000;
const PROBE_RETRY_MS = 60_000;
/** Per namespace binding (one per isolate in production): whether the outbound Worker was seen in the path. */
const outboundChecks = new WeakMap<object, { until: number; ok: Promise<boolean> }>();

interface PreparedCall {
  capability: string | null;
  remoteUtils: boolean;
  /** What the script's `utils.offers.list` filters (absent for code that never names it). */
  offers?: ScriptOffers;
  /** A redemption workflow: the script stages its custom-data writes and returns them. */
  staged: boolean;
}

/** The protocol's `offers`: every eligible offer's view, and each group's eligible offers in slot order. */
type ScriptOffers = { eligible: { offer: string }[]; groups: [string, string[]][] } | { unavailable: string };

/**
 * Whether compiled code can reach `utils.offers.list` (both names appear): the platform mints the tokens of every
 * eligible offer only for code that may list them. Code that builds the name at run time gets "not available".
 */
const usesOfferList = (workflow: SnapshotWorkflow) => /\boffers\b/.test(workflow.code) && /\blist\b/.test(workflow.code);

/**
 * Every offer the call's `utils.offers.list` could answer, resolved by the utils target itself (all eligible offers, in
 * slug order, each with a freshly minted token), with the groups' ranking of them; or why the call has none (the
 * message the loader runtime's call would reject with: not a surface or component workflow, no decision yet).
 */
async function offersForScript(utils: object, prepared: PreparedSnapshot | undefined): Promise<ScriptOffers> {
  const list = (utils as { offersList?: (options: object) => Promise<unknown[]> }).offersList;
  if (typeof list !== "function" || !prepared) return { unavailable: "utils.offers.list is available to surface and component workflows only" };
  let eligible: { offer: string }[];
  try {
    eligible = (await list.call(utils, {})) as { offer: string }[];
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
  const shown = new Set(eligible.map((view) => view.offer));
  const groups: [string, string[]][] = [];
  for (const [slug, group] of prepared.offerGroupBySlug) {
    const ranked = [...new Set(group.slots.flatMap((slot) => slot.offers))].filter((offer) => shown.has(offer));
    if (ranked.length > 0) groups.push([slug, ranked]);
  }
  return { eligible, groups };
}

interface StagedWrite {
  key: string;
  value?: unknown;
  delete?: true;
}

/**
 * What a staged call read from storage (digests), handed to its utils target's stage before its writes, so they are
 * applied only if those values are unchanged. Only the workflow's own compare-and-set depends on them.
 */
function replayReads(utils: object, reads: unknown): void {
  if (reads === undefined) return;
  const stage = stagedWritesOf(utils);
  if (!stage || !Array.isArray(reads)) throw new Error("the workflow's staged writes could not be applied");
  for (const read of reads as { key?: unknown; sha256?: unknown }[]) {
    if (typeof read !== "object" || read === null || typeof read.key !== "string" || !isValueDigest(read.sha256)) throw new Error("the workflow's staged writes could not be applied");
    stage.recordReadDigest(read.key, read.sha256);
  }
}

/**
 * A staged call's writes, replayed into its utils target: through its own methods, so each passes the checks the loader
 * runtime's call would have met (the harness shares its globals with customer code, so its checks prove nothing) and
 * lands in the same StagedWrites. A write refused here fails the call.
 */
async function replayWrites(utils: object, writes: unknown): Promise<void> {
  if (writes === undefined) return;
  const target = utils as { customDataSet?: (key: string, value: unknown) => Promise<void>; customDataDelete?: (key: string) => Promise<boolean> };
  if (!Array.isArray(writes) || typeof target.customDataSet !== "function" || typeof target.customDataDelete !== "function") {
    throw new Error("the workflow's staged writes could not be applied");
  }
  for (const write of writes as StagedWrite[]) {
    if (typeof write !== "object" || write === null) throw new Error("the workflow's staged writes could not be applied");
    if (write.delete === true) await target.customDataDelete.call(utils, write.key);
    else await target.customDataSet.call(utils, write.key, write.value);
  }
}

/** What a call leaves for the platform: applied only once the call counts as a success (in time, valid). */
interface Effects<T> {
  value: T;
  apply(): Promise<void> | void;
}

async function parseBoundedJson(response: Response): Promise<unknown> {
  const text = await readBoundedText(response.body, MAX_RESULT_BYTES, response.headers.get("content-length"));
  return JSON.parse(text);
}

export class DispatchWorkflowRunner implements WorkflowRunner {
  constructor(
    private readonly namespace: Pick<DispatchNamespace, "get">,
    private readonly options: DispatchRunnerOptions,
  ) {}

  /**
   * Before the deadline starts: the utils scope (resolving plan limits if the code uses counters) and the call's
   * capability, valid for the deadline plus a few seconds.
   */
  private async prepare(call: WorkflowCall): Promise<PreparedCall> {
    const facts = dispatchFactsOf(call.utils);
    const local = {
      staged: facts?.staged === true,
      ...(usesOfferList(call.workflow) ? { offers: await offersForScript(call.utils, facts?.prepared) } : {}),
    };
    const outbound = this.options.outbound;
    if (!outbound || !(await this.outboundInPath(call.workflow, outbound))) return { capability: null, remoteUtils: false, ...local };
    const scope = await remoteScopeOf(call.utils, { resolveCounters: usesCounters(call.workflow) });
    const capability = await mintCapability(
      outbound.secretsKey,
      { environmentId: this.options.environmentId, workflow: call.workflow.slug, hosts: [...outbound.hosts], ...(scope ? { utils: scope } : {}) },
      call.deadlineMs,
    );
    return { capability, remoteUtils: scope !== null, ...local };
  }

  /**
   * `WORKFLOW_OUTBOUND_WORKER` is the operator's word that the namespace binding has the outbound Worker; if the
   * binding lacks it, subrequests would go straight to the Internet. So before any script gets subrequests, one probe
   * call (per namespace binding and isolate, renewed every few minutes) fetches the utils host with a fresh nonce in
   * its capability: only the platform, reached through the outbound Worker, can echo it (the host resolves nowhere
   * else). Until a probe succeeds, dispatched workflows run without network, and the failure is logged.
   */
  private outboundInPath(workflow: SnapshotWorkflow, outbound: NonNullable<DispatchRunnerOptions["outbound"]>): Promise<boolean> {
    const now = Date.now();
    const known = outboundChecks.get(this.namespace);
    if (known && known.until > now) return known.ok;
    const probed = this.probe(workflow, outbound);
    const check = { until: now + PROBE_RETRY_MS, ok: probed.then((result) => result === "in_path") };
    outboundChecks.set(this.namespace, check);
    void probed.then((result) => {
      // A probe that could not run (the script is missing, the namespace is down) says nothing: ask again next call.
      check.until = result === "inconclusive" ? 0 : Date.now() + (result === "in_path" ? PROBE_VALID_MS : PROBE_RETRY_MS);
      if (result === "missing") console.error(JSON.stringify({ event: "dispatch_outbound_missing", message: "WORKFLOW_OUTBOUND_WORKER is set but dispatched scripts do not reach the platform through an outbound Worker; check the DISPATCHER binding's outbound setting" }));
    });
    return check.ok;
  }

  private async probe(workflow: SnapshotWorkflow, outbound: NonNullable<DispatchRunnerOptions["outbound"]>): Promise<"in_path" | "missing" | "inconclusive"> {
    let response: Response;
    const nonce = crypto.randomUUID();
    try {
      const capability = await mintCapability(outbound.secretsKey, { environmentId: this.options.environmentId, workflow: workflow.slug, hosts: [], probe: nonce }, PROBE_DEADLINE_MS);
      response = await this.dispatch(workflow, capability, 1, { mode: "probe" }, AbortSignal.timeout(PROBE_DEADLINE_MS));
    } catch {
      return "inconclusive";
    }
    try {
      const result = (await parseBoundedJson(response)) as { ok?: boolean; value?: unknown } | null;
      return result?.ok === true && result.value === nonce ? "in_path" : "missing";
    } catch {
      return "missing";
    }
  }

  /** One protocol call to the workflow's script: its capability (if any) as the outbound parameter `mos`. */
  private async dispatch(workflow: SnapshotWorkflow, capability: string | null, subRequests: number, body: Record<string, unknown>, signal: AbortSignal): Promise<Response> {
    const { organizationId, environmentId } = this.options;
    const fetcher = this.namespace.get(await workflowScriptName(organizationId, environmentId, workflow), {}, {
      limits: { cpuMs: cpuLimitOf(workflow), subRequests },
      ...(capability ? { outbound: { mos: capability } } : {}),
    });
    return fetcher.fetch(DISPATCH_URL, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ protocol: DISPATCH_PROTOCOL, ...body }),
      signal,
    });
  }

  private post(call: WorkflowCall, prepared: PreparedCall, signal: AbortSignal, body: Record<string, unknown>): Promise<Response> {
    const { capability } = prepared;
    const utils = prepared.remoteUtils ? "remote" : "none";
    const local = { ...(prepared.offers ? { offers: prepared.offers } : {}), ...(prepared.staged ? { staged: true } : {}) };
    return this.dispatch(call.workflow, capability, capability ? WORKFLOW_SUBREQUESTS : 0, { budget: operationBudgetOf(call.workflow), utils, ...local, ...body }, signal);
  }

  /**
   * Runs `invoke` under the deadline; a call that fails or times out is aborted, so the script stops with it. What the
   * call left (triggers, staged writes) is applied only when it succeeded: a result that came too late is a timeout
   * and leaves nothing, as the loader runtime's would; a write the platform refuses fails the call.
   */
  private async guarded<T>(call: WorkflowCall, invoke: (prepared: PreparedCall, signal: AbortSignal) => Promise<Effects<T>>): Promise<WorkflowOutcome<T>> {
    // Stored code the load-time check refused never runs (its stand-in module is not even looked up).
    const refused = refusedOutcome(call.workflow);
    if (refused) return refused;
    let prepared: PreparedCall;
    try {
      prepared = await this.prepare(call);
    } catch (error) {
      console.warn(JSON.stringify({ event: "dispatch_prepare_failed", workflow: call.workflow.slug, error: String(error) }));
      return { ok: false, kind: "unavailable", error: "the workflow could not be prepared", durationMs: 0 };
    }
    const controller = new AbortController();
    const outcome = await withDeadline(call.deadlineMs, () => invoke(prepared, controller.signal));
    if (!outcome.ok) {
      controller.abort();
      return outcome;
    }
    try {
      await outcome.value.apply();
    } catch (error) {
      return { ok: false, kind: "threw", error: error instanceof Error ? error.message : String(error), durationMs: outcome.durationMs };
    }
    return { ok: true, value: outcome.value.value, durationMs: outcome.durationMs };
  }

  run(call: WorkflowCall): Promise<WorkflowOutcome> {
    return this.guarded(call, async (prepared, signal) => {
      const response = await this.post(call, prepared, signal, { mode: "run", args: call.args });
      let result: { ok?: boolean; value?: unknown; error?: string; triggers?: unknown; writes?: unknown; reads?: unknown } | null;
      try {
        result = (await parseBoundedJson(response)) as typeof result;
      } catch (error) {
        throw new Error(error instanceof BodyTooLargeError ? `the workflow's result is larger than ${MAX_RESULT_BYTES} bytes` : `dispatched workflow answered ${response.status}`);
      }
      if (!result || result.ok !== true) throw new Error(typeof result?.error === "string" ? result.error : `dispatched workflow answered ${response.status}`);
      const { triggers, writes, reads } = result;
      if ((writes !== undefined || reads !== undefined) && !prepared.staged) throw new Error("the workflow returned staged writes it was not asked to stage");
      return {
        value: result.value ?? null,
        apply: async () => {
          // Writes first: a refused write fails the call before any of its triggers is sent.
          replayReads(call.utils, reads);
          await replayWrites(call.utils, writes);
          replayTriggers(call.utils, triggers);
        },
      };
    });
  }

  runEndpoint(call: WorkflowCall, request: Request): Promise<WorkflowOutcome<Response>> {
    return this.guarded(call, async (prepared, signal) => {
      const body = request.body ? encodeBase64(new Uint8Array(await request.arrayBuffer())) : null;
      const response = await this.post(call, prepared, signal, {
        mode: "endpoint",
        args: call.args,
        request: { method: request.method, url: request.url, headers: [...request.headers], body },
      });
      if (response.headers.get(ERROR_HEADER)) {
        const failure = (await parseBoundedJson(response).catch(() => ({}))) as { error?: unknown };
        throw new Error(typeof failure.error === "string" ? failure.error : "dispatched endpoint workflow failed");
      }
      const triggers = decodeTriggers(response.headers.get(TRIGGERS_HEADER));
      const headers = new Headers(response.headers);
      headers.delete(TRIGGERS_HEADER);
      return { value: new Response(response.body, { status: response.status, statusText: response.statusText, headers }), apply: () => replayTriggers(call.utils, triggers) };
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Deploy path: upload one user script per workflow version and environment through the Cloudflare API.

export interface UploadOptions {
  accountId: string;
  namespace: string;
  apiToken: string;
  fetch: typeof fetch;
  /** Defaults to the public API. */
  apiBase?: string;
}

export interface UploadedScript {
  scriptName: string;
  workflows: string[];
}

export class WorkflowUploadError extends Error {
  constructor(
    readonly scriptName: string,
    readonly status: number,
    readonly errors: unknown,
  ) {
    super(`uploading ${scriptName} failed with ${status}: ${JSON.stringify(errors)}`);
  }
}

/**
 * `PUT /accounts/{account_id}/workers/dispatch/namespaces/{namespace}/scripts/{script_name}` with a multipart body:
 * a `metadata` part (`{main_module, compatibility_date, compatibility_flags}`) and one
 * `application/javascript+module` part per module, for the environment the version is deployed to. Workflows of one
 * environment with the same code share one script (see workflowScriptName), so re-deploying an unchanged workflow
 * re-uploads identical content under the same name.
 */
export async function uploadWorkflowScripts(
  snapshot: Pick<ConfigSnapshot, "workflows" | "organizationId">,
  environmentId: string,
  options: UploadOptions,
): Promise<UploadedScript[]> {
  const base = options.apiBase ?? "https://api.cloudflare.com/client/v4";
  const byScript = new Map<string, { workflow: SnapshotWorkflow; slugs: string[] }>();
  for (const workflow of snapshot.workflows) {
    const name = await workflowScriptName(snapshot.organizationId, environmentId, workflow);
    const entry = byScript.get(name);
    if (entry) entry.slugs.push(workflow.slug);
    else byScript.set(name, { workflow, slugs: [workflow.slug] });
  }
  const uploaded: UploadedScript[] = [];
  for (const [scriptName, { workflow, slugs }] of byScript) {
    const form = new FormData();
    const metadata = { main_module: "harness.js", compatibility_date: WORKFLOW_COMPATIBILITY_DATE, compatibility_flags: [...WORKFLOW_COMPATIBILITY_FLAGS] };
    form.append("metadata", new Blob([JSON.stringify(metadata)], { type: "application/json" }));
    for (const [part, source] of Object.entries(workflowScriptModules(workflow))) {
      form.append(part, new File([source], part, { type: "application/javascript+module" }));
    }
    const url = `${base}/accounts/${encodeURIComponent(options.accountId)}/workers/dispatch/namespaces/${encodeURIComponent(options.namespace)}/scripts/${scriptName}`;
    const response = await options.fetch(url, { method: "PUT", headers: { authorization: `Bearer ${options.apiToken}` }, body: form });
    const result = (await response.json().catch(() => null)) as { success?: boolean; errors?: unknown } | null;
    if (!response.ok || result?.success !== true) throw new WorkflowUploadError(scriptName, response.status, result?.errors ?? result);
    uploaded.push({ scriptName, workflows: slugs });
  }
  return uploaded;
}

/** The deploy-path settings, when this deployment runs workflows in a dispatch namespace. */
export function dispatchUploadSettings(env: Env): Omit<UploadOptions, "fetch"> | null {
  const { CF_ACCOUNT_ID: accountId, DISPATCH_NAMESPACE: namespace, CF_API_TOKEN: apiToken } = env;
  return accountId && namespace && apiToken ? { accountId, namespace, apiToken } : null;
}

/**
 * The deploy-path hook: when `CF_ACCOUNT_ID`, `DISPATCH_NAMESPACE` and `CF_API_TOKEN` are set, uploads the version's
 * workflow scripts for `environmentId` (call it when the version is deployed to that environment, before traffic
 * reaches it); otherwise does nothing (null).
 */
export async function uploadWorkflowScriptsIfConfigured(
  env: Env,
  snapshot: Pick<ConfigSnapshot, "workflows" | "organizationId">,
  environmentId: string,
  fetcher: typeof fetch = (input, init) => fetch(input, init),
): Promise<UploadedScript[] | null> {
  const settings = dispatchUploadSettings(env);
  if (!settings || snapshot.workflows.length === 0) return null;
  return uploadWorkflowScripts(snapshot, environmentId, { ...settings, fetch: fetcher });
}
