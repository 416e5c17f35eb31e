/** A value as indented JSON, for responses and documents that have no screen of their own. */
export function JsonView({ value, testId, maxHeight }: { value: unknown; testId?: string; maxHeight?: number }) {
  return (
    <pre className="json-view" data-testid={testId} style={maxHeight ? { maxHeight } : undefined}>
      {value === undefined ? "—" : JSON.stringify(value, null, 2)}
    </pre>
  );
}
