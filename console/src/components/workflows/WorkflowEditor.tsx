/**
 * One workflow of the draft: its settings, its TypeScript source in Monaco (type-checked against the draft's types)
 * and the problems found in it. Saving is one request: POST for a new workflow, PUT for an existing one.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiProblem, segment, useApi, type ProblemDetail } from "../../api";
import { ConfirmButton } from "../ConfirmButton";
import { ProblemBox } from "../ProblemBox";
import { CodeEditor, type EditorMarker } from "../editor/CodeEditor";
import { monaco, typeScriptDiagnostics, type SourceDiagnostic } from "../editor/monaco";
import { WorkflowDiagnostics } from "./WorkflowDiagnostics";
import { starterSource, WORKFLOW_TYPE_HELP, WORKFLOW_TYPES, type WorkflowType } from "./templates";

export interface WorkflowItem {
  slug: string;
  type: WorkflowType;
  source: string;
  name?: string;
  feature?: string;
  surface?: string;
  component?: string;
  path?: string;
  access?: "none" | "publishable" | "secret";
  triggers?: string[];
  required?: boolean;
  deadlineMs?: number;
  cpuMs?: number;
}

/** What the pickers offer: the draft's features and surfaces (with their components). */
export interface WorkflowReferences {
  features: string[];
  surfaces: { slug: string; components: string[] }[];
}

interface Form {
  name: string;
  type: WorkflowType;
  feature: string;
  surface: string;
  component: string;
  path: string;
  access: string;
  triggers: string;
  required: boolean;
  deadlineMs: string;
  cpuMs: string;
}

const formOf = (item: WorkflowItem): Form => ({
  name: item.name ?? "",
  type: item.type,
  feature: item.feature ?? "",
  surface: item.surface ?? "",
  component: item.component ?? "",
  path: item.path ?? "",
  access: item.access ?? "",
  triggers: (item.triggers ?? []).join(", "),
  required: item.required ?? false,
  deadlineMs: item.deadlineMs === undefined ? "" : String(item.deadlineMs),
  cpuMs: item.cpuMs === undefined ? "" : String(item.cpuMs),
});

/** The fields each type uses; the others are dropped on save (the schema would accept them, the runtime ignores them). */
const FIELDS_OF: Record<WorkflowType, (keyof Form)[]> = {
  middleware: [],
  provisioning: [],
  feature: ["feature"],
  surface: ["surface"],
  component: ["surface", "component"],
  endpoint: ["path", "access"],
  action: ["triggers"],
  redemption: [],
};

/** `workflows.<slug>.feature` (a whole-draft check) and `feature` (the item's own schema) name the same field. */
const fieldOf = (path: string) => path.replace(/^workflows\.[^.]+\./, "").split(".")[0] ?? path;

/** A problem the platform's compiler names, at its 1-based line and column (workers/workflows/compile.ts). */
function compilerDiagnostic(message: string, line: number, column: number): SourceDiagnostic {
  return { severity: "error", line, column, endLine: line, endColumn: column + 1, message, code: 0, kind: "api" };
}

/** The API names positions in its messages as "… (line 3, column 7)", already 1-based. */
function apiDiagnostic(detail: ProblemDetail): SourceDiagnostic {
  const position = /\s*\(line (\d+), column (\d+)\)\s*$/.exec(detail.message);
  if (!position) return compilerDiagnostic(detail.message, 1, 1);
  return compilerDiagnostic(detail.message.slice(0, position.index), Number(position[1]), Number(position[2]));
}

interface WorkflowCheck {
  ok: boolean;
  errors?: { message: string; line: number; column: number }[];
}

