/**
 * Tool gating against the real platform in-process: the client's fetch is the Worker's own fetch handler, the test
 * file owns its organization (test/tools.yaml: 3 tool calls a month on tools.enabled, 20 credits priced per action, an
 * and an MCP client talks to each gated server over the SDK's in-memory transport, as an agent would.
 */
import { createClient, type ClientOptions, type IdentityRequest } from "@edge-monetization/client";
import { DENIAL_META_KEY, gateTools, type GateToolsOptions } from "@edge-monetization/mcp";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { CfWorkerJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/cfworker";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createOrganization, fetchWorker, publish, type TestOrganization } from "../../../test/support/api";
import { expectConsoleError } from "../../../test/support/console";
import toolsYaml from "./tools.yaml?raw";

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("MCP tool gating");
  await publish(org.adminKey, parse(toolsYaml), [org.live.id]);
});

function clientFor(overrides: Partial<ClientOptions> = {}) {
  return createClient({ baseUrl: "http://platform.test", apiKey: org.live.secretKey, failureMode: "closed", fetch: fetchWorker, ...overrides });
}

/** The platform's fetch, recording the decision bodies the gate sends. */
function recordingPlatform() {
  const bodies: any[] = [];
  const fetch = async (request: Request) => {
    bodies.push(await request.clone().json());
    return fetchWorker(request);
  };
  return { bodies, fetch };
}

/** A platform that cannot be reached. */
const unreachable = async (): Promise<Response> => {
  throw new TypeError("connection refused");
};

const upgradeUrl: GateToolsOptions["upgradeUrl"] = (offer, denial) =>
  offer ? `https://tools.example/upgrade?offer=${offer.offer}&tool=${denial.tool}` : `https://tools.example/pricing?reason=${denial.reason}`;

/**
 * An MCP server with gated tools — search (a metered call), summarize and draw (credits: 2 and 50 by action), archive
 * (off on the free plan, no offers) — and an ungated echo; `runs` lists the handlers that ran.
 */
