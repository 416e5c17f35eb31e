/**
 * The signed-in credential, what the API says it may do, and the environment the operator is looking at. The
 * credential lives in sessionStorage: it survives a reload but not the tab, and is never written anywhere else.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiProblem, createApi, fetchJson, fetchSession, type Api, type Credential } from "./api";

export interface Session {
  credential: "operator" | "organizationKey" | "environmentKey";
  role: "admin" | "deployer" | "read-only" | null;
  organizationId: string;
  environment: { id: string; slug: string } | null;
  permissions: string[];
}

export interface Environment {
  id: string;
  slug: string;
  name: string;
  type?: "preview" | "production";
  deployedVersionId?: string | null;
  createdAt?: string;
}

export interface SessionValue {
  session: Session;
  api: Api;
  can(action: string): boolean;
  environments: Environment[];
  environmentId: string | null;
  setEnvironmentId(id: string): void;
  /** Why the environments could not be loaded (null when they were). */
  environmentsError: string | null;
  /** Reloads the environments (after a deploy, their deployed versions change). */
  refreshEnvironments(): Promise<void>;
  /** The operator token only: back to the list of organizations, to act on another one. */
  switchOrganization(): void;
  signOut(): void;
}

interface AuthState {
  /**
   * `choosingOrganization`: the operator token alone, accepted, acting on no organization yet. `unreachable`: the
   * stored credential could not be checked (network, 5xx, 429): it is kept, and checked again on Retry.
   */
  status: "checking" | "signedOut" | "signedIn" | "choosingOrganization" | "unreachable";
  credential?: Credential;
  session?: Session;
  /** Why the last session ended, shown on the sign-in page. */
  ended?: string;
  /** Why the platform could not be reached. */
  unreachable?: string;
  /** The route the user was on when the API refused the credential: signing in again returns there. */
  returnTo?: string;
}

const CREDENTIAL_KEY = "console.credential";
const ENVIRONMENT_KEY = "console.environment";

function storedCredential(): Credential | undefined {
  try {
    const raw = sessionStorage.getItem(CREDENTIAL_KEY);
    return raw ? (JSON.parse(raw) as Credential) : undefined;
  } catch {
    return undefined;
  }
}

/** Keys say what they are; any other credential is the operator token. */
export const looksLikeKey = (token: string) => /^(ok|sk)_/.test(token.trim());
const isBareOperatorToken = (credential: Credential) => !credential.organizationId && !looksLikeKey(credential.token);

/** Only a 401 says the credential itself is refused; anything else (no answer, 5xx, 429) says nothing about it. */
const refusesCredential = (error: unknown) => error instanceof ApiProblem && error.status === 401;

/** Where a credential stands: a session, or (the operator token alone) the organizations it may pick from. */
async function verify(credential: Credential): Promise<Pick<AuthState, "status" | "session">> {
  if (isBareOperatorToken(credential)) {
    // Only the operator token may list organizations: a 200 proves the token.
    await fetchJson(credential, "/api/v1/admin/organizations");
    return { status: "choosingOrganization" };
  }
  return { status: "signedIn", session: await fetchSession<Session>(credential) };
}

export interface SignInValue {
  status: AuthState["status"];
  ended?: string;
  unreachable?: string;
  signIn(credential: Credential): Promise<void>;
  /** The operator token's Api while it picks an organization (null otherwise). */
  operatorApi: Api | null;
  /** Acts on an organization with the operator token (X-Organization-Id). */
  actAsOrganization(organizationId: string): Promise<void>;
  retry(): void;
  signOut(): void;
}

const SessionContext = createContext<SessionValue | null>(null);
const SignInContext = createContext<SignInValue | null>(null);

/** The hash to land on after signing in: where the user was when the session ended, or the overview. */
function landOn(returnTo: string | undefined) {
  const target = returnTo && returnTo !== "#/sign-in" ? returnTo : location.hash === "#/sign-in" || location.hash === "" ? "#/" : location.hash;
  if (location.hash !== target) location.hash = target;
}

