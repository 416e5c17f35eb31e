/** Where the proxy reports what an operator should see. Defaults to the console (Workers Logs, `wrangler tail`). */
export interface Logger {
  /** Something the operator must fix (a rejected key, an unknown surface, an invalid setting). */
  error(message: string, details?: Record<string, unknown>): void;
  /** Something that went wrong for one request and was handled (the platform unreachable: the page served as is). */
  warn(message: string, details?: Record<string, unknown>): void;
}

export const consoleLogger: Logger = {
  error: (message, details) => console.error(message, details ?? {}),
  warn: (message, details) => console.warn(message, details ?? {}),
};

// Per isolate: a misconfiguration fails every request the same way, and one line says it as well as thousands.
const reported = new Set<string>();

/** Logs an error the first time this isolate sees its message. */
export function errorOnce(logger: Logger, message: string, details?: Record<string, unknown>): void {
  if (reported.has(message)) return;
  reported.add(message);
  logger.error(message, details);
}
