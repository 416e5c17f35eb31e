import { randomIdChars } from "./crypto";

/** Prefixed random ids (`org_…`, `env_…`, `ver_…`): readable in logs, unguessable, no coordination needed. */
export function newId(prefix: "org" | "env" | "key" | "ver" | "dep" | "evt" | "req" | "feat"): string {
  return `${prefix}_${randomIdChars(prefix === "feat" ? 10 : 16)}`;
}

export const nowIso = (): string => new Date().toISOString();
