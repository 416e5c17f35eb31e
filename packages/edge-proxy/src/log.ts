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

// Per isolate: a misconfiguration fails every request the same way, and one line says it as well as thousands. Keys
// are the caller's (a status and a code, a component and its selector), never a message a visitor can vary; the set
// is bounded all the same, so nothing a request carries can grow it without limit. Kept per logger: a proxy given its
// own logger hears about its own mistakes.
const MAX_REPORTED = 256;
const reportedBy = new WeakMap<Logger, Set<string>>();

function firstTime(logger: Logger, key: string): boolean {
  let reported = reportedBy.get(logger);
  if (!reported) reportedBy.set(logger, (reported = new Set()));
  if (reported.has(key)) return false;
  if (reported.size >= MAX_REPORTED) reported.delete(reported.values().next().value!);
  reported.add(key);
  return true;
}

/** Logs an error the first time this isolate (and logger) sees `key` (the message itself when none is given). */
export function errorOnce(logger: Logger, message: string, details?: Record<string, unknown>, key: string = message): void {
  if (firstTime(logger, `error ${key}`)) logger.error(message, details);
}

/** Logs a warning the first time this isolate (and logger) sees `key`. */
export function warnOnce(logger: Logger, key: string, message: string, details?: Record<string, unknown>): void {
  if (firstTime(logger, `warn ${key}`)) logger.warn(message, details);
}
