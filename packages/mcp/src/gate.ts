import { denialReason, describeError, isUnavailable, offersOf, type ClientError, type IdentityRequest, type PropertyState, type SurfaceDecisionRequest } from "@edge-monetization/client";
import type { McpServer, RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { deniedResult, denialMessage, toolError } from "./denial";
import type { Denial, GateToolsOptions, ToolExtra, ToolGate } from "./types";

/** The platform's bound on a decision's `action`. */
const MAX_ACTION_LENGTH = 100;
const GATED = Symbol.for("@edge-monetization/mcp.gated");

type ToolHandler = (...params: unknown[]) => CallToolResult | Promise<CallToolResult>;
type ToolUpdates = Parameters<RegisteredTool["update"]>[0];

/**
 * Gates the tools `options.tools` names: each call of one is decided by the platform first — a surface decision that
 * consumes the tool's property (one unit of a meter, or the price of the tool's action in credits) — and runs only
 * when it is granted. A refused call answers a tool error saying why, with the upgrade link; when the platform cannot
 * be reached, the client's failure mode decides (open: the tool runs; closed: a tool error asking to retry).
 *
 * Call it before registering the tools: it wraps the handlers `registerTool` (and the deprecated `tool`) receive from
 * then on, including a handler swapped in later with `update({ callback })`. Returns the server.
 */
export function gateTools<Server extends McpServer>(server: Server, options: GateToolsOptions): Server {
  const gates = checkedGates(options);
  const target = server as Server & { [GATED]?: true };
  if (target[GATED]) throw new Error("gateTools() was already called on this MCP server: list every gated tool in one call");
  // Registered before gateTools(), a tool would run ungated: a paid tool given away without a word. The SDK keeps its
  // tools in a field of its own; when a version no longer has it, this check is simply skipped.
  const registered = (server as unknown as { _registeredTools?: Record<string, unknown> })._registeredTools ?? {};
  const early = Object.keys(gates).filter((name) => Object.hasOwn(registered, name));
  if (early.length > 0) throw new Error(`gateTools(): ${early.join(", ")} registered before gateTools() was called; call it first, so that every call is gated`);
  target[GATED] = true;

  const gateOf = (name: string) => (Object.hasOwn(gates, name) ? gates[name] : undefined);
  const decide = decider(options);
  const gateHandler = (name: string, gate: ToolGate, handler: ToolHandler): ToolHandler =>
    async (...params) => {
      // The SDK calls a handler with (args, extra), or (extra) alone for a tool without an input schema.
      const extra = params[params.length - 1] as ToolExtra;
      const args = params.length > 1 ? params[0] : undefined;
      const refusal = await decide(name, gate, args, extra);
      return refusal ?? handler(...params);
    };
  const keepGated = (name: string, gate: ToolGate | undefined, tool: RegisteredTool): RegisteredTool => {
    const update = tool.update.bind(tool);
    tool.update = ((updates: ToolUpdates) => {
      // An ungated tool renamed onto a gated name would run under that name with no decision made.
      if (!gate && typeof updates.name === "string" && gateOf(updates.name)) {
        throw new Error(`gateTools(): ${updates.name} is gated; register it under that name instead of renaming ${name} onto it`);
      }
      return update(gate && updates.callback ? { ...updates, callback: gateHandler(name, gate, updates.callback as ToolHandler) as ToolUpdates["callback"] } : updates);
    }) as RegisteredTool["update"];
    return tool;
  };

  const registerTool = server.registerTool.bind(server) as (name: string, config: unknown, handler: ToolHandler) => RegisteredTool;
  server.registerTool = ((name: string, config: unknown, handler: ToolHandler) => {
    const gate = gateOf(name);
    return keepGated(name, gate, registerTool(name, config, gate ? gateHandler(name, gate, handler) : handler));
  }) as Server["registerTool"];

  const tool = server.tool.bind(server) as (name: string, ...rest: unknown[]) => RegisteredTool;
  server.tool = ((name: string, ...rest: unknown[]) => {
    const gate = gateOf(name);
    const handler = rest[rest.length - 1];
    if (gate && typeof handler === "function") rest[rest.length - 1] = gateHandler(name, gate, handler as ToolHandler);
    return keepGated(name, gate, tool(name, ...rest));
  }) as Server["tool"];

  // A task-based tool answers with a task, not a result: there is no call to refuse with a tool error. Saying so beats
  // registering it ungated.
  const tasks = server.experimental.tasks;
  const registerToolTask = tasks.registerToolTask.bind(tasks) as (name: string, ...rest: unknown[]) => RegisteredTool;
  tasks.registerToolTask = ((name: string, ...rest: unknown[]) => {
    if (gateOf(name)) throw new Error(`gateTools(): ${name} is gated, and task-based tools cannot be gated; register it with registerTool`);
    return registerToolTask(name, ...rest);
  }) as typeof tasks.registerToolTask;

  return server;
}

/** The gates, checked now: a mistake in them would otherwise show as a 400 on every call of the tool. */
function checkedGates(options: GateToolsOptions): Record<string, ToolGate> {
  if (!options.client) throw new TypeError("gateTools(): options.client is required (createClient from @edge-monetization/client)");
  if (typeof options.surfaceSlug !== "string" || options.surfaceSlug === "") throw new TypeError("gateTools(): options.surfaceSlug is required");
  const gates: Record<string, ToolGate> = Object.create(null);
  for (const [name, gate] of Object.entries(options.tools ?? {})) {
    if (!/^[^.]+\.[^.]+$/.test(gate.property ?? "")) throw new TypeError(`gateTools(): tool ${name}: property must be "feature.property", got ${JSON.stringify(gate.property)}`);
    const action = gate.action ?? name;
    if (action.length === 0 || action.length > MAX_ACTION_LENGTH) {
      throw new TypeError(`gateTools(): tool ${name}: the action that prices it must be 1 to ${MAX_ACTION_LENGTH} characters${gate.action === undefined ? " (its name is used by default: set action)" : ""}`);
    }
    if (gate.surfaceSlug === "") throw new TypeError(`gateTools(): tool ${name}: surfaceSlug must not be empty`);
    gates[name] = gate;
  }
  return gates;
}

/** Decides one call: undefined lets it run, a result refuses it. */
function decider(options: GateToolsOptions) {
  const { client } = options;
  return async (tool: string, gate: ToolGate, args: unknown, extra: ToolExtra): Promise<CallToolResult | undefined> => {
    const identity = (await options.identity?.(extra)) ?? defaultIdentity(extra);
    if (!identity) {
      reportOnce(`identity ${tool}`, `@edge-monetization/mcp: the ${tool} tool was called without an MCP session id (stdio or stateless HTTP) and gateTools() has no identity option: every such call is refused`);
      return toolError(`The ${tool} tool could not tell who is calling it, so it cannot check your access.`);
    }
    const resource = gate.resource?.(args, extra);
    const request: SurfaceDecisionRequest = {
      identity,
      surfaceSlug: gate.surfaceSlug ?? options.surfaceSlug,
      action: gate.action ?? tool,
      ...(resource ? { resource } : {}),
    };
    const result = await client.surfaceDecision(request, { signal: extra.signal });
    if (!result.ok) {
      if (result.failedOpen) return undefined;
      if (result.error.kind === "aborted") return toolError(`The ${tool} call was cancelled.`);
      if (isUnavailable(result.error)) return toolError(`The ${tool} tool is unavailable: its access could not be checked. Retry in a moment.`);
      reportOnce(`refused ${tool} ${refusalKey(result.error)}`, `@edge-monetization/mcp: the platform refused the decision for the ${tool} tool: ${describeError(result.error)}`);
      return toolError(`The ${tool} tool could not check your access (${result.error.kind === "api" ? result.error.code : result.error.kind}).`);
    }
    const state = client.property(result, gate.property);
    if (client.hasAccess(result, gate.property)) {
      if (!state || chargedInRequest(state)) return undefined;
      // Access without the call being counted: the surface does not consume the property, so every call would be free.
      reportOnce(
        `unmetered ${tool} ${gate.property}`,
        `@edge-monetization/mcp: the ${tool} tool is gated by ${gate.property}, but its surface does not consume it (add it to the surface's consumes): every call is refused`,
      );
      return toolError(`The ${tool} tool is not available: its use could not be counted.`);
    }
    const reason = denialReason(state);
    if (reason === "unknown_property") {
      reportOnce(`unknown ${gate.property}`, `@edge-monetization/mcp: the ${tool} tool is gated by ${gate.property}, which the deployed configuration does not have (a typo, or a configuration not deployed yet): every call is refused`);
    }
    // No offer unlocks a property that does not exist, whatever the surface shows.
    const offers = reason === "unknown_property" ? [] : offersOf(result.data.offers);
    const denial: Denial = { tool, property: gate.property, reason, offers };
    return deniedResult(denial, denialMessage(denial, state), options.upgradeUrl?.(offers[0] ?? null, denial));
  };
}

/**
 * Whether the decision counted this call: a metered reading consumed in the request (or a unique resource already
 * counted), a credits balance charged (or an action that costs nothing). Unmetered access (`on`, a meter fallback)
 * has nothing to count.
 */
function chargedInRequest(state: PropertyState): boolean {
  if (state.type === "credits") return state.deductedInRequest === true || (state.cost ?? 0) === 0;
  if (state.type === "meterable" && state.consumedUnits !== undefined) return state.consumedInRequest === true || state.resourceIdUsed === true;
  return true;
}

/** The MCP session, as an anonymous visitor: its calls share one meter for as long as the session lives. */
function defaultIdentity(extra: ToolExtra): IdentityRequest | undefined {
  return extra.sessionId ? { anonymousIdentifier: extra.sessionId } : undefined;
}

/**
 * What the operator must fix is said loudly — once per isolate for each message: a caller who can provoke one must not
 * be able to flood the log with it.
 */
const reported = new Set<string>();
const MAX_REPORTED = 256;

function reportOnce(key: string, message: string): void {
  if (reported.has(key) || reported.size >= MAX_REPORTED) return;
  reported.add(key);
  console.error(message);
}

function refusalKey(error: ClientError): string {
  return error.kind === "api" ? `${error.status} ${error.code}` : error.kind;
}