function toolServer(options: Partial<GateToolsOptions> = {}) {
  const server = new McpServer({ name: "gated-tools", version: "1.0.0" }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  const runs: string[] = [];
  gateTools(server, {
    client: clientFor(),
    surfaceSlug: "tool-calls",
    tools: {
      search: { property: "tools.enabled" },
      summarize: { property: "tools.credits", surfaceSlug: "tool-credits" },
      draw: { property: "tools.credits", surfaceSlug: "tool-credits", action: "generate-image" },
      archive: { property: "archive.enabled", surfaceSlug: "tool-archive" },
    },
    upgradeUrl,
    ...options,
  });
  server.registerTool("search", { description: "Searches the web", inputSchema: { query: z.string() } }, async ({ query }) => {
    runs.push("search");
    return { content: [{ type: "text", text: `results for ${query}` }] };
  });
  server.registerTool("summarize", { description: "Summarizes a text", inputSchema: { text: z.string() } }, async ({ text }) => {
    runs.push("summarize");
    return { content: [{ type: "text", text: text.slice(0, 10) }] };
  });
  server.registerTool("draw", { description: "Draws an image" }, async () => {
    runs.push("draw");
    return { content: [{ type: "text", text: "an image" }] };
  });
  server.registerTool("archive", { description: "Archives a page" }, async () => {
    runs.push("archive");
    return { content: [{ type: "text", text: "archived" }] };
  });
  server.registerTool("echo", { description: "Echoes its input", inputSchema: { text: z.string() } }, async ({ text }) => {
    runs.push("echo");
    return { content: [{ type: "text", text }] };
  });
  return { server, runs };
}

/**
 * An agent connected to `server` over the in-memory transport; the session id is what the server's transport reports
 * (null: none, as over stdio).
 */
async function agentOf(server: McpServer, sessionId: string | null = `session-${crypto.randomUUID()}`) {
  const [agentTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  serverTransport.sessionId = sessionId ?? undefined;
  await server.connect(serverTransport);
  const agent = new Client({ name: "test-agent", version: "1.0.0" }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  await agent.connect(agentTransport);
  return { agent, sessionId };
}

const call = async (agent: Client, name: string, args: Record<string, unknown> = {}) => (await agent.callTool({ name, arguments: args })) as CallToolResult;
const textOf = (result: CallToolResult) => result.content.map((item) => (item.type === "text" ? item.text : "")).join("");

async function creditsOf(identity: IdentityRequest) {
  const result = await clientFor().accessCheck({ identity });
  if (!result.ok) throw new Error(`access check failed: ${result.error.message}`);
  return result.data.features.tools?.properties.credits?.balance;
}

describe("a metered tool", () => {
  it("runs 3 calls, then answers a tool error with the reason and the upgrade link to the first offer", async () => {
    const { server, runs } = toolServer();
    const { agent } = await agentOf(server);
    for (const query of ["one", "two", "three"]) {
      const result = await call(agent, "search", { query });
      expect(result.isError).toBeFalsy();
      expect(textOf(result)).toBe(`results for ${query}`);
    }
    const refused = await call(agent, "search", { query: "four" });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe(
      "The search tool is not available: the limit of tools.enabled is reached for this period. Upgrade: https://tools.example/upgrade?offer=pro-monthly&tool=search",
    );
    expect(refused._meta?.[DENIAL_META_KEY]).toEqual({
      tool: "search",
      property: "tools.enabled",
      reason: "limit_reached",
      upgradeUrl: "https://tools.example/upgrade?offer=pro-monthly&tool=search",
    });
    expect(runs).toEqual(["search", "search", "search"]);
  });

  it("consumes nothing for a call the SDK refuses for its arguments: the handler, and the gate, never run", async () => {
    const platform = recordingPlatform();
    const { server, runs } = toolServer({ client: clientFor({ fetch: platform.fetch }) });
    const { agent } = await agentOf(server);
    const invalid = await call(agent, "search", { query: 42 });
    expect(invalid.isError).toBe(true);
    expect(textOf(invalid)).toMatch(/Input validation error/);
    expect(platform.bodies).toEqual([]);
    expect(runs).toEqual([]);
  });

  it("leaves the link out without upgradeUrl, and passes null when the decision shows no offer", async () => {
    const withoutLink = toolServer({ upgradeUrl: undefined });
    const first = await agentOf(withoutLink.server);
    const offList = await call(first.agent, "archive");
    expect(offList.isError).toBe(true);
    expect(textOf(offList)).toBe("The archive tool is not included in your plan.");

    const withLink = toolServer();
    const second = await agentOf(withLink.server);
    const refused = await call(second.agent, "archive");
    expect(textOf(refused)).toBe("The archive tool is not included in your plan. Upgrade: https://tools.example/pricing?reason=off");
    expect(withoutLink.runs).toEqual([]);
    expect(withLink.runs).toEqual([]);
  });
});

describe("a tool paid for with credits", () => {
  it("charges each call its action's price, and refuses a call the balance does not cover without spending anything", async () => {
    const { server, runs } = toolServer();
    const { agent, sessionId } = await agentOf(server);
    const identity = { anonymousIdentifier: sessionId! };
    expect(await creditsOf(identity)).toBe(20);

    expect((await call(agent, "summarize", { text: "A long text to summarize" })).isError).toBeFalsy();
    expect(await creditsOf(identity)).toBe(18);
    expect((await call(agent, "summarize", { text: "Another text" })).isError).toBeFalsy();
    expect(await creditsOf(identity)).toBe(16);

    // draw is priced by its configured action, generate-image: 50 credits.
    const refused = await call(agent, "draw");
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe("The draw tool is not available: it costs 50 credits and 16 are left. Upgrade: https://tools.example/upgrade?offer=pro-monthly&tool=draw");
    expect(refused._meta?.[DENIAL_META_KEY]).toMatchObject({ property: "tools.credits", reason: "insufficient_credits" });
    expect(await creditsOf(identity)).toBe(16);
    expect(runs).toEqual(["summarize", "summarize"]);
  });
});

describe("the decision's resource", () => {
  it("comes from the tool's resource option, with the validated arguments: it prices the call with the multipliers", async () => {
    const platform = recordingPlatform();
    const server = new McpServer({ name: "translator", version: "1.0.0" }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
    gateTools(server, {
      client: clientFor({ fetch: platform.fetch }),
      surfaceSlug: "tool-credits",
      tools: {
        translate: {
          property: "tools.credits",
          resource: (args) => {
            const { language, premium } = args as { language: string; premium: boolean };
            return { id: `translation:${language}`, meta: { tags: premium ? ["premium"] : [] } };
          },
        },
      },
    });
    server.registerTool("translate", { inputSchema: { language: z.string(), premium: z.boolean().default(false) } }, async ({ language }) => ({
      content: [{ type: "text", text: `translated to ${language}` }],
    }));
    const { agent, sessionId } = await agentOf(server);
    expect(textOf(await call(agent, "translate", { language: "fr" }))).toBe("translated to fr");
    expect(await creditsOf({ anonymousIdentifier: sessionId! })).toBe(19);
    expect(textOf(await call(agent, "translate", { language: "de", premium: true }))).toBe("translated to de");
    // No action price for translate: the base (1), times 3 for the premium tag.
    expect(await creditsOf({ anonymousIdentifier: sessionId! })).toBe(16);
    expect(platform.bodies.map((body) => body.resource)).toEqual([
      { id: "translation:fr", meta: { tags: [] } },
      { id: "translation:de", meta: { tags: ["premium"] } },
    ]);
  });
});

describe("an unknown property", () => {
  it("refuses every call, shows no offer, and tells the operator once", async () => {
    const logged = expectConsoleError("gated by tools.typo, which the deployed configuration does not have");
    const { server, runs } = toolServer({ tools: { spellcheck: { property: "tools.typo" } } });
    server.registerTool("spellcheck", {}, async () => {
      runs.push("spellcheck");
      return { content: [] };
    });
    const { agent } = await agentOf(server);
    for (let index = 0; index < 2; index++) {
      const refused = await call(agent, "spellcheck");
      expect(textOf(refused)).toBe(
        "The spellcheck tool is not available: tools.typo is not a property of the deployed configuration. Upgrade: https://tools.example/pricing?reason=unknown_property",
      );
    }
    expect(runs).toEqual([]);
    expect(logged.lines).toHaveLength(1);
  });
});

describe("a tool whose surface does not consume its property", () => {
  it("is refused — every call would be free — and the operator is told once", async () => {
    const logged = expectConsoleError("does not consume it");
    const { server, runs } = toolServer({
      tools: { summarize: { property: "tools.credits", surfaceSlug: "tool-archive" }, search: { property: "tools.enabled", surfaceSlug: "tool-credits" } },
    });
    const { agent, sessionId } = await agentOf(server);
    for (const [tool, args] of [["summarize", { text: "a long text" }], ["summarize", { text: "again" }]] as const) {
      const result = await call(agent, tool, args);
      expect(result.isError, tool).toBe(true);
      expect(textOf(result)).toBe(`The ${tool} tool is not available: its use could not be counted.`);
    }
    expect(await creditsOf({ anonymousIdentifier: sessionId! })).toBe(20);
    // A metered property on a surface that consumes something else: refused too (what that surface consumes, it did).
    const search = await call(agent, "search", { query: "q" });
    expect(textOf(search)).toBe("The search tool is not available: its use could not be counted.");
    expect(runs).toEqual([]);
    expect(logged.lines).toHaveLength(2);
  });
});

describe("an ungated tool", () => {
  it("runs as it would without gating: no decision, nothing consumed", async () => {
    const platform = recordingPlatform();
    const { server, runs } = toolServer({ client: clientFor({ fetch: platform.fetch }) });
    const { agent } = await agentOf(server);
    for (let index = 0; index < 5; index++) expect(textOf(await call(agent, "echo", { text: `hello ${index}` }))).toBe(`hello ${index}`);
    expect(platform.bodies).toEqual([]);
    expect(runs).toHaveLength(5);
  });
});

describe("the platform unreachable", () => {
  it("runs the tool when the client fails open", async () => {
    const { server, runs } = toolServer({ client: clientFor({ fetch: unreachable, failureMode: "open", retries: 0 }) });
    const { agent } = await agentOf(server);
    const result = await call(agent, "search", { query: "open" });
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toBe("results for open");
    expect(runs).toEqual(["search"]);
  });

  it("answers a tool error asking to retry when the client fails closed, and does not run the tool", async () => {
    const { server, runs } = toolServer({ client: clientFor({ fetch: unreachable, failureMode: "closed", retries: 0 }) });
    const { agent } = await agentOf(server);
    const result = await call(agent, "search", { query: "closed" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe("The search tool is unavailable: its access could not be checked. Retry in a moment.");
    expect(runs).toEqual([]);
  });

  it("refuses, even failing open, when the platform refuses the request (a revoked key), and logs it for the operator", async () => {
    const logged = expectConsoleError("the platform refused the decision for the search tool: 401");
    const { server, runs } = toolServer({ client: clientFor({ apiKey: `sk_${org.live.id}_not-a-real-secret`, failureMode: "open" }) });
    const { agent } = await agentOf(server);
    const result = await call(agent, "search", { query: "revoked" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^The search tool could not check your access \(\w+\)\.$/);
    expect(runs).toEqual([]);
    expect(logged.lines).toHaveLength(1);
  });
});

describe("identity", () => {
  it("decides for the MCP session by default: each session has its own meter", async () => {
    const platform = recordingPlatform();
    const { server } = toolServer({ client: clientFor({ fetch: platform.fetch }) });
    const { agent, sessionId } = await agentOf(server);
    for (const query of ["a", "b", "c"]) expect((await call(agent, "search", { query })).isError).toBeFalsy();
    expect((await call(agent, "search", { query: "d" })).isError).toBe(true);
    expect(platform.bodies.map((body) => body.identity)).toEqual(Array(4).fill({ anonymousIdentifier: sessionId }));
    expect(platform.bodies[0]).toEqual({ identity: { anonymousIdentifier: sessionId }, surfaceSlug: "tool-calls", action: "search" });

    const other = toolServer();
    const fresh = await agentOf(other.server);
    expect((await call(fresh.agent, "search", { query: "e" })).isError).toBeFalsy();
  });

  it("decides for the identity the option gives: one user's sessions share one meter", async () => {
    const user = `user-${crypto.randomUUID()}@example.com`;
    const identity = (extra: { sessionId?: string }) => (extra.sessionId?.startsWith("session-") ? { userIdentifier: user } : undefined);
    const first = toolServer({ identity });
    const firstAgent = await agentOf(first.server);
    for (const query of ["a", "b", "c"]) expect((await call(firstAgent.agent, "search", { query })).isError).toBeFalsy();

    const second = toolServer({ identity });
    const secondAgent = await agentOf(second.server);
    const refused = await call(secondAgent.agent, "search", { query: "d" });
    expect(refused._meta?.[DENIAL_META_KEY]).toMatchObject({ reason: "limit_reached" });
    expect(second.runs).toEqual([]);

    // Undefined from the option falls back to the session.
    const third = toolServer({ identity });
    const thirdAgent = await agentOf(third.server, `other-${crypto.randomUUID()}`);
    expect((await call(thirdAgent.agent, "search", { query: "e" })).isError).toBeFalsy();
  });

  it("refuses a call without a session when no identity option says who calls, and logs why", async () => {
    const logged = expectConsoleError("called without an MCP session id");
    const { server, runs } = toolServer({ tools: { "lookup-without-session": { property: "tools.enabled" } } });
    server.registerTool("lookup-without-session", { description: "Looks up" }, async () => {
      runs.push("lookup");
      return { content: [{ type: "text", text: "found" }] };
    });
    const { agent } = await agentOf(server, null);
    const result = await call(agent, "lookup-without-session");
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe("The lookup-without-session tool could not tell who is calling it, so it cannot check your access.");
    expect(runs).toEqual([]);
    expect(logged.lines).toHaveLength(1);
  });
});

describe("registration", () => {
  it("keeps a tool gated when its handler is replaced with update({ callback })", async () => {
    const server = new McpServer({ name: "updated", version: "1.0.0" });
    gateTools(server, { client: clientFor(), surfaceSlug: "tool-archive", tools: { archive: { property: "archive.enabled" } } });
    const archive = server.registerTool("archive", { description: "Archives" }, async () => ({ content: [{ type: "text", text: "v1" }] }));
    archive.update({ callback: async () => ({ content: [{ type: "text", text: "v2" }] }) });
    const { agent } = await agentOf(server);
    const result = await call(agent, "archive");
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe("The archive tool is not included in your plan.");
  });

  it("gates tools registered with the deprecated tool() too", async () => {
    const server = new McpServer({ name: "legacy", version: "1.0.0" });
    gateTools(server, { client: clientFor(), surfaceSlug: "tool-archive", tools: { archive: { property: "archive.enabled" } } });
    server.tool("archive", "Archives", async () => ({ content: [{ type: "text", text: "archived" }] }));
    const { agent } = await agentOf(server);
    expect(textOf(await call(agent, "archive"))).toBe("The archive tool is not included in your plan.");
  });

  it("refuses to rename an ungated tool onto a gated name (it would run under that name with no decision)", () => {
    const server = new McpServer({ name: "renamed", version: "1.0.0" });
    gateTools(server, { client: clientFor(), surfaceSlug: "tool-archive", tools: { archive: { property: "archive.enabled" } } });
    const free = server.registerTool("free", { description: "Free" }, async () => ({ content: [{ type: "text", text: "free" }] }));
    expect(() => free.update({ name: "archive" })).toThrow(/archive is gated/);
    free.update({ name: "still-free" });
  });

  it("refuses what would leave a gated tool ungated, and malformed gates", () => {
    const client = clientFor();
    const early = new McpServer({ name: "early", version: "1.0.0" });
    early.registerTool("search", {}, async () => ({ content: [] }));
    expect(() => gateTools(early, { client, surfaceSlug: "tool-calls", tools: { search: { property: "tools.enabled" } } })).toThrow(/search registered before gateTools/);

    const twice = gateTools(new McpServer({ name: "twice", version: "1.0.0" }), { client, surfaceSlug: "tool-calls", tools: {} });
    expect(() => gateTools(twice, { client, surfaceSlug: "tool-calls", tools: {} })).toThrow(/already called/);

    const tasks = gateTools(new McpServer({ name: "tasks", version: "1.0.0" }), { client, surfaceSlug: "tool-calls", tools: { render: { property: "tools.enabled" } } });
    expect(() => tasks.experimental.tasks.registerToolTask("render", {}, { createTask: async () => ({}) as never, getTask: async () => ({}) as never, getTaskResult: async () => ({}) as never })).toThrow(/task-based/);

    const fresh = () => new McpServer({ name: "fresh", version: "1.0.0" });
    expect(() => gateTools(fresh(), { client, surfaceSlug: "tool-calls", tools: { search: { property: "calls" as never } } })).toThrow(/feature\.property/);
    expect(() => gateTools(fresh(), { client, surfaceSlug: "tool-calls", tools: { ["t".repeat(101)]: { property: "tools.enabled" } } })).toThrow(/set action/);
    expect(() => gateTools(fresh(), { client, surfaceSlug: "", tools: {} })).toThrow(/surfaceSlug/);
  });
});
