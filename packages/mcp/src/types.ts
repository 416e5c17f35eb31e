import type { DenialReason, IdentityRequest, MonetizationClient, OfferView, PropertyPath, Resource } from "@edge-monetization/client";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";

export type { IdentityRequest, OfferView, PropertyPath, Resource };

/** What the SDK hands a tool handler besides its arguments: `sessionId`, `authInfo`, `signal`, `requestInfo`, … */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** How one tool is checked and metered. */
export interface ToolGate {
  /**
   * The property that grants the tool, `"feature.property"`: a metered property the surface consumes (one unit per
   * call), or a credits property the surface consumes (charged the price of `action`).
   */
  property: PropertyPath;
  /** The action that prices the call for a credits property (its `costs.actions`). Default: the tool's name. */
  action?: string;
  /** The surface this tool's calls are decided with, when not the default one (a surface consumes all it lists). */
  surfaceSlug?: string;
  /**
   * The resource of the decision, from the call's (validated) arguments: for a credits property's multipliers
   * (`meta.type`, `meta.tags`), or a unique-resources meter (`id`). Default: none.
   */
  resource?: (args: unknown, extra: ToolExtra) => Resource | undefined;
}

export interface GateToolsOptions {
  /** The platform client (`createClient` from @edge-monetization/client, a secret key); its `failureMode` applies. */
  client: MonetizationClient;
  /** The surface every gated call is decided with, unless its tool names another: it must consume the tools' properties. */
  surfaceSlug: string;
  /** The gated tools, by name. A tool not listed here runs as it would without gating. */
  tools: Record<string, ToolGate>;
  /**
   * Who is calling. Default: the MCP session (`{ anonymousIdentifier: extra.sessionId }`); a call without a session
   * (stdio, stateless HTTP) and without this option is refused. Returning undefined falls back to the default.
   */
  identity?: (extra: ToolExtra) => IdentityRequest | undefined | Promise<IdentityRequest | undefined>;
  /**
   * The link a refused call points the caller to, given the first offer the decision shows (or null when it shows
   * none) and the refusal. Returning undefined leaves the link out. Default: no link.
   */
  upgradeUrl?: (offer: OfferView | null, denial: Denial) => string | undefined;
}

/** Why a call was refused. */
export type { DenialReason };

/** A refused call, as `upgradeUrl` receives it (and `_meta` carries it, without the offers). */
export interface Denial {
  tool: string;
  property: PropertyPath;
  reason: DenialReason;
  /** Every offer the decision shows, across its offer groups, in slot order (empty for an unknown property). */
  offers: OfferView[];
}

/** The `_meta` key of a refused call's result: `{ tool, property, reason, upgradeUrl? }`, for a host that shows a button. */
export const DENIAL_META_KEY = "edge-monetization/denial";
