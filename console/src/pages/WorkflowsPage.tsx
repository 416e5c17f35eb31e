/**
 * #/workflows — the draft's workflows, and #/workflows/<slug> — one of them in the editor. The code is type-checked
 * in the browser against the draft's own declarations (GET /api/v1/admin/workflow-types), so `features.nope` or a
 * plan slug that does not exist is an error before anything is saved.
 */
import { useCallback, useEffect, useState } from "react";
import { ApiProblem, useApi } from "../api";
import { DataTable } from "../components/DataTable";
import { Page } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { navigate, useRoute } from "../components/router";
import { setWorkflowTypes } from "../components/editor/monaco";
import { WorkflowEditor, type WorkflowItem, type WorkflowReferences } from "../components/workflows/WorkflowEditor";
import { starterSource, WORKFLOW_TYPES, type WorkflowType } from "../components/workflows/templates";
import { useSession } from "../session";
import "../components/workflows/workflows.css";

const SLUG_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** What the workflow is attached to, in a few words. */
function target(item: WorkflowItem): string {
  switch (item.type) {
    case "feature":
      return item.feature ? `feature ${item.feature}` : "";
    case "surface":
      return item.surface ? `surface ${item.surface}` : "";
    case "component":
      return item.surface ? `component ${item.surface}.${item.component ?? "?"}` : "";
    case "endpoint":
      return item.path ? `/endpoints/${item.path}` : "";
    case "action":
      return (item.triggers ?? []).join(", ");
    default:
      return "";
  }
}

export default function WorkflowsPage() {
  const api = useApi();
  const { can } = useSession();
  const route = useRoute();
  const writable = can("configuration.write");
  const [items, setItems] = useState<WorkflowItem[] | null>(null);
  const [listProblem, setListProblem] = useState<unknown>(null);
  const [types, setTypes] = useState<"loading" | "ready" | ApiProblem | Error>("loading");
  const [references, setReferences] = useState<WorkflowReferences>({ features: [], surfaces: [] });
  const [draft, setDraft] = useState<WorkflowItem | null>(null);
  const [newSlug, setNewSlug] = useState("");
  const [newType, setNewType] = useState<WorkflowType>("provisioning");
  const [newError, setNewError] = useState<string | null>(null);
  const selected = route.rest[0];

  const load = useCallback(async () => {
    try {
      const { items } = await api.get<{ items: WorkflowItem[] }>("/api/v1/admin/workflows");
      setItems(items);
      setListProblem(null);
    } catch (error) {
      setListProblem(error);
      setItems((current) => current ?? []);
    }
  }, [api]);

  useEffect(() => {
    void load();
    api.get<{ dts: string }>("/api/v1/admin/workflow-types").then(
      ({ dts }) => {
        setWorkflowTypes(dts);
        setTypes("ready");
      },
      (error: Error) => setTypes(error),
    );
    // Pickers only: without them the editor still works (the API names a missing reference on save).
    Promise.all([
      api.get<{ items: { slug: string }[] }>("/api/v1/admin/features").catch(() => ({ items: [] })),
      api.get<{ items: { slug: string; components?: Record<string, unknown> }[] }>("/api/v1/admin/surfaces").catch(() => ({ items: [] })),
    ]).then(([features, surfaces]) =>
      setReferences({
        features: features.items.map((feature) => feature.slug),
        surfaces: surfaces.items.map((surface) => ({ slug: surface.slug, components: Object.keys(surface.components ?? {}) })),
      }),
    );
  }, [api, load]);

  function startNew(event: React.FormEvent) {
    event.preventDefault();
    if (!SLUG_PATTERN.test(newSlug)) {
      setNewError("1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit");
      return;
    }
    if (items?.some((item) => item.slug === newSlug)) {
      setNewError(`workflow ${newSlug} exists`);
      return;
    }
    setNewError(null);
    setDraft({ slug: newSlug, type: newType, source: starterSource(newType) });
    setNewSlug("");
    navigate("workflows");
  }

  useEffect(() => {
    if (draft && selected === draft.slug && items?.some((item) => item.slug === draft.slug)) setDraft(null);
  }, [draft, selected, items]);

  const editing = draft ?? items?.find((item) => item.slug === selected) ?? null;
  const typesSettled = types !== "loading";

  return (
    <Page title="Workflows" subtitle="TypeScript the platform runs at decision time, on triggers and as endpoints. Changes go to the draft; create a version to run them.">
      <ProblemBox problem={listProblem} />
      {types instanceof Error ? (
        <div className="wf-types-problem">
          <ProblemBox problem={types} title="The draft's types could not be loaded: the code is checked without them" />
        </div>
      ) : null}
      <div className="wf-layout">
        <div className="wf-list">
          {items === null ? (
            <p className="loading">Loading workflows…</p>
          ) : (
            <DataTable
              testId="workflow-list"
              rows={items}
              rowKey={(item) => item.slug}
              rowTestId={(item) => `workflow-row-${item.slug}`}
              onRowClick={(item) => {
                setDraft(null);
                navigate("workflows", item.slug);
              }}
              empty="No workflows in the draft yet."
              columns={[
                { header: "Slug", render: (item) => <strong className={item.slug === editing?.slug ? "wf-current" : undefined}>{item.slug}</strong> },
                { header: "Type", render: (item) => item.type, className: "wf-nowrap" },
                { header: "Runs for", render: (item) => <span className="muted">{target(item)}{item.required ? " (required)" : ""}</span> },
              ]}
            />
          )}
          {writable ? (
            <form className="wf-new" onSubmit={startNew}>
              <h3>New workflow</h3>
              <label>
                Slug
                <input value={newSlug} onChange={(event) => setNewSlug(event.target.value)} placeholder="my-workflow" data-testid="workflow-new-slug" />
                {newError ? (
                  <span className="field-error" data-testid="field-error-slug">
                    {newError}
                  </span>
                ) : null}
              </label>
              <label>
                Type
                <select value={newType} onChange={(event) => setNewType(event.target.value as WorkflowType)} data-testid="workflow-new-type">
                  {WORKFLOW_TYPES.map((type) => (
                    <option key={type}>{type}</option>
                  ))}
                </select>
              </label>
              <button type="submit" data-testid="workflow-new">
                Start from a template
              </button>
            </form>
          ) : null}
        </div>
        <div className="wf-main">
          {editing ? (
            <WorkflowEditor
              key={editing.slug}
              item={editing}
              isNew={draft !== null}
              writable={writable}
              typesReady={typesSettled}
              references={references}
              onSaved={(stored) => {
                setItems((current) => [...(current ?? []).filter((item) => item.slug !== stored.slug), stored].sort((a, b) => a.slug.localeCompare(b.slug)));
                // The new workflow's route; the draft gives way to the stored item once the route names it (below),
                // so the editor stays mounted with its notice.
                if (draft) navigate("workflows", stored.slug);
              }}
              onDeleted={(slug) => {
                setItems((current) => (current ?? []).filter((item) => item.slug !== slug));
                navigate("workflows");
              }}
            />
          ) : selected && items !== null ? (
            <p className="empty">No workflow {selected} in the draft.</p>
          ) : (
            <p className="empty">Pick a workflow{writable ? ", or start a new one" : ""}.</p>
          )}
        </div>
      </div>
    </Page>
  );
}
