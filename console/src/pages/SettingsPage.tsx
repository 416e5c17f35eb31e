import { useState, type FormEvent } from "react";
import { segment, useApi } from "../api";
import { ConfirmButton } from "../components/ConfirmButton";
import { DataTable } from "../components/DataTable";
import { Field, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { useLoad } from "../components/useLoad";
import { collector } from "../components/validation";
import { useEnvironment, useSession } from "../session";

interface Variable {
  name: string;
  secret: boolean;
  value?: string;
  updatedAt: string;
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const HOST = /^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+(:\d{1,5})?$/i;

function VariableForm({ environmentId, editing, onSaved, onCancel }: { environmentId: string; editing: Variable | null; onSaved(): void; onCancel(): void }) {
  const api = useApi();
  const [name, setName] = useState(editing?.name ?? "");
  const [value, setValue] = useState(editing && !editing.secret ? (editing.value ?? "") : "");
  const [secret, setSecret] = useState(editing?.secret ?? false);
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const check = collector();
    check.check("name", !VARIABLE_NAME.test(name) && "1-64 characters of A-Z, a-z, 0-9 and _, not starting with a digit");
    check.check("value", value.length > 10_000 && "at most 10,000 characters");
    if (secret && !value) check.check("value", "enter the secret's value (it is never shown again)");
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await api.put(`/api/v1/admin/environments/${segment(environmentId)}/variables/${segment(name)}`, { value, secret });
      onSaved();
    } catch (error) {
      errors.failed(error, ["name", "value", "secret"]);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="form inline-form" noValidate data-testid="variable-form">
      <FormErrorsScope errors={errors}>
        <div className="form-row">
          <Field label="Name" path="name">
            <input value={name} onChange={(event) => setName(event.target.value)} readOnly={editing !== null} placeholder="CRM_API_KEY" data-testid="variable-name" />
          </Field>
          <Field label={secret ? "Secret value" : "Value"} path="value" hint={secret ? "Write-only: stored encrypted, never displayed." : undefined}>
            <input
              type={secret ? "password" : "text"}
              value={value}
              onChange={(event) => setValue(event.target.value)}
              autoComplete="off"
              placeholder={editing?.secret ? "enter a new value" : ""}
              data-testid="variable-value"
            />
          </Field>
          <Field group label="Kind" path="secret">
            <label className="inline">
              <input type="checkbox" checked={secret} onChange={(event) => setSecret(event.target.checked)} data-testid="variable-secret" />
              secret
            </label>
          </Field>
        </div>
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy} data-testid="variable-save">
            {busy ? "Saving…" : editing ? "Save" : "Add"}
          </button>
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        </div>
      </FormErrorsScope>
    </form>
  );
}

