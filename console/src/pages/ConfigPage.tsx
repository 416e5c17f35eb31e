import { useEffect, useMemo, useState } from "react";
import { ApiProblem, useApi } from "../api";
import type { DiffEntry } from "../components/config";
import { CodeEditor } from "../components/editor/CodeEditor";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { DiffList } from "../components/DiffList";
import { locate } from "../components/yamlPaths";
import { useSession } from "../session";

interface ApplyResult {
  applied: boolean;
  revision: number;
  changes: DiffEntry[];
}

/**
 * The whole draft as one YAML document. "Validate" is a dry run (nothing written); "Apply" replaces the draft in one
 * revision-checked write, so a bad document, or a draft someone changed meanwhile, changes nothing.
 */
export default function ConfigPage() {
  const api = useApi();
  const { can } = useSession();
  const writable = can("configuration.write");
  const [loaded, setLoaded] = useState<{ text: string; revision: string } | null>(null);
  const [text, setText] = useState("");
  const [loadProblem, setLoadProblem] = useState<unknown>(null);
  const [problem, setProblem] = useState<unknown>(null);
  /** Which button the problem answers: a refused dry run applied nothing because it never would. */
  const [problemOf, setProblemOf] = useState<"validate" | "apply">("apply");
  const [result, setResult] = useState<ApplyResult | null>(null);
  /** The draft was applied but reading it back failed: the editor holds what was sent, at the new revision. */
  const [rereadProblem, setRereadProblem] = useState<unknown>(null);
  const [busy, setBusy] = useState<"validate" | "apply" | null>(null);

  const load = async () => {
    setLoadProblem(null);
    setRereadProblem(null);
    try {
      const response = await api.text("GET", "/api/v1/admin/config?format=yaml", { accept: "application/yaml" });
      const revision = response.headers.get("x-draft-revision") ?? "";
      setLoaded({ text: response.text, revision });
      setText(response.text);
      setProblem(null);
    } catch (error) {
      setLoadProblem(error);
    }
  };
  useEffect(() => {
    void load();
  }, [api]);

  const located = useMemo(() => (problem instanceof ApiProblem ? locate(text, problem.details) : []), [problem, text]);
  const markers = located.map((detail) => ({ line: detail.line ?? 1, message: `${detail.path}: ${detail.message}` }));

  const submit = async (dryRun: boolean) => {
    setBusy(dryRun ? "validate" : "apply");
    setProblem(null);
    setProblemOf(dryRun ? "validate" : "apply");
    setResult(null);
    setRereadProblem(null);
    try {
      const answer = await api.send<ApplyResult>(
        "PUT",
        `/api/v1/admin/config${dryRun ? "?dryRun=true" : ""}`,
        text,
        "application/yaml",
        loaded?.revision ? { "if-match": loaded.revision } : {},
      );
      setResult(answer);
      if (answer.applied) {
        // What was sent is the draft now, at the revision the answer names: the next Apply must not conflict with it,
        // whether or not the read-back below succeeds.
        const sent = text;
        setLoaded({ text: sent, revision: String(answer.revision) });
        try {
          const response = await api.text("GET", "/api/v1/admin/config?format=yaml", { accept: "application/yaml" });
          setLoaded({ text: response.text, revision: response.headers.get("x-draft-revision") ?? String(answer.revision) });
          setText((current) => (current === sent ? response.text : current));
        } catch (error) {
          setRereadProblem(error);
        }
      }
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(null);
    }
  };

  const dirty = loaded !== null && text !== loaded.text;
  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    addEventListener("beforeunload", warn);
    return () => removeEventListener("beforeunload", warn);
  }, [dirty]);
  return (
    <Page
      title="Configuration document"
      subtitle="The whole draft as YAML: features, plans, surfaces, authentication methods, workflows, triggers and offers."
      actions={
        <>
          <button onClick={() => void load()} disabled={busy !== null} data-testid="config-reload">
            {dirty ? "Discard changes" : "Reload"}
          </button>
          {writable ? (
            <>
              <button onClick={() => void submit(true)} disabled={busy !== null || !loaded} data-testid="config-validate">
                {busy === "validate" ? "Validating…" : "Validate"}
              </button>
              <button className="primary" onClick={() => void submit(false)} disabled={busy !== null || !loaded} data-testid="config-apply">
                {busy === "apply" ? "Applying…" : "Apply"}
              </button>
            </>
          ) : null}
        </>
      }
    >
      <ProblemBox problem={loadProblem} />
      {problem ? (
        <div className="problem" role="alert" data-testid="problem">
          <strong>
            {problem instanceof ApiProblem
              ? problem.code === "conflict"
                ? "The draft changed meanwhile"
                : problemOf === "validate"
                  ? "Not valid"
                  : "Not applied: nothing changed"
              : "Problem"}
          </strong>
          <p>{problem instanceof ApiProblem && problem.details.length > 0 ? `${problem.details.length} problem${problem.details.length === 1 ? "" : "s"} in the document:` : (problem as Error).message}</p>
          {located.length > 0 ? (
            <ul data-testid="config-problems">
              {located.map((detail, index) => (
                <li key={index} data-testid={`config-problem-${index}`}>
                  <span className="line-ref">line {detail.line}</span> <code>{detail.path}</code>: {detail.message}
                </li>
              ))}
            </ul>
          ) : null}
          {problem instanceof ApiProblem && problem.code === "conflict" ? <p>Reload to see the current draft (your edits are replaced).</p> : null}
        </div>
      ) : null}
      {result ? (
        <div className="notice" data-testid="config-result">
          <strong>{result.applied ? `Applied: the draft is at revision ${result.revision}.` : "Valid: applying it would make these changes."}</strong>
          {result.changes.length === 0 ? <p className="muted">No changes.</p> : null}
        </div>
      ) : null}
      {rereadProblem ? (
        <div className="problem" role="alert" data-testid="config-reread-problem">
          <strong>Applied; the draft could not be re-read</strong>
          <p>
            {(rereadProblem as Error).message}{" "}
            <button type="button" className="link" onClick={() => void load()}>
              Reload
            </button>
          </p>
        </div>
      ) : null}
      {result && result.changes.length > 0 ? (
        <Panel title={`${result.changes.length} change${result.changes.length === 1 ? "" : "s"}`}>
          <DiffList changes={result.changes} testId="config-changes" />
        </Panel>
      ) : null}
      {loaded ? (
        <div className="editor-frame">
          <div className="editor-status muted small">
            Draft revision {loaded.revision || "?"}
            {dirty ? <span className="dirty"> · unsaved changes</span> : null}
            {!writable ? " · read-only" : null}
          </div>
          <CodeEditor language="yaml" value={text} onChange={setText} markers={markers} height="calc(100vh - 260px)" readOnly={!writable} testId="config-editor" path="configuration.yaml" />
        </div>
      ) : !loadProblem ? (
        <p className="loading">Loading the draft…</p>
      ) : null}
    </Page>
  );
}
