import type { Server } from "node:http";

export const FAKE_TOKEN: string;

export interface FakeCloudflareEvents {
  server: Server;
  queries: { analytics: string[]; r2sql: string[] };
  /** Resolves to the base URL, e.g. `http://127.0.0.1:40123` (ephemeral port unless given). */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

export function createFakeCloudflareEvents(): FakeCloudflareEvents;
