/**
 * Hash routing (`/console/#/features/widget`): the Worker serves one index.html, so the route lives after the `#`.
 * The first segment picks the page; the rest is the page's own (the item being edited, say).
 */
import { useEffect, useState } from "react";

export interface Route {
  /** The page: "" for the overview, "features", "versions", … */
  page: string;
  /** What follows the page, decoded: `#/features/widget` → ["widget"]. */
  rest: string[];
  query: URLSearchParams;
}

/** A hand-typed or truncated hash (`%E0%A4%A`) is not valid percent-encoding: it is taken as written, not thrown. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [path = "", search = ""] = raw.split("?");
  const segments = path.split("/").filter(Boolean).map(decodeSegment);
  return { page: segments[0] ?? "", rest: segments.slice(1), query: new URLSearchParams(search) };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(() => location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return parseHash(hash);
}

/** `navigate("features", "widget")` → `#/features/widget`. */
export function navigate(...segments: string[]): void {
  location.hash = `#/${segments.map((segment) => encodeURIComponent(segment)).join("/")}`;
}

export const href = (...segments: string[]) => `#/${segments.map((segment) => encodeURIComponent(segment)).join("/")}`;
