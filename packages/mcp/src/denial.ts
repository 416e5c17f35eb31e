import type { PropertyState } from "@edge-monetization/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { DENIAL_META_KEY, type Denial } from "./types";

/** Why the call was refused, in words an agent can relay to its user. */
export function denialMessage(denial: Denial, state: PropertyState | undefined): string {
  const { tool, property } = denial;
  switch (denial.reason) {
    case "limit_reached":
      return `The ${tool} tool is not available: the limit of ${property} is reached for this period.`;
    case "insufficient_credits":
      return `The ${tool} tool is not available: it costs ${state?.cost ?? "more"} credits and ${state?.balance ?? "fewer"} are left.`;
    case "unknown_property":
      return `The ${tool} tool is not available: ${property} is not a property of the deployed configuration.`;
    case "off":
      return `The ${tool} tool is not included in your plan.`;
  }
}

/** A refused call: a tool error (the agent sees why and where to upgrade), with the refusal in `_meta` for hosts. */
export function deniedResult(denial: Denial, message: string, upgradeUrl: string | undefined): CallToolResult {
  const text = upgradeUrl ? `${message} Upgrade: ${upgradeUrl}` : message;
  return {
    isError: true,
    content: [{ type: "text", text }],
    _meta: { [DENIAL_META_KEY]: { tool: denial.tool, property: denial.property, reason: denial.reason, ...(upgradeUrl ? { upgradeUrl } : {}) } },
  };
}

/** A call that could not be decided (the platform unreachable and failing closed, a refused request, no identity). */
export function toolError(text: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text }] };
}
