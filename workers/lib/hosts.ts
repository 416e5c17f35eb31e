/**
 * Host names the platform may fetch on a tenant's or a stranger's say (agents' key directories, x402 facilitators):
 * public DNS names only, so nobody can point the platform at an internal address.
 */

/** A DNS name with a dot, not an IP literal (v4 or v6) nor a single-label, `localhost`, `.internal` or `.local` name. */
export function isPublicDnsName(hostname: string): boolean {
  if (hostname.startsWith("[") || /^[\d.]+$/.test(hostname) || !hostname.includes(".")) return false;
  return hostname !== "localhost" && !hostname.endsWith(".localhost") && !hostname.endsWith(".internal") && !hostname.endsWith(".local");
}

/** The loopback names a local development setting may allow over plain http. */
export function isLoopback(hostname: string): boolean {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}
