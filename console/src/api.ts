/**
 * The console's one way to the admin API: every call carries the signed-in credential, every failure becomes an
 * `ApiProblem` with the API's error details, and a 401 ends the session (the credential was revoked or expired).
 */
import { useSession } from "./session";

export interface ProblemDetail {
  path: string;
  message: string;
}

/** An error answer of the API (`{status: "error", statusCode, code, message, details?, requestId}`), or a network failure. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ProblemDetail[];
  readonly requestId: string | undefined;
  constructor(status: number, code: string, message: string, details: ProblemDetail[] = [], requestId?: string) {
    super(message);
    this.name = "ApiProblem";
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }
}

/** Who calls: a key (`ok_…`, `sk_…`) on its own, or the operator token with the organization it acts on. */
export interface Credential {
  token: string;
  organizationId?: string;
}

export interface TextResponse {
  text: string;
  headers: Headers;
}

export interface Api {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body?: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
  /** A call whose body or answer is not JSON (the configuration document as YAML). */
  text(method: string, path: string, options?: { body?: string; contentType?: string; accept?: string; headers?: Record<string, string> }): Promise<TextResponse>;
  /** A JSON call with a body in another format, answered with JSON (applying a YAML document). */
  send<T>(method: string, path: string, body: string, contentType: string, headers?: Record<string, string>): Promise<T>;
  /** A server-sent event stream (EventSource cannot send the Authorization header); resolves when it ends or is aborted. */
  stream(path: string, onEvent: (event: string, data: unknown) => void, signal: AbortSignal): Promise<void>;
}

export function credentialHeaders(credential: Credential): Record<string, string> {
  return {
    authorization: `Bearer ${credential.token}`,
    ...(credential.organizationId ? { "x-organization-id": credential.organizationId } : {}),
  };
}

async function problemOf(response: Response): Promise<ApiProblem> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { code?: string; message?: string; details?: ProblemDetail[]; requestId?: string };
    return new ApiProblem(response.status, body.code ?? "error", body.message ?? `HTTP ${response.status}`, body.details ?? [], body.requestId);
  } catch {
    // Not the API's error shape: a proxy's or the runtime's own page (HTML, say), which says no more than its status.
    const plain = text.trim();
    const short = plain && !/^</.test(plain) && plain.length <= 300 ? `: ${plain}` : "";
    return new ApiProblem(response.status, "error", `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${short}`);
  }
}

async function call(credential: Credential, method: string, path: string, init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { method, body: init.body, signal: init.signal, headers: { ...credentialHeaders(credential), ...init.headers } });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiProblem(0, "network_error", `The platform could not be reached: ${(error as Error).message}`);
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** Asks the API who a credential is, without signing in with it (the sign-in page's check). */
export async function fetchSession<T>(credential: Credential): Promise<T> {
  const response = await call(credential, "GET", "/api/v1/admin/session", { headers: { accept: "application/json" } });
  return (await response.json()) as T;
}

/** A GET with a credential outside a session (the operator token checked by listing organizations). */
export async function fetchJson<T>(credential: Credential, path: string): Promise<T> {
  const response = await call(credential, "GET", path, { headers: { accept: "application/json" } });
  return (await response.json()) as T;
}

/** Splits a text/event-stream body into (event, data) pairs; `data` is parsed as JSON when it is JSON. */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (event: string, data: unknown) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const content = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = content;
        else if (field === "data") data.push(content);
      }
      if (data.length === 0 && event === "message") continue;
      const raw = data.join("\n");
      let parsed: unknown = raw;
      try {
        parsed = raw ? JSON.parse(raw) : null;
      } catch {
        // not JSON: hand over the text
      }
      onEvent(event, parsed);
    }
  }
}

/** An Api bound to a credential; `onUnauthorized` is told when the API refuses the credential itself (401). */
export function createApi(credential: Credential, onUnauthorized: (message: string) => void): Api {
  const guarded = async (method: string, path: string, init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal }) => {
    try {
      return await call(credential, method, path, init);
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 401) onUnauthorized(error.message);
      throw error;
    }
  };
  const jsonCall = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await guarded(method, path, {
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
    });
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    get: (path) => jsonCall("GET", path),
    post: (path, body) => jsonCall("POST", path, body ?? {}),
    put: (path, body) => jsonCall("PUT", path, body ?? {}),
    patch: (path, body) => jsonCall("PATCH", path, body ?? {}),
    delete: (path) => jsonCall("DELETE", path),
    async text(method, path, options = {}) {
      const response = await guarded(method, path, {
        body: options.body,
        headers: {
          ...(options.accept ? { accept: options.accept } : {}),
          ...(options.contentType ? { "content-type": options.contentType } : {}),
          ...options.headers,
        },
      });
      return { text: await response.text(), headers: response.headers };
    },
    async send(method, path, body, contentType, headers) {
      const response = await guarded(method, path, { body, headers: { accept: "application/json", "content-type": contentType, ...headers } });
      return (await response.json()) as never;
    },
    async stream(path, onEvent, signal) {
      const response = await guarded("GET", path, { headers: { accept: "text/event-stream" }, signal });
      if (!response.body) return;
      try {
        await readEvents(response.body, onEvent);
      } catch (error) {
        if ((error as Error).name !== "AbortError" && !signal.aborted) throw error;
      }
    },
  };
}

/** The signed-in session's Api. */
export function useApi(): Api {
  return useSession().api;
}

/** Path segment encoding for slugs and ids placed in API paths. */
export const segment = (value: string) => encodeURIComponent(value);
