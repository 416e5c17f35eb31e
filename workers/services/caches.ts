/**
 * Per-isolate memos that are not tied to one tenant's data: they only save work, so losing them changes no answer.
 */
import { LRUCache } from "lru-cache";
import type { UserAgentVerdict, VerdictMemo } from "../engine";

/**
 * User agent → bot verdict (the engine's classifyBot is pure and takes this memo from its caller). User agents repeat
 * a lot but the set is open, so the memo is bounded. `null` (a person's browser) is cached like any verdict.
 */
export const userAgentVerdicts: VerdictMemo = (() => {
  const cache = new LRUCache<string, { verdict: UserAgentVerdict }>({ max: 2_000 });
  return {
    get: (userAgent) => cache.get(userAgent)?.verdict,
    set: (userAgent, verdict) => cache.set(userAgent, { verdict }),
  };
})();
