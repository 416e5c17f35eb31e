/**
 * Items in consecutive groups, in order, each under a byte budget (and, optionally, a count): what a queue batch or a
 * stream request can carry. An item larger than the budget alone still gets a group of its own.
 */
export function groupsWithin<T>(items: readonly T[], bytesOf: (item: T) => number, { maxBytes, maxItems = Infinity }: { maxBytes: number; maxItems?: number }): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = bytesOf(item);
    if (current.length > 0 && (current.length === maxItems || size + bytes > maxBytes)) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
