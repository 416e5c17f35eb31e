import { useEffect, useState, type FormEvent } from "react";
import { stringify } from "yaml";
import { segment, useApi } from "../api";
import { diffValues, type DiffEntry } from "../components/config";
import { ConfirmButton } from "../components/ConfirmButton";
import { DataTable } from "../components/DataTable";
import { DiffList } from "../components/DiffList";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { useLoad } from "../components/useLoad";
import { useSession, type Environment } from "../session";

interface Version {
  id: string;
  number: number;
  description: string;
  createdAt: string;
}

interface Deployment {
  id: string;
  environmentId: string;
  versionId: string;
  previousVersionId: string | null;
  kind: "deploy" | "rollback";
  createdAt: string;
}

const DRAFT = "draft";
const when = (iso: string) => new Date(iso).toLocaleString();

function CreateVersion({ onCreated }: { onCreated(version: Version): void }) {
  const api = useApi();
  const [description, setDescription] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const version = await api.post<Version>("/api/v1/admin/versions", description.trim() ? { description: description.trim() } : {});
      setDescription("");
      onCreated(version);
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Panel title="Create a version from the draft">
      <p className="muted small">The whole draft is validated (workflows compiled) and frozen: a version never changes, and environments deploy versions.</p>
      <ProblemBox problem={problem} title="No version created" />
      <form onSubmit={submit} className="form inline-form" noValidate>
        <input value={description} onChange={(event) => setDescription(event.target.value)} maxLength={1000} placeholder="What changed (optional)" data-testid="version-description" aria-label="Description" />
        <button type="submit" className="primary" disabled={busy} data-testid="version-create">
          {busy ? "Creating…" : "Create version"}
        </button>
      </form>
    </Panel>
  );
}