export function SessionProvider({ children, signedOut, choosingOrganization }: { children: ReactNode; signedOut: ReactNode; choosingOrganization: ReactNode }) {
  const [auth, setAuth] = useState<AuthState>(() => (storedCredential() ? { status: "checking", credential: storedCredential() } : { status: "signedOut" }));
  const [environments, setEnvironments] = useState<Environment[]>([]);
  const [environmentsError, setEnvironmentsError] = useState<string | null>(null);
  const [environmentId, setEnvironmentIdState] = useState<string | null>(() => sessionStorage.getItem(ENVIRONMENT_KEY));

  const endSession = useCallback((message?: string, { keepRoute = false } = {}) => {
    sessionStorage.removeItem(CREDENTIAL_KEY);
    const returnTo = keepRoute && location.hash !== "#/sign-in" ? location.hash : undefined;
    setAuth({ status: "signedOut", ended: message, returnTo });
    setEnvironments([]);
    setEnvironmentsError(null);
    if (location.hash !== "#/sign-in") location.hash = "#/sign-in";
  }, []);

  const api = useMemo(
    () => (auth.credential ? createApi(auth.credential, (message) => endSession(`Your session ended: ${message}`, { keepRoute: true })) : null),
    [auth.credential, endSession],
  );

  const returnTo = auth.returnTo;
  const signIn = useCallback(
    async (credential: Credential) => {
      const verified = await verify(credential);
      sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
      if (verified.status === "signedIn") landOn(returnTo);
      // An operator still picking an organization keeps the route to return to once it has picked one.
      setAuth({ ...verified, credential, returnTo: verified.status === "signedIn" ? undefined : returnTo });
    },
    [returnTo],
  );

  const actAsOrganization = useCallback(
    async (organizationId: string) => {
      if (!auth.credential) return;
      await signIn({ token: auth.credential.token, organizationId });
    },
    [auth.credential, signIn],
  );

  const switchOrganization = useCallback(() => {
    if (!auth.credential) return;
    const credential = { token: auth.credential.token };
    sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
    sessionStorage.removeItem(ENVIRONMENT_KEY);
    setEnvironments([]);
    setEnvironmentsError(null);
    setEnvironmentIdState(null);
    setAuth({ status: "choosingOrganization", credential });
  }, [auth.credential]);

  // A reload: the stored credential is checked again (it may have been revoked since). Only the API refusing it (401)
  // ends the session; a platform that cannot answer right now leaves it stored, to be checked again.
  useEffect(() => {
    if (auth.status !== "checking" || !auth.credential) return;
    const credential = auth.credential;
    let current = true;
    verify(credential).then(
      (verified) => current && setAuth({ ...verified, credential }),
      (error: Error) => {
        if (!current) return;
        if (refusesCredential(error)) endSession(`Your session ended: ${error.message}`, { keepRoute: true });
        else setAuth({ status: "unreachable", credential, unreachable: error.message });
      },
    );
    return () => {
      current = false;
    };
  }, [auth, endSession]);

  const retry = useCallback(() => setAuth((current) => (current.credential ? { status: "checking", credential: current.credential } : current)), []);

  const refreshEnvironments = useCallback(async () => {
    if (!api) return;
    try {
      const { environments } = await api.get<{ environments: Environment[] }>("/api/v1/admin/environments");
      setEnvironmentsError(null);
      setEnvironments(environments);
      setEnvironmentIdState((current) => {
        const kept = environments.find((environment) => environment.id === current);
        const picked = kept ?? environments.find((environment) => environment.slug === "live") ?? environments[0];
        if (picked) sessionStorage.setItem(ENVIRONMENT_KEY, picked.id);
        return picked?.id ?? null;
      });
    } catch (error) {
      if (!refusesCredential(error)) setEnvironmentsError((error as Error).message);
      throw error;
    }
  }, [api]);

  useEffect(() => {
    // A failure is shown by the shell (environmentsError), with a Retry.
    if (auth.status === "signedIn") refreshEnvironments().catch(() => undefined);
  }, [auth.status, refreshEnvironments]);

  const value = useMemo<SessionValue | null>(() => {
    if (auth.status !== "signedIn" || !auth.session || !api) return null;
    const permissions = new Set(auth.session.permissions);
    return {
      session: auth.session,
      api,
      can: (action) => permissions.has(action),
      environments,
      environmentId,
      setEnvironmentId: (id) => {
        sessionStorage.setItem(ENVIRONMENT_KEY, id);
        setEnvironmentIdState(id);
      },
      environmentsError,
      refreshEnvironments,
      switchOrganization,
      signOut: () => endSession(),
    };
  }, [auth, api, environments, environmentId, environmentsError, refreshEnvironments, switchOrganization, endSession]);

  const signInValue: SignInValue = {
    status: auth.status,
    ended: auth.ended,
    unreachable: auth.unreachable,
    signIn,
    operatorApi: auth.status === "choosingOrganization" ? api : null,
    actAsOrganization,
    retry,
    signOut: () => endSession(),
  };

  let shown: ReactNode;
  if (value) shown = <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
  else if (auth.status === "checking") shown = <p className="loading">Checking your session…</p>;
  else if (auth.status === "unreachable") shown = <Unreachable message={auth.unreachable} onRetry={retry} onSignOut={() => endSession()} />;
  else if (auth.status === "choosingOrganization") shown = choosingOrganization;
  else shown = signedOut;
  return <SignInContext.Provider value={signInValue}>{shown}</SignInContext.Provider>;
}

/** The stored credential could not be checked: it is kept, and the user decides when to try again. */
function Unreachable({ message, onRetry, onSignOut }: { message?: string; onRetry(): void; onSignOut(): void }) {
  return (
    <main className="sign-in">
      <div className="sign-in-card" data-testid="session-unreachable">
        <h1>Console</h1>
        <div className="problem" role="alert">
          <strong>Can't reach the platform</strong>
          {message ? <p>{message}</p> : null}
        </div>
        <p className="muted">You are still signed in: your credential is kept in this tab.</p>
        <button type="button" className="primary wide" onClick={onRetry} data-testid="session-retry">
          Retry
        </button>
        <button type="button" className="link" onClick={onSignOut}>
          Sign out
        </button>
      </div>
    </main>
  );
}

/** The signed-in session; only used below SessionProvider's signed-in branch. */
export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error("useSession outside a signed-in session");
  return value;
}

/** The sign-in page's access to the provider. */
export function useSignIn() {
  const value = useContext(SignInContext);
  if (!value) throw new Error("useSignIn outside SessionProvider");
  return value;
}

/** The picked environment as an object (null while environments load or when there are none). */
export function useEnvironment(): Environment | null {
  const { environments, environmentId } = useSession();
  return environments.find((environment) => environment.id === environmentId) ?? null;
}