function Variables({ environmentId, writable }: { environmentId: string; writable: boolean }) {
  const api = useApi();
  const variables = useLoad(() => api.get<{ variables: Variable[] }>(`/api/v1/admin/environments/${segment(environmentId)}/variables`), [api, environmentId]);
  const [editing, setEditing] = useState<Variable | null | "new">(null);
  const [problem, setProblem] = useState<unknown>(null);
  return (
    <Panel
      title="Variables and secrets"
      testId="variables"
      actions={
        writable && editing === null ? (
          <button className="primary" onClick={() => setEditing("new")} data-testid="variable-add">
            Add variable
          </button>
        ) : null
      }
    >
      <p className="muted small">Workflows read them as <code>env.NAME</code>. Secret values are write-only.</p>
      <ProblemBox problem={variables.error ?? problem} />
      {editing !== null ? (
        <VariableForm
          key={editing === "new" ? "new" : editing.name}
          environmentId={environmentId}
          editing={editing === "new" ? null : editing}
          onSaved={() => {
            setEditing(null);
            variables.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      ) : null}
      {variables.data ? (
        <DataTable
          rows={variables.data.variables}
          rowKey={(row) => row.name}
          rowTestId={(row) => `variable-row-${row.name}`}
          empty="No variables."
          columns={[
            { header: "Name", render: (row) => <code>{row.name}</code> },
            { header: "Value", render: (row) => (row.secret ? <span className="muted">•••••• (secret)</span> : <code className="value">{row.value}</code>) },
            { header: "Updated", render: (row) => <time className="muted">{new Date(row.updatedAt).toLocaleString()}</time> },
            {
              header: "",
              className: "actions",
              render: (row) =>
                writable ? (
                  <>
                    <button className="link" onClick={() => setEditing(row)} data-testid={`variable-edit-${row.name}`}>
                      {row.secret ? "Replace" : "Edit"}
                    </button>
                    <ConfirmButton
                      className="link danger"
                      testId={`variable-delete-${row.name}`}
                      question={`Delete ${row.name}?`}
                      onConfirm={async () => {
                        setProblem(null);
                        try {
                          await api.delete(`/api/v1/admin/environments/${segment(environmentId)}/variables/${segment(row.name)}`);
                          variables.reload();
                        } catch (error) {
                          setProblem(error);
                        }
                      }}
                    >
                      Delete
                    </ConfirmButton>
                  </>
                ) : null,
            },
          ]}
        />
      ) : null}
    </Panel>
  );
}

function Egress({ environmentId, writable }: { environmentId: string; writable: boolean }) {
  const api = useApi();
  const path = `/api/v1/admin/environments/${segment(environmentId)}/egress`;
  const egress = useLoad(() => api.get<{ hosts: string[] }>(path), [api, path]);
  return (
    <Panel title="Egress allow-list" testId="egress">
      <p className="muted small">Hosts workflow code may fetch (through the platform's logged gateway). One per line; <code>*.example.com</code> allows subdomains.</p>
      <ProblemBox problem={egress.error} />
      {egress.data ? <EgressForm key={path} hosts={egress.data.hosts} path={path} writable={writable} onSaved={egress.reload} /> : null}
    </Panel>
  );
}

function EgressForm({ hosts, path, writable, onSaved }: { hosts: string[]; path: string; writable: boolean; onSaved(): void }) {
  const api = useApi();
  const [text, setText] = useState(hosts.join("\n"));
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const errors = useFormErrors();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const list = text
      .split("\n")
      .map((host) => host.trim())
      .filter(Boolean);
    const check = collector();
    const bad = list.filter((host) => !HOST.test(host));
    check.check("hosts", bad.length > 0 && `not host names: ${bad.join(", ")} (e.g. api.example.com or *.example.com)`);
    check.check("hosts", list.length > 100 && "at most 100 hosts");
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await api.put(path, { hosts: list });
      setSaved(true);
      onSaved();
    } catch (error) {
      errors.failed(error, ["hosts"]);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="form" noValidate>
      <FormErrorsScope errors={errors}>
        <Field label="Hosts" path="hosts" wide>
          <textarea value={text} onChange={(event) => { setText(event.target.value); setSaved(false); }} rows={5} className="mono" readOnly={!writable} placeholder="api.example.com" data-testid="egress-hosts" />
        </Field>
        {writable ? (
          <div className="form-actions">
            <button type="submit" className="primary" disabled={busy} data-testid="egress-save">
              {busy ? "Saving…" : "Save allow-list"}
            </button>
            {saved ? <span className="ok">Saved.</span> : null}
          </div>
        ) : null}
      </FormErrorsScope>
    </form>
  );
}

export default function SettingsPage() {
  const { can } = useSession();
  const environment = useEnvironment();
  return (
    <Page title="Environment settings" subtitle={environment ? <>Workflow settings of the <strong>{environment.name}</strong> environment ({environment.slug}); pick another in the header.</> : "Pick an environment in the header."}>
      {environment ? (
        can("settings.read") ? (
          <>
            {/* Keyed by environment: a form left open must not follow the picker and write to the newly picked one. */}
            <Variables key={`variables-${environment.id}`} environmentId={environment.id} writable={can("settings.write")} />
            <Egress key={`egress-${environment.id}`} environmentId={environment.id} writable={can("settings.write")} />
          </>
        ) : (
          <p className="muted">This credential may not read environment settings.</p>
        )
      ) : (
        <p className="muted">No environment.</p>
      )}
    </Page>
  );
}
