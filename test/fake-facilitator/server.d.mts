import type { Server } from "node:http";

export interface FakeFacilitator {
  server: Server;
  /** Resolves to the base URL, e.g. `http://127.0.0.1:40123` (ephemeral port unless given). */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

export function createFakeFacilitator(): FakeFacilitator;
