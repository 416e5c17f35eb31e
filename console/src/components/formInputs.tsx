/**
 * Inputs the collection editors share: the item's slug (typed when creating, fixed once it exists — renaming is its
 * own operation) and a list of checkboxes choosing a subset of known values.
 */
import type { ReactNode } from "react";

export function SlugInput({ slug, newSlug, onNewSlug, testId, placeholder }: { slug: string | null; newSlug: string; onNewSlug: (value: string) => void; testId: string; placeholder?: string }) {
  return slug === null ? (
    <input value={newSlug} onChange={(event) => onNewSlug(event.target.value)} data-testid={testId} placeholder={placeholder} autoFocus />
  ) : (
    <input value={slug} readOnly data-testid={testId} />
  );
}

export interface CheckboxOption {
  value: string;
  label: ReactNode;
  testId: string;
}

/** Checkboxes over `options`; `onChange` receives the new selection (in the order the boxes were checked). */
export function CheckboxList({ options, selected, onChange }: { options: readonly CheckboxOption[]; selected: readonly string[]; onChange: (update: (current: string[]) => string[]) => void }) {
  return (
    <span className="checks">
      {options.map(({ value, label, testId }) => (
        <label key={value} className="inline">
          <input
            type="checkbox"
            checked={selected.includes(value)}
            onChange={(event) => onChange((current) => (event.target.checked ? [...current, value] : current.filter((other) => other !== value)))}
            data-testid={testId}
          />
          {label}
        </label>
      ))}
    </span>
  );
}
