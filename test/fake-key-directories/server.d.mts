import type { Server } from "node:http";

export interface KeyDirectories {
  server: Server;
  /** Resolves to the control URL, e.g. `http://127.0.0.1:40123` (ephemeral port unless given). */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

export function createKeyDirectories(): KeyDirectories;