function EnvironmentCard({ environment, versions, selectedVersion, canDeploy, onChanged }: { environment: Environment; versions: Version[]; selectedVersion: string; canDeploy: boolean; onChanged(): void }) {
  const api = useApi();
  const { can } = useSession();
  const path = `/api/v1/admin/environments/${segment(environment.id)}`;
  const history = useLoad(async () => (can("deployments.read") ? (await api.get<{ deployments: Deployment[] }>(`${path}/deployments`)).deployments : []), [api, path, environment.deployedVersionId]);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const numberOf = (id: string | null | undefined) => {
    const version = versions.find((candidate) => candidate.id === id);
    return version ? `v${version.number}` : id ? id : "—";
  };
  const act = async (what: "deploy" | "rollback") => {
    setBusy(true);
    setProblem(null);
    setMessage(null);
    try {
      const deployment = await api.post<Deployment>(what === "deploy" ? `${path}/deployments` : `${path}/rollback`, what === "deploy" ? { versionId: selectedVersion } : {});
      setMessage(`${what === "deploy" ? "Deployed" : "Rolled back to"} ${numberOf(deployment.versionId)}.`);
      onChanged();
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };
  const selected = versions.find((version) => version.id === selectedVersion);
  // What a rollback redeploys (the API's rule: the newest deployment of another version than the one serving). Without
  // the history to read, the API is left to say whether there is one.
  const rollbackTarget = can("deployments.read")
    ? history.data?.find((deployment) => deployment.versionId !== environment.deployedVersionId)?.versionId
    : (environment.deployedVersionId ?? undefined);
  const rollbackLabel = can("deployments.read") && rollbackTarget ? `Roll back to ${numberOf(rollbackTarget)}` : "Roll back";
  const rollbackTitle = rollbackTarget ? "Redeploy the version deployed before the current one" : "Nothing earlier to roll back to";
  // A production environment serves real traffic: deploying or rolling back there asks once more.
  const production = environment.type === "production";
  const deployDisabled = busy || !selected || selected.id === environment.deployedVersionId;
  const deployLabel = selected ? `Deploy v${selected.number}` : "Deploy";
  return (
    <div className="env-card" data-testid={`environment-${environment.slug}`}>
      <div className="env-card-header">
        <div>
          <strong>{environment.name}</strong> <span className="tag">{environment.type ?? ""}</span>
          <div className="muted small">{environment.slug} · {environment.id}</div>
        </div>
        <div className="deployed" data-testid={`deployed-${environment.slug}`}>
          {environment.deployedVersionId ? <>serving <strong>{numberOf(environment.deployedVersionId)}</strong></> : <span className="muted">nothing deployed</span>}
        </div>
      </div>
      {canDeploy ? (
        <div className="env-card-actions">
          {production ? (
            <ConfirmButton
              className="primary"
              disabled={deployDisabled}
              question={`Deploy v${selected?.number ?? "?"} to ${environment.name} (production)?`}
              onConfirm={() => act("deploy")}
              testId={`deploy-${environment.slug}`}
            >
              {deployLabel}
            </ConfirmButton>
          ) : (
            <button className="primary" disabled={deployDisabled} onClick={() => void act("deploy")} data-testid={`deploy-${environment.slug}`}>
              {deployLabel}
            </button>
          )}
          {production ? (
            <ConfirmButton
              className=""
              disabled={busy || !rollbackTarget}
              question={`${rollbackLabel} in ${environment.name} (production)?`}
              onConfirm={() => act("rollback")}
              testId={`rollback-${environment.slug}`}
            >
              <span title={rollbackTitle}>{rollbackLabel}</span>
            </ConfirmButton>
          ) : (
            <button disabled={busy || !rollbackTarget} onClick={() => void act("rollback")} data-testid={`rollback-${environment.slug}`} title={rollbackTitle}>
              {rollbackLabel}
            </button>
          )}
          {message ? <span className="ok" data-testid={`deploy-result-${environment.slug}`}>{message}</span> : null}
        </div>
      ) : null}
      <ProblemBox problem={problem ?? history.error} />
      {history.data && history.data.length > 0 ? (
        <details className="history">
          <summary>Deployment history ({history.data.length})</summary>
          <DataTable
            rows={history.data}
            rowKey={(row) => row.id}
            testId={`history-${environment.slug}`}
            columns={[
              { header: "When", render: (row) => when(row.createdAt) },
              { header: "Kind", render: (row) => <span className={`tag ${row.kind}`}>{row.kind}</span> },
              { header: "Version", render: (row) => numberOf(row.versionId) },
              { header: "Before", render: (row) => numberOf(row.previousVersionId) },
            ]}
          />
        </details>
      ) : null}
    </div>
  );
}

function DiffPanel({ versions }: { versions: Version[] }) {
  const api = useApi();
  const [from, setFrom] = useState(versions[1]?.id ?? versions[0]?.id ?? "");
  const [to, setTo] = useState(versions[0]?.id ?? DRAFT);
  const [changes, setChanges] = useState<DiffEntry[] | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setProblem(null);
    try {
      if (to === DRAFT) {
        // The API diffs versions; against the draft the console compares the two documents itself.
        const [version, draft] = await Promise.all([api.get<{ document: unknown }>(`/api/v1/admin/versions/${segment(from)}`), api.get<unknown>("/api/v1/admin/config")]);
        setChanges(diffValues(version.document, draft));
      } else {
        setChanges((await api.get<{ changes: DiffEntry[] }>(`/api/v1/admin/versions/${segment(to)}/diff?against=${segment(from)}`)).changes);
      }
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  };
  const options = versions.map((version) => (
    <option key={version.id} value={version.id}>
      v{version.number} {version.description ? `— ${version.description}` : ""}
    </option>
  ));
  return (
    <Panel title="Compare">
      <div className="form inline-form">
        <label className="inline">
          from
          <select value={from} onChange={(event) => setFrom(event.target.value)} data-testid="diff-from">
            {options}
          </select>
        </label>
        <label className="inline">
          to
          <select value={to} onChange={(event) => setTo(event.target.value)} data-testid="diff-to">
            {options}
            <option value={DRAFT}>the draft</option>
          </select>
        </label>
        <button onClick={() => void run()} disabled={busy || !from} data-testid="diff-run">
          Compare
        </button>
      </div>
      <ProblemBox problem={problem} />
      {changes ? <DiffList changes={changes} testId="diff-result" /> : null}
    </Panel>
  );
}

/** A version's frozen document, as YAML (what the config document screen shows of the draft). */
function VersionDocument({ version, onClose }: { version: Version; onClose(): void }) {
  const api = useApi();
  const loaded = useLoad(() => api.get<{ document: unknown }>(`/api/v1/admin/versions/${segment(version.id)}`), [api, version.id]);
  return (
    <Panel
      title={`v${version.number}${version.description ? ` — ${version.description}` : ""}`}
      testId="version-document"
      actions={
        <button onClick={onClose} data-testid="version-document-close">
          Close
        </button>
      }
    >
      <ProblemBox problem={loaded.error} />
      {loaded.data ? <pre className="json-view">{stringify(loaded.data.document)}</pre> : loaded.loading ? <p className="loading">Loading…</p> : null}
    </Panel>
  );
}

export default function VersionsPage() {
  const api = useApi();
  const { can, environments, refreshEnvironments } = useSession();
  const versions = useLoad(() => api.get<{ versions: Version[] }>("/api/v1/admin/versions").then((answer) => answer.versions), [api]);
  const [selectedVersion, setSelectedVersion] = useState("");
  const [viewing, setViewing] = useState<Version | null>(null);
  useEffect(() => {
    if (versions.data?.length && !versions.data.some((version) => version.id === selectedVersion)) setSelectedVersion(versions.data[0]!.id);
  }, [versions.data, selectedVersion]);
  const list = versions.data ?? [];
  const deployedTo = (id: string) => environments.filter((environment) => environment.deployedVersionId === id);

  return (
    <Page title="Versions and deployments" subtitle="Freeze the draft into a version, deploy it to an environment, roll back.">
      <ProblemBox problem={versions.error} />
      {can("versions.create") ? (
        <CreateVersion
          onCreated={(version) => {
            setSelectedVersion(version.id);
            versions.reload();
          }}
        />
      ) : null}
      <Panel
        title="Environments"
        actions={
          can("deployments.write") && list.length > 0 ? (
            <label className="inline">
              version to deploy
              <select value={selectedVersion} onChange={(event) => setSelectedVersion(event.target.value)} data-testid="deploy-version">
                {list.map((version) => (
                  <option key={version.id} value={version.id}>
                    v{version.number} {version.description ? `— ${version.description}` : ""}
                  </option>
                ))}
              </select>
            </label>
          ) : null
        }
      >
        <div className="env-cards">
          {environments.map((environment) => (
            <EnvironmentCard
              key={environment.id}
              environment={environment}
              versions={list}
              selectedVersion={selectedVersion}
              canDeploy={can("deployments.write")}
              onChanged={() => void refreshEnvironments().catch(() => undefined /* the shell shows the failure */)}
            />
          ))}
        </div>
      </Panel>
      <Panel title="Versions">
        <DataTable
          rows={list}
          rowKey={(row) => row.id}
          rowTestId={(row) => `version-row-${row.number}`}
          testId="versions"
          empty="No versions yet: create one from the draft."
          columns={[
            { header: "#", render: (row) => <strong>v{row.number}</strong> },
            { header: "Description", render: (row) => row.description || <span className="muted">—</span> },
            { header: "Created", render: (row) => <span className="muted">{when(row.createdAt)}</span> },
            {
              header: "Serving in",
              render: (row) => (
                <span className="tags">
                  {deployedTo(row.id).map((environment) => (
                    <span key={environment.id} className="tag live">
                      {environment.slug}
                    </span>
                  ))}
                </span>
              ),
            },
            { header: "Id", render: (row) => <code className="muted small">{row.id}</code> },
            {
              header: "",
              className: "actions",
              render: (row) => (
                <button className="link" onClick={() => setViewing(row)} data-testid={`version-view-${row.number}`}>
                  View
                </button>
              ),
            },
          ]}
        />
      </Panel>
      {viewing ? <VersionDocument key={viewing.id} version={viewing} onClose={() => setViewing(null)} /> : null}
      {list.length > 0 ? <DiffPanel key={list[0]!.id} versions={list} /> : null}
    </Page>
  );
}
