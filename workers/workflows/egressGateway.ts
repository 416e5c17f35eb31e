/**
 * The only way out of a workflow isolate: its `globalOutbound` is this entrypoint (through `ctx.exports`), bound to
 * the environment's allow-list. Requests to other hosts get a 403 before they leave; every attempt is logged.
 */
import { WorkerEntrypoint } from "cloudflare:workers";

export interface EgressProps {
  environmentId: string;
  workflow: string;
  hosts: string[];
}

/** `api.example.com` matches itself; `*.example.com` matches its subdomains (not the apex). */
export function hostAllowed(host: string, allowList: readonly string[]): boolean {
  const candidate = host.toLowerCase();
  return allowList.some((entry) => {
    const pattern = entry.toLowerCase();
    return pattern.startsWith("*.") ? candidate.endsWith(pattern.slice(1)) && candidate.length > pattern.length - 1 : candidate === pattern;
  });
}

/** Forwards one outbound request of a workflow if its host is allow-listed (logged either way), else answers 403. */
export async function forwardEgress(request: Request, { hosts, environmentId, workflow }: EgressProps): Promise<Response> {
  const url = new URL(request.url);
  const allowed = (url.protocol === "https:" || url.protocol === "http:") && hostAllowed(url.host, hosts);
  console.log(JSON.stringify({ event: "workflow_egress", environmentId, workflow, method: request.method, host: url.host, allowed }));
  if (!allowed) {
    return new Response(`Outbound request to ${url.host} is not on this environment's egress allow-list`, { status: 403 });
  }
  // A fresh request, not the workflow's: its `cf` options (resolveOverride, cache keys) and a forged Host would
  // otherwise travel with the platform's own, trusted subrequest. Redirects are handed back to the workflow rather
  // than followed: a redirect from an allowed host to another host would otherwise leave the allow-list; a workflow
  // that follows one comes back through this gateway.
  const headers = new Headers(request.headers);
  for (const name of STRIPPED_HEADERS) headers.delete(name);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  return fetch(url.toString(), { method: request.method, headers, body: hasBody ? request.body : null, redirect: "manual" });
}

/** Headers a workflow may not set on the platform's behalf. */
const STRIPPED_HEADERS = ["host", "cf-connecting-ip", "x-forwarded-for", "x-real-ip", "cf-worker", "cdn-loop"];

export class EgressGateway extends WorkerEntrypoint<Env, EgressProps> {
  override fetch(request: Request): Promise<Response> {
    return forwardEgress(request, this.ctx.props);
  }

  /**
   * Raw TCP (`connect()` from cloudflare:sockets) reaches the isolate's globalOutbound too. The allow-list is about
   * HTTP hosts and the gateway cannot see where a socket was headed, so sockets are refused: closed at once, logged.
   */
  override async connect(socket: Socket): Promise<void> {
    const { environmentId, workflow } = this.ctx.props;
    console.log(JSON.stringify({ event: "workflow_egress", environmentId, workflow, method: "CONNECT", allowed: false }));
    await socket.close();
  }
}
