/**
 * The operator token signed in on its own: the platform's organizations, to create one or pick the one to act on.
 * Creating one returns its first admin organization key, shown here once (only its hash is stored).
 */
import { useState, type FormEvent } from "react";
import { ApiProblem } from "../api";
import { useLoad } from "../components/useLoad";
import { ProblemBox } from "../components/ProblemBox";
import { useSignIn } from "../session";

interface Organization {
  id: string;
  name: string;
  createdAt: string;
}

interface CreatedOrganization {
  organization: Organization;
  organizationKeys: { key: string }[];
}

export default function OrganizationsPage() {
  const { operatorApi, actAsOrganization, signOut } = useSignIn();
  const organizations = useLoad(
    () => operatorApi!.get<{ organizations: Organization[] }>("/api/v1/admin/organizations").then((body) => body.organizations),
    [operatorApi],
  );
  const [name, setName] = useState("");
  const [nameError, setNameError] = useState<string | null>(null);
  const [created, setCreated] = useState<{ organization: Organization; adminKey: string } | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed || trimmed.length > 200) return setNameError("1 to 200 characters");
    setNameError(null);
    setProblem(null);
    setBusy(true);
    try {
      const body = await operatorApi!.post<CreatedOrganization>("/api/v1/admin/organizations", { name: trimmed });
      setCreated({ organization: body.organization, adminKey: body.organizationKeys[0]?.key ?? "" });
      setName("");
      organizations.reload();
    } catch (error) {
      const nameDetail = error instanceof ApiProblem ? error.details.find((detail) => detail.path === "name") : undefined;
      if (nameDetail) setNameError(nameDetail.message);
      else setProblem(error);
    } finally {
      setBusy(false);
    }
  };

  const use = async (organizationId: string) => {
    setProblem(null);
    setBusy(true);
    try {
      await actAsOrganization(organizationId);
    } catch (error) {
      setProblem(error);
      setBusy(false);
    }
  };

  const list = organizations.data ?? [];
  return (
    <main className="organizations">
      <header className="organizations-header">
        <div>
          <h1>Organizations</h1>
          <p className="muted">Signed in with the operator token. Create an organization, or pick the one to act on.</p>
        </div>
        <button type="button" className="link" onClick={signOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <ProblemBox problem={problem} />
      <section className="panel">
        <h2>New organization</h2>
        <form className="form inline-form" onSubmit={create} noValidate>
          <input value={name} onChange={(event) => setName(event.target.value)} placeholder="Acme" aria-label="Name" data-testid="org-name" disabled={busy} />
          <button type="submit" className="primary" disabled={busy} data-testid="org-create">
            Create
          </button>
          {nameError ? (
            <span className="field-error" data-testid="field-error-name">
              {nameError}
            </span>
          ) : null}
        </form>
        {created ? (
          <div className="notice created-organization">
            <p>
              Created <strong>{created.organization.name}</strong> (<code>{created.organization.id}</code>) with a preview and a live environment. Its
              admin organization key, shown this once — keep it to sign in without the operator token:
            </p>
            <code className="secret" data-testid="org-created-key">
              {created.adminKey}
            </code>
            <div className="form-actions">
              <button type="button" className="primary" onClick={() => void use(created.organization.id)} disabled={busy} data-testid={`org-use-${created.organization.id}`}>
                Continue as this organization
              </button>
            </div>
          </div>
        ) : null}
      </section>
      <section className="panel">
        <h2>All organizations</h2>
        {organizations.error ? <ProblemBox problem={organizations.error} /> : null}
        {organizations.loading && !organizations.data ? (
          <p className="loading">Loading…</p>
        ) : list.length === 0 ? (
          <p className="empty" data-testid="org-list">
            No organization yet: create the first one above.
          </p>
        ) : (
          <table className="data-table" data-testid="org-list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Id</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.map((organization) => (
                <tr key={organization.id} data-testid={`org-row-${organization.id}`}>
                  <td>{organization.name}</td>
                  <td>
                    <code>{organization.id}</code>
                  </td>
                  <td className="muted">{new Date(organization.createdAt).toLocaleString()}</td>
                  <td>
                    {/* The organization just created is continued with from the panel above (one button per organization). */}
                    {created?.organization.id === organization.id ? (
                      <span className="muted small">just created</span>
                    ) : (
                      <button type="button" onClick={() => void use(organization.id)} disabled={busy} data-testid={`org-use-${organization.id}`}>
                        Use
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </main>
  );
}
