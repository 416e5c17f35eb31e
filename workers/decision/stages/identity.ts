/**
 * Stage 2 — identity: exactly one identity form (anonymous, provided, JWT), the facts about the request workflows
 * will see, and the bot tag. Opens the request's workflow session when the version has workflows.
 */
import { classifyBot } from "../../engine";
import { ApiError } from "../../errors";
import { resolveIdentity } from "../../identity/resolveIdentity";
import type { CallerScope, Configured, Identified, RequestFacts } from "../context";
import type { Services } from "../services";
import { WorkflowSession } from "../workflowSession";
import { agentHeadersOf, identifyAgent } from "../agentIdentity";

export async function identify<C extends CallerScope & Configured>(services: Services, context: C): Promise<C & Identified> {
  const { prepared, environment, store, keyType, body } = context;
  const resolved = await resolveIdentity(body.identity, { keyType, authMethods: prepared.snapshot.authMethods, now: services.clock.now() });
  if (!resolved.ok) throw new ApiError(resolved.code, resolved.message);
  services.timing.mark("identity");

  const facts = requestFacts(context);
  const tagged = classifyBot({ userAgent: facts.userAgent, cf: facts.cf }, services.botVerdicts);
  // Only requests that carry a signature pay for checking one (a directory lookup, a nonce claim).
  const agentHeaders = agentHeadersOf(context);
  const agent = await identifyAgent(services, context, store, { identity: resolved.identity, bot: tagged }, agentHeaders);
  const { identity, bot } = agent;
  const workflows = prepared.snapshot.workflows.length > 0 ? new WorkflowSession(services, prepared, environment, agent.store, { identity, bot }, facts) : undefined;
  return { ...context, store: agent.store, identity, bot, jwtError: resolved.jwtError ?? null, facts, workflows, agentSignature: agent.signature, verifiedAgent: agent.verified, agentHeaders };
}

/**
 * A publishable key is used from the browser, so Cloudflare's view of this very request describes the visitor; a
 * secret key is used by the customer's server, whose own connection says nothing about the visitor and whose body
 * (`cloudflare.cf`, `http.*`, `X-MOS-User-Agent`) is trusted instead. A browser cannot forge a verified bot this way.
 */
function requestFacts({ keyType, body, transport }: CallerScope): RequestFacts {
  const trusted = keyType === "secret";
  return {
    cf: trusted ? body.cloudflare?.cf : transport.cf,
    userAgent: body.http?.userAgent ?? (trusted ? transport.forwardedUserAgent : transport.userAgent),
    url: body.http?.url,
    referer: body.http?.referer,
    clientIp: trusted ? body.http?.clientIP : transport.connectingIp,
    resource: body.resource,
  };
}
