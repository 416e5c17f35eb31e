/**
 * Outbound Worker of the workflows' dispatch namespace: Cloudflare routes every `fetch` a dispatched workflow script
 * makes through here, with the outbound parameter `mos` the platform set for that one call (a signed capability the
 * script itself never sees). All policy lives in the platform (workers/workflows/outbound.ts): utils calls are served
 * from the token's scope, other hosts are checked against the environment's egress allow-list. Kept this small so
 * that it never needs redeploying when the platform changes.
 */
export interface OutboundEnv {
  /** Service binding to the platform Worker's `WorkflowOutbound` entrypoint. */
  PLATFORM: { handle(request: Request, capability: unknown): Promise<Response> };
  /** The outbound parameter the platform passes with each dispatched call. */
  mos?: unknown;
}

export default {
  fetch(request: Request, env: OutboundEnv): Promise<Response> {
    return env.PLATFORM.handle(request, env.mos);
  },
};
