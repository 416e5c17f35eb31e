/**
 * @edge-monetization/mcp — tool gating for MCP servers built with the TypeScript SDK's `McpServer` (and so for
 * Cloudflare's `McpAgent`, which wraps one): every call of a gated tool is checked and metered by the platform, and a
 * refused call answers a tool error that says why and links to the upgrade.
 */
export { gateTools } from "./gate";
export { DENIAL_META_KEY } from "./types";
export type { Denial, DenialReason, GateToolsOptions, IdentityRequest, OfferView, PropertyPath, Resource, ToolExtra, ToolGate } from "./types";
