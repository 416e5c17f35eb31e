/**
 * Everything a dispatched workflow script sends leaves through the namespace's outbound Worker (outbound/worker.ts),
 * which hands it here with the call's capability token (see capability.ts). Two kinds of request arrive:
 *   - `POST https://utils.mos.internal/v1/{method}` with `{args: [...]}`: the script's `utils`, served by the same
 *     `WorkflowUtils` the Worker Loader runtime gets over RPC, rebuilt from the token's scope → `{ok, value | error}`;
 *   - anything else: egress, forwarded only to the environment's allow-listed hosts (logged), else 403.
 *   - `https://utils.mos.internal/v1/probe`: echoes the token's probe nonce (the runner's check that the outbound
 *     Worker really is in the path before it lets scripts make subrequests);
 * A missing, forged or expired token gets 403 for all of them.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { BodyTooLargeError, readBoundedText } from "../lib/boundedBody";
import { preparedSnapshotFor } from "../services/snapshots";
import { PROBE_PATH, UTILS_HOST, verifyCapability, type RemoteUtilsScope } from "./capability";
import { forwardEgress } from "./egressGateway";
import { scopedUtils, StagedWrites } from "./scopedUtils";
import { paymentsAccess, workflowLogger } from "./paymentsAccess";
import { createMeterClient, meterDeadlineOf } from "../../durable-objects/meter/client";
import type { WorkflowUtils } from "./utils";

const MAX_UTILS_BODY_BYTES = 128 * 1024;

/**
 * The utils a dispatched script may call remotely, with their arity. Triggers and testGroup100 stay in the script, and
 * so does `offersList`: the platform resolves the eligible offers before the call (dispatchRunner.ts), since this side
 * lacks the decision's plans and feature states.
 */
const REMOTE_METHODS = {
  customDataGet: 1,
  customDataSet: 2,
  customDataDelete: 1,
  countersConsume: 2,
  countersIncrement: 3,
  resolveJwt: 1,
  linkIdentity: 2,
  paymentsCustomer: 0,
  paymentsInvoices: 1,
  paymentsCheckout: 1,
  paymentsPortal: 1,
} as const satisfies Partial<Record<keyof WorkflowUtils, number>>;

type RemoteMethod = keyof typeof REMOTE_METHODS;

/** What the dispatch harness stages in a redemption workflow's script instead of calling here (dispatchRunner.ts). */
const STAGED_IN_SCRIPT: ReadonlySet<RemoteMethod> = new Set(["customDataSet", "customDataDelete"]);

const isRemoteMethod = (name: string): name is RemoteMethod => Object.hasOwn(REMOTE_METHODS, name);

const utilsError = (error: string, status = 200) => Response.json({ ok: false, error }, { status });

async function utilsFor(env: Env, environmentId: string, scope: RemoteUtilsScope): Promise<WorkflowUtils> {
  const prepared = await preparedSnapshotFor(env.DB, scope.versionId);
  // The token names both; a version is only ever served inside its own organization.
  if (prepared.snapshot.organizationId !== scope.organizationId) throw new Error("the capability's version belongs to another organization");
  return scopedUtils({
    meter: createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS)),
    organizationId: scope.organizationId,
    store: scope.store,
    prepared,
    identifier: () => scope.identifier,
    authenticated: () => scope.authenticated,
    readOnly: scope.readOnly,
    replaying: () => scope.replaying === true,
    // A redemption's stage lives in its script (dispatchRunner.ts); this one only gives reads and refusals the same
    // answers as the loader runtime (serveUtils refuses writes before they could land here and be lost).
    ...(scope.staged ? { staged: new StagedWrites() } : {}),
    counterSettings: new Map(scope.counters),
    fireTrigger: () => {
      throw new Error("triggers fired by dispatched workflows travel with their result");
    },
    payments: paymentsAccess(
      { db: env.DB, secretsKey: env.SECRETS_KEY, stripeApiBase: env.STRIPE_API_BASE, logger: workflowLogger },
      { environment: { id: environmentId, organizationId: scope.organizationId }, prepared, store: scope.store },
    ),
  });
}

async function serveUtils(env: Env, environmentId: string, scope: RemoteUtilsScope | undefined, request: Request): Promise<Response> {
  const method = /^\/v1\/([A-Za-z]+)$/.exec(new URL(request.url).pathname)?.[1];
  if (request.method !== "POST" || !method || !isRemoteMethod(method)) return utilsError("unknown utils call", 404);
  if (!scope) return utilsError(`utils are not available to this workflow call`);
  let text: string;
  try {
    text = await readBoundedText(request.body, MAX_UTILS_BODY_BYTES, request.headers.get("content-length"));
  } catch (error) {
    if (error instanceof BodyTooLargeError) return utilsError("utils arguments must be at most 128 KiB", 413);
    throw error;
  }
  let args: unknown;
  try {
    args = (JSON.parse(text) as { args?: unknown }).args;
  } catch {
    return utilsError("utils calls carry a JSON body {args: [...]}", 400);
  }
  if (!Array.isArray(args) || args.length > REMOTE_METHODS[method]) return utilsError("utils calls carry a JSON body {args: [...]}", 400);
  if (scope.staged && STAGED_IN_SCRIPT.has(method)) {
    return utilsError("a redemption workflow's custom-data writes are staged in its script and travel with its result; they cannot be sent on their own");
  }
  let utils: WorkflowUtils;
  try {
    utils = await utilsFor(env, environmentId, scope);
  } catch (error) {
    // Platform trouble (D1, a missing version) is logged, not shown to customer code.
    console.error(JSON.stringify({ event: "workflow_utils_unavailable", versionId: scope.versionId, error: String(error) }));
    return utilsError("utils are temporarily unavailable", 503);
  }
  try {
    const invoke = utils[method] as (...values: unknown[]) => unknown;
    const value = await invoke.apply(utils, args);
    return Response.json({ ok: true, value: value === undefined ? null : value });
  } catch (error) {
    return utilsError(error instanceof Error ? error.message : String(error));
  }
}

/** What the outbound Worker calls (service binding with `entrypoint = "WorkflowOutbound"`). */
export async function handleWorkflowOutbound(env: Env, request: Request, token: unknown): Promise<Response> {
  const capability = await verifyCapability(env.SECRETS_KEY, token);
  if (!capability) {
    console.warn(JSON.stringify({ event: "workflow_outbound_refused", host: new URL(request.url).host, reason: "invalid capability" }));
    return new Response("This workflow call carries no valid capability", { status: 403 });
  }
  if (new URL(request.url).host === UTILS_HOST) {
    if (new URL(request.url).pathname === PROBE_PATH) return new Response(capability.probe ?? "", { headers: { "content-type": "text/plain" } });
    return serveUtils(env, capability.environmentId, capability.utils, request);
  }
  return forwardEgress(request, { environmentId: capability.environmentId, workflow: capability.workflow, hosts: capability.hosts });
}

export class WorkflowOutbound extends WorkerEntrypoint<Env, { capability?: string } | undefined> {
  /** RPC from the outbound Worker: the request the script made and the call's capability token. */
  handle(request: Request, capability: unknown): Promise<Response> {
    return handleWorkflowOutbound(this.env, request, capability);
  }

  /** As a Fetcher bound with `props: {capability}` (how tests and local tooling stand in for the outbound Worker). */
  override fetch(request: Request): Promise<Response> {
    return handleWorkflowOutbound(this.env, request, this.ctx.props?.capability);
  }
}
