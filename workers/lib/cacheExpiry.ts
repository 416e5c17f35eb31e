/**
 * What the per-isolate caches whose entries have a lifetime (lru-cache `ttl`) share: an entry's age is checked when
 * it is read, never by a timer. `ttlAutopurge: false` sets no timer per entry; `ttlResolution: 0` sets none per read
 * either (the default caches the clock for 1 ms behind a timer; workerd's clock only moves between I/O anyway).
 */
export const EXPIRE_ON_READ = { ttlAutopurge: false, ttlResolution: 0 } as const;
