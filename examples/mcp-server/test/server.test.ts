/**
 * The example MCP server against the real platform in-process: config.yaml applied to a new organization (its identity
 * provider replaced by a key pair made here), the Worker's own fetch called by the SDK's Streamable HTTP client with
 * the env a deployment would have, the platform reached through a service-binding-like PLATFORM.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { CfWorkerJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/cfworker";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { createOrganization, fetchWorker, publish, type TestOrganization } from "../../../test/support/api";
import configYaml from "../config.yaml?raw";
import worker, { type Env } from "../src/index";

let org: TestOrganization;
let env: Env;
let signingKey: CryptoKey;

beforeAll(async () => {
  org = await createOrganization("MCP server example");
  const keys = await generateKeyPair("RS256", { extractable: true });
  signingKey = keys.privateKey;
  const document = parse(configYaml);
  document.authMethods = { idp: { publicKey: await exportSPKI(keys.publicKey), algorithms: ["RS256"], identifierClaim: "sub" } };
  await publish(org.adminKey, document, [org.live.id]);
  env = { PLATFORM_URL: "http://platform.test", SECRET_KEY: org.live.secretKey, UPGRADE_URL: "https://research.example/pricing", FAILURE_MODE: "closed", PLATFORM: { fetch: fetchWorker } };
});

const tokenFor = (user: string) => new SignJWT({ sub: user }).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(signingKey);

/** An agent signed in as `user`, talking to the Worker over Streamable HTTP. */
async function agentFor(user: string, workerEnv: Env = env) {
  const transport = new StreamableHTTPClientTransport(new URL("http://127.0.0.1:8789/mcp"), {
    fetch: (url, init) => worker.fetch(new Request(url, init), workerEnv),
    requestInit: { headers: { authorization: `Bearer ${await tokenFor(user)}` } },
  });
  const agent = new Client({ name: "research-agent", version: "1.0.0" }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  await agent.connect(transport);
  return agent;
}

const call = async (agent: Client, name: string, args: Record<string, unknown> = {}) => (await agent.callTool({ name, arguments: args })) as CallToolResult;
const textOf = (result: CallToolResult) => result.content.map((item) => (item.type === "text" ? item.text : "")).join("");
const newUser = () => `user-${crypto.randomUUID()}`;

describe("examples/mcp-server", () => {
  it("lists its tools, gated or not", async () => {
    const agent = await agentFor(newUser());
    const { tools } = await agent.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(["ping", "search", "summarize", "write_report"]);
  });

  it("runs three searches for a free user, then answers a tool error linking to the upgrade offer", async () => {
    const agent = await agentFor(newUser());
    for (const query of ["edge", "meters", "paywalls"]) {
      const result = await call(agent, "search", { query });
      expect(result.isError, query).toBeFalsy();
      expect(textOf(result)).toContain(`match "${query}"`);
    }
    const refused = await call(agent, "search", { query: "offers" });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe(
      "The search tool is not available: the limit of search.enabled is reached for this period. Upgrade: https://research.example/pricing?offer=pro-monthly",
    );
    // Each user has their own meter, whatever connection they come on.
    expect((await call(await agentFor(newUser()), "search", { query: "edge" })).isError).toBeFalsy();
  });

  it("charges AI credits per action: a report the balance does not cover is refused and costs nothing", async () => {
    const user = newUser();
    const agent = await agentFor(user);
    // 20 credits: a report (25) is refused outright.
    const refused = await call(agent, "write_report", { topic: "Metering" });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe("The write_report tool is not available: it costs 25 credits and 20 are left. Upgrade: https://research.example/pricing?offer=pro-monthly");
    // Nothing was spent: ten summaries (2 each) fit, the eleventh does not.
    for (let index = 0; index < 10; index++) expect((await call(agent, "summarize", { text: `Sentence ${index}. More.` })).isError, `summary ${index}`).toBeFalsy();
    expect(textOf(await call(agent, "summarize", { text: "One more." }))).toBe(
      "The summarize tool is not available: it costs 2 credits and 0 are left. Upgrade: https://research.example/pricing?offer=pro-monthly",
    );
  });

  it("answers ping without asking the platform", async () => {
    const unreachable: Env = { ...env, PLATFORM: { fetch: () => Promise.reject(new TypeError("connection refused")) } };
    const agent = await agentFor(newUser(), unreachable);
    expect(textOf(await call(agent, "ping"))).toBe("pong");
    // A gated tool, with the platform unreachable and FAILURE_MODE closed, asks to retry.
    expect(textOf(await call(agent, "search", { query: "edge" }))).toBe("The search tool is unavailable: its access could not be checked. Retry in a moment.");
  });

  it("answers a lone JSON-RPC tools/call as the README's curl sends it", async () => {
    const token = await tokenFor(newUser());
    const response = await worker.fetch(
      new Request("http://127.0.0.1:8789/mcp", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "search", arguments: { query: "edge" } } }),
      }),
      env,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await response.json()) as any;
    expect(body).toMatchObject({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: expect.stringContaining('match "edge"') }] } });
  });

  it("answers 401 to a caller without a token", async () => {
    const response = await worker.fetch(new Request("http://127.0.0.1:8789/mcp", { method: "POST", body: "{}" }), env);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe("Bearer");
  });
});
