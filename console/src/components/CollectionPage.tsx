/**
 * The screens of the draft's collections share one shape: a table of the items, and an item's form at
 * `#/<page>/<slug>` (`#/<page>/new` for a new one). Saving sends one request (POST for a new item, PUT for an
 * existing one) and the API re-validates the whole draft, so nothing is half-saved.
 */
import { useEffect, useState, type ComponentType, type ReactNode } from "react";
import { segment, useApi } from "../api";
import { useSession } from "../session";
import { ConfirmButton } from "./ConfirmButton";
import { COLLECTIONS, normalizeDocument, type CollectionKey, type ConfigDocument } from "./config";
import { DataTable, type Column } from "./DataTable";
import { Page, Panel } from "./Page";
import { ProblemBox } from "./ProblemBox";
import { href, navigate } from "./router";
import { useLoad } from "./useLoad";

export interface EditorProps<D> {
  /** null for a new item. */
  slug: string | null;
  definition: D | undefined;
  document: ConfigDocument;
  readOnly: boolean;
  /** Sends the item; rejects with the ApiProblem (its details' paths start with `errorPrefix`, or are the item's own). */
  save(slug: string, definition: D): Promise<void>;
  /** The document path of the item, e.g. `features.widget`: strip it from error paths to reach the form's fields. */
  errorPrefixes(slug: string): string[];
  /**
   * The editor changed the item through another call (a rename): reload the draft and open the item under `slug`,
   * saying `notice` (default: saved to the draft).
   */
  changed(slug: string, notice?: string): void;
}

export function useDraftDocument() {
  const api = useApi();
  return useLoad(async () => normalizeDocument(await api.get<Record<string, unknown>>("/api/v1/admin/config")), [api]);
}

export function CollectionSection<D>({
  collection,
  title,
  base,
  selected,
  columns,
  Editor,
  testPrefix,
  document,
  reload,
  loading = false,
  description,
}: {
  collection: CollectionKey;
  title: string;
  /** Route segments of this collection's screens, e.g. ["features"] or ["offers", "group"]. */
  base: string[];
  /** undefined: the list; "new"; or the slug being edited. */
  selected: string | undefined;
  columns: Column<{ slug: string; definition: D }>[];
  Editor: ComponentType<EditorProps<D>>;
  testPrefix: string;
  document: ConfigDocument;
  reload(): void;
  /** The document is being fetched again (after a save): an item missing from the old one is not "missing" yet. */
  loading?: boolean;
  description?: string;
}) {
  const api = useApi();
  const { can } = useSession();
  const writable = can("configuration.write");
  const { path, singular } = COLLECTIONS[collection];
  const [deleteProblem, setDeleteProblem] = useState<unknown>(null);
  // The item just saved (or renamed): its form says so until another item is opened.
  const [saved, setSaved] = useState<{ slug: string; notice?: string } | null>(null);
  const savedSlug = saved?.slug ?? null;
  useEffect(() => {
    if (selected !== savedSlug) setSaved(null);
    setDeleteProblem(null);
    // Only a move to another item clears the notices, not the save that set them.
  }, [selected]);
  const items = Object.entries(document[collection] as Record<string, D>).map(([slug, definition]) => ({ slug, definition }));

  if (selected === undefined) {
    return (
      <Panel
        title={title}
        testId={`${testPrefix}-list`}
        actions={
          writable ? (
            <a className="button primary" href={href(...base, "new")} data-testid={`${testPrefix}-add`}>
              Add {singular}
            </a>
          ) : null
        }
      >
        {description ? <p className="muted">{description}</p> : null}
        <DataTable
          columns={[{ header: "Slug", render: (row) => <a href={href(...base, row.slug)}>{row.slug}</a> }, ...columns]}
          rows={items}
          rowKey={(row) => row.slug}
          rowTestId={(row) => `${testPrefix}-row-${row.slug}`}
          onRowClick={(row) => navigate(...base, row.slug)}
          empty={`No ${singular}s in the draft yet.`}
        />
      </Panel>
    );
  }

  const isNew = selected === "new";
  const definition = isNew ? undefined : (document[collection] as Record<string, D>)[selected];
  if (!isNew && definition === undefined) {
    if (loading) return <p className="loading">Loading…</p>;
    return (
      <Panel title={`${title}: ${selected}`}>
        <p>
          No {singular} <code>{selected}</code> in the draft. <a href={href(...base)}>Back to the list</a>
        </p>
      </Panel>
    );
  }

  const changed = (slug: string, notice?: string) => {
    reload();
    setSaved({ slug, notice });
    navigate(...base, slug);
  };
  const save = async (slug: string, next: D) => {
    if (isNew) await api.post(`/api/v1/admin/${path}`, { slug, ...(next as object) });
    else await api.put(`/api/v1/admin/${path}/${segment(slug)}`, next);
    changed(slug);
  };

  return (
    <Panel
      title={isNew ? `New ${singular}` : `${singular[0]!.toUpperCase()}${singular.slice(1)} ${selected}`}
      actions={
        <>
          <a className="button" href={href(...base)} data-testid={`${testPrefix}-back`}>
            Back to {title.toLowerCase()}
          </a>
          {!isNew && writable ? (
            <ConfirmButton
              testId={`${testPrefix}-delete`}
              question={`Delete ${selected}?`}
              onConfirm={async () => {
                setDeleteProblem(null);
                try {
                  await api.delete(`/api/v1/admin/${path}/${segment(selected)}`);
                  reload();
                  navigate(...base);
                } catch (error) {
                  setDeleteProblem(error);
                }
              }}
            >
              Delete
            </ConfirmButton>
          ) : null}
        </>
      }
    >
      <ProblemBox problem={deleteProblem} title="Not deleted" />
      {saved && savedSlug === selected ? (
        <div className="notice" data-testid="saved">
          {saved.notice ?? "Saved to the draft."} <a href="#/versions">Create a version</a> to deploy it.
        </div>
      ) : null}
      <Editor
        key={selected}
        slug={isNew ? null : selected}
        definition={definition}
        document={document}
        readOnly={!writable}
        save={save}
        errorPrefixes={(slug) => [`${collection}.${slug}`]}
        changed={changed}
      />
    </Panel>
  );
}

/** A page holding one collection. */
export function CollectionPage<D>(props: Omit<Parameters<typeof CollectionSection<D>>[0], "document" | "reload"> & { subtitle?: string }) {
  const draft = useDraftDocument();
  return (
    <Page title={props.title} subtitle={props.subtitle}>
      {draft.error ? <ProblemBox problem={draft.error} /> : null}
      {draft.data ? <CollectionSection {...props} document={draft.data} reload={draft.reload} loading={draft.loading} /> : draft.loading ? <p className="loading">Loading the draft…</p> : null}
    </Page>
  );
}

/** The save button and the form's busy state; read-only credentials see no button. */
export function SaveBar({ readOnly, busy, label = "Save", children }: { readOnly: boolean; busy: boolean; label?: string; children?: ReactNode }) {
  if (readOnly) return <p className="muted small">Read-only: this credential may not change the configuration.</p>;
  return (
    <div className="form-actions">
      <button type="submit" className="primary" disabled={busy} data-testid="save">
        {busy ? "Saving…" : label}
      </button>
      {children}
    </div>
  );
}
