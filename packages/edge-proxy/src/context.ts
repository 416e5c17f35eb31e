/** What every stage of the pipeline works with. */
import type { MonetizationClient } from "@edge-monetization/client";
import type { ResolvedConfig } from "./config";
import type { Logger } from "./log";

export type FetchLike = (request: Request) => Promise<Response>;

export interface ProxyContext {
  config: ResolvedConfig;
  /** Decisions and redemptions (timeouts, retries, errors as values). */
  client: MonetizationClient;
  /** The platform, for what the client does not wrap (custom endpoints pass through as they are). */
  platform: FetchLike;
  origin: FetchLike;
  logger: Logger;
}

/** The package version, sent as X-MOS-Proxy-Version (kept equal to package.json's by a test). */
export const PROXY_VERSION = "0.1.0";
export const PROXY_CLIENT = "edge-monetization-edge-proxy";
