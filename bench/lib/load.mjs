/** One autocannon run (programmatic API), reduced to the figures the table needs. */
import autocannon from "autocannon";

/**
 * @param {object} options
 * @param {string} options.url        base URL
 * @param {object} options.request    {method, path, headers, body} or with setupRequest(req) to vary it
 * @param {(status:number, body:string)=>void} [options.onResponse]  called for each response (bodies only when set)
 */
export async function drive({ url, request, connections, durationSeconds, onResponse }) {
  const entry = { ...request };
  if (onResponse) entry.onResponse = (status, body) => onResponse(status, body);
  const instance = autocannon({
    url,
    connections,
    duration: durationSeconds,
    pipelining: 1,
    timeout: 10,
    // Latency of every response, not only 2xx: a scenario that fails fast must not look fast.
    includeErrorStats: true,
    requests: [entry],
  });
  const errorKinds = {};
  instance.on("reqError", (error) => {
    const kind = error?.code ?? error?.message ?? "error";
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  });
  const result = await instance;
  const seconds = result.duration || durationSeconds;
  return {
    requestsPerSecond: result.requests.total / seconds,
    total: result.requests.total,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    // Socket-level failures (autocannon counts timeouts among them). ECONNRESET here usually means the Worker
    // answered without reading a POST body, after which workerd closes the keep-alive connection.
    errors: result.errors,
    timeouts: result.timeouts,
    errorKinds,
    non2xx: result.non2xx,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, stats]) => [code, stats.count])),
  };
}
