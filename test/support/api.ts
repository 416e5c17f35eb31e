/** Helpers for integration tests: call the Worker in-process and create isolated organizations. */
import { env } from "cloudflare:workers";
import worker from "../../workers/index";
import { trackedExecutionContext } from "./background";

export { waitForBackgroundWork } from "./background";

export const OPERATOR = env.OPERATOR_TOKEN;

export interface CallOptions {
  key?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  body: any;
  headers: Headers;
}

export function call(method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
  return callThrough(fetchWorker, method, path, options);
}

/** A request to `fetcher` (the Worker, or an app built with other services), its body parsed when it is JSON. */
export async function callThrough(fetcher: (request: Request) => Promise<Response>, method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetcher(new Request(`http://platform.test${path}`, { method, headers, body }));
  const text = await textUnlessStream(response);
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (YAML export, HTML page): keep the text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/**
 * The body of a response, or "" for an event stream (a live tail), which never ends by itself: it is cancelled, and
 * its status and headers are what a caller judges.
 */
export async function textUnlessStream(response: Response): Promise<string> {
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) {
    await response.body?.cancel();
    return "";
  }
  return response.text();
}

/**
 * Calls the Worker's fetch handler in-process with an execution context of its own, so what it leaves running after
 * the response can be awaited (waitForBackgroundWork) instead of slept on.
 */
export async function fetchWorker(request: Request): Promise<Response> {
  return worker.fetch(request, env, trackedExecutionContext());
}

export interface TestOrganization {
  id: string;
  /** The organization's admin key (`ok_…`): configuration writes, versions, deploys anywhere, environments. */
  adminKey: string;
  preview: { id: string; secretKey: string; publishableKey: string };
  live: { id: string; secretKey: string; publishableKey: string };
}

export async function createOrganization(name = "Test org"): Promise<TestOrganization> {
  const { status, body } = await call("POST", "/api/v1/admin/organizations", { key: OPERATOR, body: { name } });
  if (status !== 201) throw new Error(`createOrganization failed: ${status} ${JSON.stringify(body)}`);
  const environment = (slug: string) => {
    const found = body.environments.find((candidate: { slug: string }) => candidate.slug === slug);
    const keyOf = (type: string) => body.keys.find((key: { environmentId: string; type: string }) => key.environmentId === found.id && key.type === type).key;
    return { id: found.id, secretKey: keyOf("secret"), publishableKey: keyOf("publishable") };
  };
  return { id: body.organization.id, adminKey: body.organizationKeys[0].key, preview: environment("preview"), live: environment("live") };
}

/**
 * Applies a document, creates a version and deploys it to the given environments. Returns the version id. Writing the
 * configuration needs an organization key (`org.adminKey`) or the operator token with X-Organization-Id.
 */
export async function publish(key: string, document: unknown, environmentIds: string[]): Promise<string> {
  const applied = await call("PUT", "/api/v1/admin/config", { key, body: document });
  if (applied.status !== 200) throw new Error(`apply failed: ${applied.status} ${JSON.stringify(applied.body)}`);
  const version = await call("POST", "/api/v1/admin/versions", { key, body: { description: "test" } });
  if (version.status !== 201) throw new Error(`version failed: ${version.status} ${JSON.stringify(version.body)}`);
  for (const environmentId of environmentIds) {
    const deployed = await call("POST", `/api/v1/admin/environments/${environmentId}/deployments`, { key, body: { versionId: version.body.id } });
    if (deployed.status !== 201) throw new Error(`deploy failed: ${deployed.status} ${JSON.stringify(deployed.body)}`);
  }
  return version.body.id;
}
