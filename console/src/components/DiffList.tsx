import type { DiffEntry } from "./config";

const show = (value: unknown) => (value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value));

/** Changes between two documents, one line per path. */
export function DiffList({ changes, testId }: { changes: DiffEntry[]; testId?: string }) {
  if (changes.length === 0) return <p className="muted" data-testid={testId}>No differences.</p>;
  return (
    <table className="data-table diff" data-testid={testId}>
      <tbody>
        {changes.map((change, index) => (
          <tr key={index} className={`diff-${change.change}`}>
            <td className="diff-kind">{change.change === "added" ? "+" : change.change === "removed" ? "−" : "~"}</td>
            <td>
              <code>{change.path}</code>
            </td>
            <td className="diff-values">
              {change.change !== "added" ? <span className="diff-from">{show(change.from)}</span> : null}
              {change.change === "changed" ? <span className="muted"> → </span> : null}
              {change.change !== "removed" ? <span className="diff-to">{show(change.to)}</span> : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
