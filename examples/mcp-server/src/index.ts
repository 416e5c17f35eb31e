/**
 * A research assistant's MCP server as a Worker, its tools monetized by the platform (config.yaml): `search` is metered
 * (3 calls a month on the free plan), `summarize` and `write_report` spend AI credits priced per action (2 and 25 of
 * 20 a month), `ping` is free. A refused call answers a tool error linking to UPGRADE_URL with the offer the platform
 * shows. MCP over Streamable HTTP at POST /mcp, stateless (a server per request, as a Worker isolate keeps nothing);
 * callers are your users, each with a JWT from your identity provider (`Authorization: Bearer …`) that the platform
 * verifies (config.yaml's authMethods), so the Worker holds no signing key.
 */
import { createClient, type MonetizationClient } from "@edge-monetization/client";
import { gateTools } from "@edge-monetization/mcp";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CfWorkerJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/cfworker";
import { z } from "zod";

export interface Env {
  /** The platform's origin, e.g. http://127.0.0.1:8787 for `npm start`. */
  PLATFORM_URL: string;
  /** The environment's secret key (`sk_…`): a secret, never in wrangler.toml. */
  SECRET_KEY: string;
  /** Where a refused call sends the user; the offer's slug is added as `?offer=`. */
  UPGRADE_URL: string;
  /** What a tool call does when the platform cannot answer: "open" runs the tool, "closed" answers a tool error. */
  FAILURE_MODE?: string;
  /** A service binding to the platform when both Workers run on one account; calls skip the public internet. */
  PLATFORM?: { fetch(request: Request): Promise<Response> };
}

// One client per environment object: the platform's bindings do not change while an isolate lives.
const clients = new WeakMap<Env, MonetizationClient>();

function clientOf(env: Env): MonetizationClient {
  let client = clients.get(env);
  if (!client) {
    const platform = env.PLATFORM;
    client = createClient({
      baseUrl: env.PLATFORM_URL,
      apiKey: env.SECRET_KEY,
      // Tool calls cost money (searches, generations): when the platform cannot say, refuse unless told otherwise.
      failureMode: env.FAILURE_MODE === "open" ? "open" : "closed",
      ...(platform ? { fetch: (request: Request) => platform.fetch(request) } : {}),
    });
    clients.set(env, client);
  }
  return client;
}

/** The MCP server of one request: the gate first, then the tools (a tool registered before gateTools() is refused). */
export function researchServer(env: Env): McpServer {
  // The SDK's default JSON Schema validator (ajv) compiles code with `new Function`, which Workers forbid.
  const server = new McpServer({ name: "research-assistant", version: "1.0.0" }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  gateTools(server, {
    client: clientOf(env),
    surfaceSlug: "mcp-search",
    tools: {
      search: { property: "search.enabled" },
      summarize: { property: "ai.credits", surfaceSlug: "mcp-ai" },
      write_report: { property: "ai.credits", surfaceSlug: "mcp-ai", action: "report" },
    },
    // The caller's JWT, verified by the platform; the transport hands it over as authInfo (see fetch below).
    identity: (extra) => (extra.authInfo ? { userJwt: extra.authInfo.token } : undefined),
    upgradeUrl: (offer) => (offer ? `${env.UPGRADE_URL}?offer=${encodeURIComponent(offer.offer)}` : env.UPGRADE_URL),
  });

  server.registerTool(
    "search",
    { description: "Searches the research library", inputSchema: { query: z.string().min(1).max(200) } },
    async ({ query }) => ({ content: [{ type: "text", text: `3 papers match "${query}": Edge computing (2024), Metering at scale (2025), Paywalls that sell (2026).` }] }),
  );
  server.registerTool(
    "summarize",
    { description: "Summarizes a text in one sentence", inputSchema: { text: z.string().min(1).max(20_000) } },
    async ({ text }) => ({ content: [{ type: "text", text: `Summary: ${text.split(/(?<=[.!?])\s/)[0]}` }] }),
  );
  server.registerTool(
    "write_report",
    { description: "Writes a report on a topic", inputSchema: { topic: z.string().min(1).max(200) } },
    async ({ topic }) => ({ content: [{ type: "text", text: `# ${topic}\n\nA full report on ${topic}, with sources.` }] }),
  );
  server.registerTool("ping", { description: "Checks that the server answers" }, async () => ({ content: [{ type: "text", text: "pong" }] }));
  return server;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (new URL(request.url).pathname !== "/mcp") return new Response("Not found", { status: 404 });
    const token = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (!token) return new Response("Sign in: send Authorization: Bearer <your JWT>", { status: 401, headers: { "WWW-Authenticate": "Bearer" } });
    const server = researchServer(env);
    // Stateless: a transport per request (the SDK refuses to reuse one), JSON answers rather than an SSE stream.
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    return transport.handleRequest(request, { authInfo: { token, clientId: "bearer", scopes: [] } });
  },
};
