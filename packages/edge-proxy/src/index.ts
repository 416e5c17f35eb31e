/**
 * @edge-monetization/edge-proxy: a Cloudflare Worker in front of your site. Deployed as is, it reads its settings from
 * the Worker's vars and SECRET_KEY secret; `createEdgeProxy` builds one in your own Worker.
 */
import { ConfigError, configFromEnv, type EdgeProxyEnv } from "./config";
import { consoleLogger, errorOnce } from "./log";
import { htmlPage } from "./pages";
import { createEdgeProxy, type EdgeProxy } from "./proxy";

export { createEdgeProxy, type EdgeProxy, type EdgeProxyDependencies } from "./proxy";
export { ConfigError, configFromEnv, resolveConfig, type EdgeProxyEnv, type FailureMode, type ProxyConfig, type ResolvedConfig } from "./config";
// Only functions, classes and types: workerd reads every named export of a Worker's main module as an entrypoint,
// and refuses to start on any other value (a string constant).
export type { FetchLike } from "./context";
export type { Logger } from "./log";
export { customElementOf, renderItem, renderItems } from "./content/render";

// One proxy per env object (an isolate's bindings do not change between its requests): settings are read once.
const proxies = new WeakMap<EdgeProxyEnv, EdgeProxy | ConfigError>();

function proxyFor(env: EdgeProxyEnv): EdgeProxy | ConfigError {
  let proxy = proxies.get(env);
  if (proxy) return proxy;
  try {
    proxy = createEdgeProxy(configFromEnv(env), {
      platform: env.PLATFORM ? (request) => env.PLATFORM!.fetch(request) : undefined,
      origin: env.ORIGIN ? (request) => env.ORIGIN!.fetch(request) : undefined,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    proxy = error;
  }
  proxies.set(env, proxy);
  return proxy;
}

export default {
  async fetch(request: Request, env: EdgeProxyEnv, ctx: ExecutionContext): Promise<Response> {
    const proxy = proxyFor(env);
    if (proxy instanceof ConfigError) {
      // The operator's mistake: every request answers the same page (no crash loop), and the log says what to fix.
      errorOnce(consoleLogger, `edge-proxy: invalid configuration: ${proxy.message}`);
      return htmlPage(500, "Proxy misconfigured", `The edge proxy's configuration is invalid: ${proxy.message}. The site's operator must fix this setting.`);
    }
    return proxy.fetch(request, ctx);
  },
};
