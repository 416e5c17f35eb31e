/**
 * Egress from workflow isolates: closed by default; with an allow-list, requests leave only through the platform's
 * EgressGateway, which answers 403 for other hosts and forwards allowed ones.
 */
import { env, exports, RpcTarget } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { sha256Hex } from "../../../workers/lib/crypto";
import { hostAllowed } from "../../../workers/workflows/egressGateway";
import { LoaderWorkflowRunner } from "../../../workers/workflows/runner";
import { call, createOrganization, fetchWorker, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";

const PROBE = {
  type: "endpoint",
  path: "probe",
  access: "none",
  deadlineMs: 3000,
  source: `export default async (request: Request) => {
    const target = new URL(request.url).searchParams.get("target")!;
    try {
      const response = await fetch(target, { headers: { "x-probe": "1" } });
      return Response.json({ outcome: "response", status: response.status, body: await response.text() });
    } catch (error) {
      return Response.json({ outcome: "threw", error: String((error as Error).message ?? error) });
    }
  };`,
};

/**
 * Tries a raw TCP socket (cloudflare:sockets), which would reach the isolate's globalOutbound. The compiler refuses
 * the import, so this is plain JavaScript run as is: the gateway's refusal is the second line of defence.
 */
const SOCKET_CODE = `import { connect } from "cloudflare:sockets";
export default async () => {
  try {
    const socket = connect({ hostname: "api.allowed.test", port: 443 });
    await socket.opened;
    const { value, done } = await socket.readable.getReader().read();
    return { outcome: "socket", bytes: value ? value.byteLength : 0, done };
  } catch (error) {
    return { outcome: "threw", error: String(error.message ?? error) };
  }
};`;

/** Tries to steer the platform's subrequest with cf options and a forged Host. */
const STEER = {
  type: "endpoint",
  path: "steer",
  access: "none",
  deadlineMs: 3000,
  source: `export default async () => {
    const response = await fetch("https://api.allowed.test/x", {
      method: "POST", body: "payload", headers: { host: "internal.example", "x-custom": "kept" },
      cf: { resolveOverride: "internal.example", cacheEverything: true, cacheKey: "poison" },
    } as any);
    return new Response(await response.text(), { status: response.status });
  };`,
};

async function probe(environmentId: string, target: string) {
  const response = await fetchWorker(
    new Request(`http://platform.test/api/v1/envs/${environmentId}/endpoints/probe?target=${encodeURIComponent(target)}`),
  );
  expect(response.status).toBe(200);
  return (await response.json()) as { outcome: string; status?: number; body?: string; error?: string };
}

let open: TestOrganization;
let closed: TestOrganization;

beforeAll(async () => {
  open = await createOrganization("Egress allowed");
  closed = await createOrganization("Egress closed");
  for (const org of [open, closed]) {
    const document = helloWorld();
    document.workflows = { probe: PROBE, steer: STEER };
    await publish(org.adminKey, document, [org.live.id]);
  }
  const put = await call("PUT", `/api/v1/admin/environments/${open.live.id}/egress`, { key: open.live.secretKey, body: { hosts: ["api.allowed.test"] } });
  expect(put.status).toBe(200);
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("workflow egress", () => {
  it("without an allow-list, fetch from a workflow is blocked (throws)", async () => {
    const result = await probe(closed.live.id, "https://api.allowed.test/data");
    expect(result.outcome).toBe("threw");
    expect(result.error).toMatch(/not permitted to access the internet/);
  });

  it("with an allow-list, a host not on it gets the gateway's 403", async () => {
    const result = await probe(open.live.id, "https://evil.test/steal");
    expect(result).toEqual({ outcome: "response", status: 403, body: "Outbound request to evil.test is not on this environment's egress allow-list" });
  });

  it("forwards a fresh request: the workflow's cf options and Host header do not travel with it", async () => {
    let seen: { cf: unknown; host: string | null; custom: string | null; method: string; body: string } | undefined;
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).host !== "api.allowed.test") return realFetch(input, init);
      seen = { cf: (init as { cf?: unknown } | undefined)?.cf ?? (input as { cf?: unknown }).cf, host: request.headers.get("host"), custom: request.headers.get("x-custom"), method: request.method, body: await request.text() };
      return new Response("ok");
    });
    const response = await fetchWorker(new Request(`http://platform.test/api/v1/envs/${open.live.id}/endpoints/steer`, { method: "POST" }));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok");
    expect(seen).toEqual({ cf: undefined, host: null, custom: "kept", method: "POST", body: "payload" });
  });

  it("an allow-listed host is forwarded by the gateway (outbound fetch mocked)", async () => {
    const seen: string[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).host !== "api.allowed.test") return realFetch(input, init);
      seen.push(`${request.method} ${request.url} x-probe=${request.headers.get("x-probe")}`);
      return new Response("allowed data", { status: 200 });
    });
    const result = await probe(open.live.id, "https://api.allowed.test/data");
    expect(result).toEqual({ outcome: "response", status: 200, body: "allowed data" });
    expect(seen).toEqual(["GET https://api.allowed.test/data x-probe=1"]);
  });

  it("raw sockets are refused: a workflow cannot import cloudflare:sockets, and the gateway closes any socket at once (logged)", async () => {
    const document = helloWorld();
    document.workflows = { socket: { type: "endpoint", path: "socket", access: "none", source: SOCKET_CODE } };
    expect((await call("PUT", "/api/v1/admin/config", { key: closed.adminKey, body: document })).status).toBe(200);
    const version = await call("POST", "/api/v1/admin/versions", { key: closed.adminKey, body: { description: "sockets" } });
    expect(version.status).toBe(400);
    expect(version.body.details[0].message).toContain("workflows cannot import modules");

    const logs: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logs.push(String(line));
    });
    const workflow = { slug: "socket", name: "socket", type: "provisioning" as const, code: SOCKET_CODE, codeHash: await sha256Hex(SOCKET_CODE), required: false };
    const hosts = ["api.allowed.test"];
    const sharing = { organizationId: "org_sockets", environmentId: "env_sockets", egressScope: hosts.join(",") };
    const gateway = () => exports.EgressGateway({ props: { environmentId: "env_sockets", workflow: "socket", hosts } });
    const runSocket = (outbound: () => Fetcher | null) => new LoaderWorkflowRunner(env.LOADER, outbound, sharing).run({ workflow, args: {}, utils: new (class NoUtils extends RpcTarget {})(), deadlineMs: 3000 });
    expect(await runSocket(gateway)).toMatchObject({ ok: true, value: { outcome: "socket", bytes: 0, done: true } });
    expect(logs.some((line) => line.includes('"method":"CONNECT"') && line.includes('"allowed":false'))).toBe(true);
    expect(await runSocket(() => null)).toMatchObject({ ok: true, value: { outcome: "threw", error: expect.stringMatching(/not permitted to access the internet/) } });
  });

  it("hostAllowed matches exact hosts and wildcard subdomains only", () => {
    expect(hostAllowed("api.allowed.test", ["api.allowed.test"])).toBe(true);
    expect(hostAllowed("API.Allowed.Test", ["api.allowed.test"])).toBe(true);
    expect(hostAllowed("evil.test", ["api.allowed.test"])).toBe(false);
    expect(hostAllowed("api.allowed.test.evil.test", ["api.allowed.test"])).toBe(false);
    expect(hostAllowed("a.example.com", ["*.example.com"])).toBe(true);
    expect(hostAllowed("example.com", ["*.example.com"])).toBe(false);
    expect(hostAllowed("badexample.com", ["*.example.com"])).toBe(false);
    expect(hostAllowed("anything.test", [])).toBe(false);
  });
});
