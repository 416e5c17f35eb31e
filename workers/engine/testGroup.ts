/**
 * A stable 0–99 bucket for an identifier (FNV-1a, 32-bit). Same identifier → same bucket, in every isolate and in
 * workflows, so A/B splits are sticky without storage.
 */
export function testGroup100(identifier: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < identifier.length; i++) {
    hash ^= identifier.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % 100;
}
