/**
 * Who and where, as workflows see them: shared by every decision workflow (workflowSession.ts) and endpoint
 * workflows (endpoint.ts), so both describe a request the same way.
 */
import type { BotTag, ResolvedIdentity } from "../engine";
import type { JsonValue, WorkflowContext, WorkflowIdentity } from "../workflows/authorTypes";
import type { RequestFacts } from "./context";

export function workflowIdentity(identity: ResolvedIdentity, bot: BotTag | undefined): WorkflowIdentity {
  return {
    authType: identity.authType,
    identifier: identity.identifier,
    isAuthenticated: identity.isAuthenticated,
    // Claims come from a verified JWT's JSON payload.
    jwtClaims: identity.jwtClaims as Record<string, JsonValue>,
    userType: bot?.isVerified ? "bot" : identity.isAuthenticated ? "authenticated" : "anonymous",
    testGroup100: identity.testGroup100,
  };
}

export function workflowContext(facts: Omit<RequestFacts, "resource">, bot: BotTag | undefined): WorkflowContext {
  const cf = facts.cf ?? {};
  const text = (value: unknown) => (typeof value === "string" ? value : null);
  return {
    userAgent: facts.userAgent ?? null,
    url: facts.url ?? null,
    referer: facts.referer ?? null,
    clientIp: facts.clientIp ?? null,
    geo: { country: text(cf.country), region: text(cf.region), city: text(cf.city), continent: text(cf.continent), timezone: text(cf.timezone) },
    bot: bot ?? null,
    isVerifiedBotRequest: bot?.isVerified === true,
  };
}