/** The same problem found twice (by the dry run and by a refused save) is listed once. */
function distinct(diagnostics: SourceDiagnostic[]): SourceDiagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((diagnostic) => {
    const key = `${diagnostic.line}:${diagnostic.column}:${diagnostic.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function parseMilliseconds(text: string, max: number): number | undefined | string {
  if (!text.trim()) return undefined;
  const value = Number(text);
  return Number.isInteger(value) && value >= 1 && value <= max ? value : `a whole number of milliseconds from 1 to ${max}`;
}

export function WorkflowEditor({
  item,
  isNew,
  writable,
  typesReady,
  references,
  onSaved,
  onDeleted,
}: {
  item: WorkflowItem;
  isNew: boolean;
  writable: boolean;
  /** True once the draft's declarations are in the TypeScript worker (diagnostics before that would be noise). */
  typesReady: boolean;
  references: WorkflowReferences;
  onSaved(item: WorkflowItem): void;
  onDeleted(slug: string): void;
}) {
  const api = useApi();
  const [form, setForm] = useState<Form>(() => formOf(item));
  const [source, setSource] = useState(item.source);
  const [diagnostics, setDiagnostics] = useState<SourceDiagnostic[] | null>(null);
  const [apiDiagnostics, setApiDiagnostics] = useState<SourceDiagnostic[]>([]);
  /** What the platform's compiler refuses in the current code (POST /api/v1/admin/workflow-checks). */
  const [compileDiagnostics, setCompileDiagnostics] = useState<SourceDiagnostic[]>([]);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [blocked, setBlocked] = useState<"syntax" | "platform" | "type" | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const editor = useRef<monaco.editor.IStandaloneCodeEditor | null>(null);
  const dirty = source !== item.source || JSON.stringify(form) !== JSON.stringify(formOf(item));

  const type = useRef(form.type);
  type.current = form.type;
  const checks = useRef(0);

  /** The compiler's dry run; null when it could not be asked (the platform checks again when a version is made). */
  const compileCheck = useCallback(
    async (text: string): Promise<SourceDiagnostic[] | null> => {
      if (!text.trim()) return [];
      try {
        const result = await api.post<WorkflowCheck>("/api/v1/admin/workflow-checks", { type: type.current, source: text });
        return result.ok ? [] : (result.errors ?? []).map((error) => compilerDiagnostic(error.message, error.line, error.column));
      } catch {
        return null;
      }
    },
    [api],
  );

  /** TypeScript's diagnostics and the platform compiler's verdict on the code as it is now; a later check wins. */
  const check = useCallback(async () => {
    const model = editor.current?.getModel();
    if (!model) return { found: [], compiled: [] as SourceDiagnostic[] | null };
    const started = ++checks.current;
    const [found, compiled] = await Promise.all([typeScriptDiagnostics(model), compileCheck(model.getValue())]);
    if (started === checks.current) {
      setDiagnostics(found);
      setCompileDiagnostics(compiled ?? []);
    }
    return { found, compiled };
  }, [compileCheck]);

  // The list follows the code as it is typed (Monaco paints its squiggles on its own; this keeps the list in step).
  useEffect(() => {
    if (!typesReady) return;
    const timer = setTimeout(() => void check().catch(() => undefined), 400);
    return () => clearTimeout(timer);
  }, [source, typesReady, check]);

  // Closing or reloading the tab with unsaved code asks first (the browser's own prompt).
  useEffect(() => {
    if (!dirty || !writable) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    addEventListener("beforeunload", warn);
    return () => removeEventListener("beforeunload", warn);
  }, [dirty, writable]);

  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((current) => ({ ...current, [key]: value }));
  /** A new workflow still holding its starter code gets the starter of the type picked instead. */
  const changeType = (type: WorkflowType) => {
    if (isNew && source === starterSource(form.type)) setSource(starterSource(type));
    set("type", type);
  };
  const surface = references.surfaces.find((candidate) => candidate.slug === form.surface);

  /** The body the API stores: the item's other settings kept, the type's fields from the form. */
  function definition(): { body: Record<string, unknown>; errors: Record<string, string> } {
    const errors: Record<string, string> = {};
    const body: Record<string, unknown> = { type: form.type, source, required: form.required };
    if (form.name.trim()) body.name = form.name.trim();
    const fields = FIELDS_OF[form.type];
    if (fields.includes("feature")) {
      if (!form.feature) errors.feature = "a feature workflow adjusts one feature: pick it";
      else body.feature = form.feature;
    }
    if (fields.includes("surface")) {
      if (!form.surface) errors.surface = `a ${form.type} workflow decides for one surface: pick it`;
      else body.surface = form.surface;
    }
    if (fields.includes("component")) {
      if (!form.component) errors.component = "pick the component of the surface";
      else body.component = form.component;
    }
    if (fields.includes("path")) {
      if (!/^[A-Za-z0-9._~\-/]{1,200}$/.test(form.path)) errors.path = "1-200 characters of letters, digits and . _ ~ - /";
      else body.path = form.path;
      if (form.access) body.access = form.access;
    }
    if (fields.includes("triggers")) {
      const triggers = form.triggers.split(",").map((trigger) => trigger.trim()).filter(Boolean);
      if (triggers.length === 0) errors.triggers = "an action workflow needs at least one trigger";
      else body.triggers = triggers;
    }
    const deadline = parseMilliseconds(form.deadlineMs, 30_000);
    if (typeof deadline === "string") errors.deadlineMs = deadline;
    else if (deadline !== undefined) body.deadlineMs = deadline;
    const cpu = parseMilliseconds(form.cpuMs, 5_000);
    if (typeof cpu === "string") errors.cpuMs = cpu;
    else if (cpu !== undefined) body.cpuMs = cpu;
    if (!source.trim()) errors.source = "the workflow needs code";
    return { body, errors };
  }

  /**
   * Type errors block the save unless the user insists ("Save anyway"): the platform strips types without checking
   * them (a version compiles with sucrase), so a module with a type error still runs — and the types describe the
   * draft, which may be mid-edit (a feature renamed elsewhere). Syntax errors always block: no version could be made
   * from the draft until they are fixed, for anyone editing it.
   */
  async function save(anyway: boolean) {
    setSaved(null);
    setProblem(null);
    setApiDiagnostics([]);
    const { body, errors } = definition();
    setFieldErrors(errors);
    if (Object.keys(errors).length) return;
    setBusy(true);
    try {
      const { found, compiled } = (await check().catch(() => null)) ?? { found: [], compiled: null };
      const errorsFound = found.filter((diagnostic) => diagnostic.severity === "error");
      if (errorsFound.some((diagnostic) => diagnostic.kind === "syntax")) {
        setBlocked("syntax");
        return;
      }
      if (compiled?.length) {
        setBlocked("platform");
        return;
      }
      if (errorsFound.length && !anyway) {
        setBlocked("type");
        return;
      }
      setBlocked(null);
      const stored = isNew
        ? await api.post<WorkflowItem>("/api/v1/admin/workflows", { slug: item.slug, ...body })
        : await api.put<WorkflowItem>(`/api/v1/admin/workflows/${segment(item.slug)}`, body);
      setSaved(isNew ? "Created in the draft." : "Saved to the draft.");
      onSaved(stored);
    } catch (error) {
      setProblem(error);
      if (error instanceof ApiProblem) {
        const byField: Record<string, string> = {};
        const sourceProblems: SourceDiagnostic[] = [];
        for (const detail of error.details) {
          const field = fieldOf(detail.path);
          if (field === "source") sourceProblems.push(apiDiagnostic(detail));
          else byField[field] = detail.message;
        }
        setFieldErrors(byField);
        setApiDiagnostics(sourceProblems);
      }
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    setProblem(null);
    setBusy(true);
    try {
      await api.delete(`/api/v1/admin/workflows/${segment(item.slug)}`);
      onDeleted(item.slug);
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  }

  const platformDiagnostics = useMemo(() => distinct([...compileDiagnostics, ...apiDiagnostics]), [compileDiagnostics, apiDiagnostics]);
  const shown = diagnostics === null || !typesReady ? (platformDiagnostics.length ? platformDiagnostics : null) : [...platformDiagnostics, ...diagnostics];
  const markers = useMemo<EditorMarker[]>(
    () => platformDiagnostics.map(({ line, column, message }) => ({ line, column, message })),
    [platformDiagnostics],
  );
  const reveal = (diagnostic: SourceDiagnostic) => {
    const current = editor.current;
    if (!current) return;
    current.setPosition({ lineNumber: diagnostic.line, column: diagnostic.column });
    current.revealLineInCenter(diagnostic.line);
    current.focus();
  };
  const fieldError = (field: string) =>
    fieldErrors[field] ? (
      <span className="field-error" data-testid={`field-error-${field}`}>
        {fieldErrors[field]}
      </span>
    ) : null;
  const fields = FIELDS_OF[form.type];

  return (
    <div className="wf-editor">
      <div className="wf-editor-header">
        <h2>
          {item.slug} {isNew ? <span className="badge">new</span> : dirty ? <span className="badge">modified</span> : null}
        </h2>
        {writable ? (
          <div className="wf-actions">
            {!isNew ? (
              <ConfirmButton question={`Remove ${item.slug} from the draft?`} onConfirm={remove} disabled={busy} testId="workflow-delete">
                Delete
              </ConfirmButton>
            ) : null}
            {/* Before the draft's types are in the TypeScript worker, every use of them would be a type error. */}
            <button
              type="button"
              className="primary"
              data-testid="save"
              onClick={() => void save(false)}
              disabled={busy || !typesReady}
              title={typesReady ? undefined : "Loading the draft's types…"}
            >
              {busy ? "Saving…" : !typesReady ? "Loading types…" : isNew ? "Create" : "Save"}
            </button>
          </div>
        ) : (
          <span className="muted">Read-only: your credential may not change the configuration.</span>
        )}
      </div>
      <ProblemBox problem={problem} details={problem instanceof ApiProblem ? problem.details.filter((detail) => fieldOf(detail.path) !== "source" && !fieldErrors[fieldOf(detail.path)]) : undefined} />
      {saved ? <p className="notice" data-testid="workflow-saved">{saved}</p> : null}
      <fieldset className="wf-settings" disabled={!writable || busy}>
        <label>
          Type
          <select value={form.type} onChange={(event) => changeType(event.target.value as WorkflowType)} data-testid="workflow-type">
            {WORKFLOW_TYPES.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>
          <span className="muted small">{WORKFLOW_TYPE_HELP[form.type]}</span>
          {fieldError("type")}
        </label>
        <label>
          Name
          <input value={form.name} onChange={(event) => set("name", event.target.value)} placeholder="optional" />
          {fieldError("name")}
        </label>
        {fields.includes("feature") ? (
          <label>
            Feature
            <select value={form.feature} onChange={(event) => set("feature", event.target.value)} data-testid="workflow-feature">
              <option value="">—</option>
              {[...new Set([...references.features, form.feature].filter(Boolean))].map((slug) => (
                <option key={slug}>{slug}</option>
              ))}
            </select>
            {fieldError("feature")}
          </label>
        ) : null}
        {fields.includes("surface") ? (
          <label>
            Surface
            <select value={form.surface} onChange={(event) => set("surface", event.target.value)} data-testid="workflow-surface">
              <option value="">—</option>
              {[...new Set([...references.surfaces.map((candidate) => candidate.slug), form.surface].filter(Boolean))].map((slug) => (
                <option key={slug}>{slug}</option>
              ))}
            </select>
            {fieldError("surface")}
          </label>
        ) : null}
        {fields.includes("component") ? (
          <label>
            Component
            <select value={form.component} onChange={(event) => set("component", event.target.value)} data-testid="workflow-component">
              <option value="">—</option>
              {[...new Set([...(surface?.components ?? []), form.component].filter(Boolean))].map((slug) => (
                <option key={slug}>{slug}</option>
              ))}
            </select>
            {fieldError("component")}
          </label>
        ) : null}
        {fields.includes("path") ? (
          <>
            <label>
              Path
              <input value={form.path} onChange={(event) => set("path", event.target.value)} placeholder="whoami" data-testid="workflow-path" />
              {fieldError("path")}
            </label>
            <label>
              Access
              <select value={form.access} onChange={(event) => set("access", event.target.value)}>
                <option value="">default</option>
                <option value="none">none (anyone)</option>
                <option value="publishable">publishable key</option>
                <option value="secret">secret key</option>
              </select>
              {fieldError("access")}
            </label>
          </>
        ) : null}
        {fields.includes("triggers") ? (
          <label>
            Triggers
            <input value={form.triggers} onChange={(event) => set("triggers", event.target.value)} placeholder="user.added, gift.claimed" data-testid="workflow-triggers" />
            {fieldError("triggers")}
          </label>
        ) : null}
        <label>
          Deadline (ms)
          <input value={form.deadlineMs} onChange={(event) => set("deadlineMs", event.target.value)} inputMode="numeric" placeholder="default" />
          {fieldError("deadlineMs")}
        </label>
        <label>
          CPU (ms)
          <input value={form.cpuMs} onChange={(event) => set("cpuMs", event.target.value)} inputMode="numeric" placeholder="default" />
          {fieldError("cpuMs")}
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={form.required} onChange={(event) => set("required", event.target.checked)} />
          Required (a failure fails the request with 531 instead of falling back)
          {fieldError("required")}
        </label>
      </fieldset>
      <CodeEditor
        language="typescript"
        path={`${item.slug}.ts`}
        value={source}
        onChange={setSource}
        readOnly={!writable}
        markers={markers}
        height="420px"
        testId="workflow-editor"
        onEditor={(instance) => {
          editor.current = instance;
        }}
      />
      {fieldError("source")}
      {blocked === "syntax" ? (
        <p className="problem-inline" data-testid="workflow-blocked">
          Not saved: the code has syntax errors, and no version could be created from the draft with them. Fix them first.
        </p>
      ) : null}
      {blocked === "platform" ? (
        <p className="problem-inline" data-testid="workflow-blocked">
          Not saved: the platform refuses this code (see the problems below), and no version could be created from the draft with it. Fix them first.
        </p>
      ) : null}
      {blocked === "type" ? (
        <p className="problem-inline" data-testid="workflow-blocked">
          Not saved: the code has type errors. The platform runs it anyway (types are stripped, not checked), so you may{" "}
          <button type="button" className="link" data-testid="workflow-save-anyway" onClick={() => void save(true)} disabled={busy}>
            save anyway
          </button>
          .
        </p>
      ) : null}
      <WorkflowDiagnostics diagnostics={shown} onPick={reveal} />
    </div>
  );
}
