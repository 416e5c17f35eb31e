import type { SourceDiagnostic } from "../editor/monaco";

/**
 * The problems of a workflow's source, `line:column message`, from the TypeScript worker and from the API.
 * `null` while they have not been computed yet. Clicking one moves the editor's cursor there.
 */
export function WorkflowDiagnostics({ diagnostics, onPick }: { diagnostics: SourceDiagnostic[] | null; onPick?: (diagnostic: SourceDiagnostic) => void }) {
  if (diagnostics === null) {
    return (
      <p className="wf-diagnostics muted" data-testid="workflow-diagnostics" data-state="checking">
        Checking types…
      </p>
    );
  }
  if (diagnostics.length === 0) {
    return (
      <p className="wf-diagnostics wf-diagnostics-ok" data-testid="workflow-diagnostics" data-state="ok">
        No problems: the code type-checks against the draft's types, and the platform compiles it.
      </p>
    );
  }
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error").length;
  return (
    <div className="wf-diagnostics" data-testid="workflow-diagnostics" data-state={errors ? "errors" : "warnings"}>
      <p>
        <strong>{errors} error{errors === 1 ? "" : "s"}</strong>
        {diagnostics.length - errors ? `, ${diagnostics.length - errors} warning${diagnostics.length - errors === 1 ? "" : "s"}` : ""}
      </p>
      <ul>
        {diagnostics.map((diagnostic, index) => (
          <li key={index} className={`wf-diagnostic wf-${diagnostic.severity}`} data-testid="workflow-diagnostic">
            <button type="button" className="link" onClick={() => onPick?.(diagnostic)}>
              {diagnostic.line}:{diagnostic.column}
            </button>{" "}
            <span className="wf-kind">{diagnostic.kind === "api" ? "platform" : diagnostic.kind === "syntax" ? `syntax TS${diagnostic.code}` : `TS${diagnostic.code}`}</span>{" "}
            <span className="wf-message">{diagnostic.message}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
