/**
 * Errors shown where they belong. A form knows the paths of its fields (`slug`, `properties.limit.fallback`, …); an
 * error — the form's own check or the API's `details[].path` — goes to the field whose path is the longest prefix of
 * it, and what no field claims stays in the form's ProblemBox.
 */
import { createContext, useCallback, useContext, useState, type ReactNode } from "react";
import { ApiProblem, type ProblemDetail } from "../api";
import { ProblemBox } from "./ProblemBox";

export type FieldErrors = Record<string, string[]>;

const FieldErrorsContext = createContext<{ fields: FieldErrors; dismiss(path: string): void }>({ fields: {}, dismiss: () => undefined });

export function FieldError({ path }: { path: string }) {
  const messages = useContext(FieldErrorsContext).fields[path];
  if (!messages?.length) return null;
  return (
    <div className="field-error" data-testid={`field-error-${path}`}>
      {messages.join("; ")}
    </div>
  );
}

/**
 * A labelled input with its errors below it. `group`: several controls (checkboxes, radios) with labels of their own,
 * so the whole is a group rather than one label (which would toggle the first control when its text is clicked).
 */
export function Field({ label, path, hint, children, wide, group }: { label: ReactNode; path?: string; hint?: ReactNode; children: ReactNode; wide?: boolean; group?: boolean }) {
  const { dismiss } = useContext(FieldErrorsContext);
  // Editing a field takes its error away: the message was about the value that is gone.
  const onChange = path ? () => dismiss(path) : undefined;
  const content = (
    <>
      <span className="field-label">{label}</span>
      {children}
      {hint ? <span className="field-hint">{hint}</span> : null}
      {path ? <FieldError path={path} /> : null}
    </>
  );
  const className = wide ? "field wide" : "field";
  return group ? (
    <div className={className} role="group" onChange={onChange}>
      {content}
    </div>
  ) : (
    <label className={className} onChange={onChange}>
      {content}
    </label>
  );
}

/** Which field each detail belongs to (the longest matching field path), and the details no field claims. */
export function distribute(details: ProblemDetail[], fieldPaths: string[], prefixes: string[] = []): { fields: FieldErrors; rest: ProblemDetail[] } {
  const fields: FieldErrors = {};
  const rest: ProblemDetail[] = [];
  for (const detail of details) {
    let path = detail.path;
    for (const prefix of prefixes) {
      if (path === prefix) path = "(root)";
      else if (path.startsWith(`${prefix}.`)) path = path.slice(prefix.length + 1);
    }
    const owner = fieldPaths
      .filter((field) => path === field || path.startsWith(`${field}.`) || path.startsWith(`${field}[`))
      .sort((a, b) => b.length - a.length)[0];
    if (owner) (fields[owner] ??= []).push(owner === path ? detail.message : `${path.slice(owner.length).replace(/^\./, "")}: ${detail.message}`);
    else rest.push(detail);
  }
  return { fields, rest };
}

export interface FormErrors {
  fields: FieldErrors;
  problem: unknown;
  rest: ProblemDetail[];
  /** The form's own checks failed: nothing is sent. */
  invalid(errors: FieldErrors): void;
  /** A failed call: its details go to the fields named in `fieldPaths` (after removing a prefix such as `features.widget`). */
  failed(error: unknown, fieldPaths: string[], prefixes?: string[]): void;
  clear(): void;
  /** The field at `path` changed: its errors no longer apply. */
  dismiss(path: string): void;
  hasErrors: boolean;
}

export function useFormErrors(): FormErrors {
  const [state, setState] = useState<{ fields: FieldErrors; problem: unknown; rest: ProblemDetail[] }>({ fields: {}, problem: null, rest: [] });
  const invalid = useCallback((errors: FieldErrors) => setState({ fields: errors, problem: null, rest: [] }), []);
  const failed = useCallback((error: unknown, fieldPaths: string[], prefixes: string[] = []) => {
    if (error instanceof ApiProblem && error.details.length > 0) {
      const { fields, rest } = distribute(error.details, fieldPaths, prefixes);
      setState({ fields, problem: error, rest });
    } else setState({ fields: {}, problem: error, rest: [] });
  }, []);
  const clear = useCallback(() => setState({ fields: {}, problem: null, rest: [] }), []);
  const dismiss = useCallback(
    (path: string) =>
      setState((current) => {
        if (!current.fields[path]) return current;
        const { [path]: _dismissed, ...fields } = current.fields;
        // A problem the fields held alone goes with its last field; one with unclaimed details stays.
        const problem = Object.keys(fields).length === 0 && current.rest.length === 0 ? null : current.problem;
        return { fields, problem, rest: current.rest };
      }),
    [],
  );
  return { ...state, invalid, failed, clear, dismiss, hasErrors: state.problem !== null || Object.keys(state.fields).length > 0 };
}

/** Wraps a form: the ProblemBox for what no field claims, and the errors each FieldError below reads. */
export function FormErrorsScope({ errors, children }: { errors: FormErrors; children: ReactNode }) {
  const claimed = Object.keys(errors.fields).length > 0;
  return (
    <FieldErrorsContext.Provider value={{ fields: errors.fields, dismiss: errors.dismiss }}>
      {errors.problem && (errors.rest.length > 0 || !claimed) ? (
        <ProblemBox problem={errors.problem} details={errors.rest} />
      ) : claimed ? (
        <div className="problem" role="alert" data-testid="problem">
          <strong>{errors.problem ? "Not saved: check the marked fields" : "Check the marked fields"}</strong>
        </div>
      ) : null}
      {children}
    </FieldErrorsContext.Provider>
  );
}
