import type { OfferGroups, OfferView, PropertyState } from "@edge-monetization/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { DENIAL_META_KEY, type Denial, type DenialReason } from "./types";

export function denialReason(state: PropertyState | undefined): DenialReason {
  if (!state) return "unknown_property";
  if (state.reason === "insufficient_credits") return "insufficient_credits";
  if (state.type === "meterable" && state.remainingUnits === 0) return "limit_reached";
  return "off";
}

/** Every offer of every group, in the groups' slot order, each once (two groups may show the same offer). */
export function offersOf(groups: OfferGroups): OfferView[] {
  const seen = new Set<string>();
  const offers: OfferView[] = [];
  for (const group of Object.values(groups)) {
    for (const { offer } of group.slots) {
      if (!offer || seen.has(offer.offer)) continue;
      seen.add(offer.offer);
      offers.push(offer);
    }
  }
  return offers;
}

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
