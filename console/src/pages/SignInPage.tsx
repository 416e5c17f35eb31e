import { useState, type FormEvent } from "react";
import { looksLikeKey, useSignIn } from "../session";

export default function SignInPage() {
  const { signIn, ended } = useSignIn();
  const [credential, setCredential] = useState("");
  const [organizationId, setOrganizationId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** The operator token may name the organization to act on, or leave it to the organizations screen. */
  const isOperatorToken = credential.trim() !== "" && !looksLikeKey(credential);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const token = credential.trim();
    if (!token) return setError("Enter an organization key (ok_…), an environment's secret key (sk_…) or the operator token.");
    if (/^pk_/.test(token)) return setError("A publishable key cannot sign in: use an organization key (ok_…) or an environment's secret key (sk_…).");
    setBusy(true);
    setError(null);
    try {
      await signIn({ token, ...(isOperatorToken && organizationId.trim() ? { organizationId: organizationId.trim() } : {}) });
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const shown = error ?? ended ?? null;
  return (
    <main className="sign-in">
      <form onSubmit={submit} className="sign-in-card" noValidate>
        <h1>Console</h1>
        <p className="muted">Sign in with a credential of your organization. It is kept in this tab only.</p>
        {shown ? (
          <div className="problem" role="alert" data-testid="signin-error">
            {shown}
          </div>
        ) : null}
        <label className="field">
          <span className="field-label">Credential</span>
          <input
            type="password"
            value={credential}
            onChange={(event) => setCredential(event.target.value)}
            placeholder="ok_… or sk_…"
            autoComplete="off"
            autoFocus
            data-testid="signin-credential"
          />
          <span className="field-hint">An organization key (ok_…), an environment's secret key (sk_…), or the operator token.</span>
        </label>
        {isOperatorToken ? (
          <label className="field">
            <span className="field-label">Organization id (optional)</span>
            <input value={organizationId} onChange={(event) => setOrganizationId(event.target.value)} placeholder="org_…" data-testid="signin-organization" />
            <span className="field-hint">The operator token acts on one organization at a time. Leave this empty to list, create or pick one.</span>
          </label>
        ) : null}
        <button type="submit" className="primary wide" disabled={busy} data-testid="signin-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
