/**
 * A webhook receiver for tests: it records every request it gets (method, path, headers, body) per path and answers
 * 204, or fails the next N requests to a path when told to. Test files run in parallel against one server, so each
 * test posts to a path of its own and reads only that path's requests.
 *
 * `/__control/…` is the tests' side:
 *   POST /__control/fail   {path, times, status?, bodyBytes?}  — the next `times` requests to `path` get `status`
 *                          (default 500), with a body of `bodyBytes` bytes when given (a receiver that answers at length)
 *   GET  /__control/requests?path=/…              — what `path` received, oldest first
 *
 * Run on its own with `node test/webhook-receiver/server.mjs [port]`.
 */
import { createServer } from "node:http";

export function createWebhookReceiver() {
  /** @type {Map<string, {method: string, path: string, headers: Record<string, string>, body: string, status: number}[]>} */
  const received = new Map();
  /** @type {Map<string, {times: number, status: number, bodyBytes?: number}>} */
  const failing = new Map();

  const readBody = (request) =>
    new Promise((resolve, reject) => {
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      request.on("error", reject);
    });
  const answer = (response, status, body) => {
    response.writeHead(status, body === undefined ? {} : { "content-type": "application/json" });
    response.end(body === undefined ? undefined : JSON.stringify(body));
  };

  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://receiver.local");
    const body = await readBody(request);
    if (url.pathname === "/__control/fail" && request.method === "POST") {
      const { path, times, status = 500, bodyBytes } = JSON.parse(body);
      failing.set(path, { times, status, bodyBytes });
      return answer(response, 200, { ok: true });
    }
    if (url.pathname === "/__control/requests" && request.method === "GET") {
      return answer(response, 200, { requests: received.get(url.searchParams.get("path") ?? "") ?? [] });
    }
    const failure = failing.get(url.pathname);
    const status = failure && failure.times > 0 ? failure.status : 204;
    if (failure && failure.times > 0) failure.times -= 1;
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : (value ?? "")]));
    const list = received.get(url.pathname) ?? [];
    list.push({ method: request.method ?? "", path: url.pathname, headers, body, status });
    received.set(url.pathname, list);
    if (status !== 204 && failure?.bodyBytes) {
      response.writeHead(status, { "content-type": "text/plain" });
      return response.end("e".repeat(failure.bodyBytes));
    }
    return status === 204 ? answer(response, 204) : answer(response, status, { error: "told to fail" });
  });

  return {
    server,
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve) => server.listen(port, host, () => resolve(`http://${host}:${server.address().port}`)));
    },
    close() {
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const receiver = createWebhookReceiver();
  receiver.listen(Number(process.argv[2] ?? 0)).then((url) => console.log(`webhook receiver on ${url}`));
}
