/**
 * The signed-in credential, what the API says it may do, and the environment the operator is looking at. The
 * credential lives in sessionStorage: it survives a reload but not the tab, and is never written anywhere else.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { createApi, fetchSession, type Api, type Credential } from "./api";

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
  /** Reloads the environments (after a deploy, their deployed versions change). */
  refreshEnvironments(): Promise<void>;
  signOut(): void;
}

interface AuthState {
  status: "checking" | "signedOut" | "signedIn";
  credential?: Credential;
  session?: Session;
  /** Why the last session ended, shown on the sign-in page. */
  ended?: string;
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

const SessionContext = createContext<SessionValue | null>(null);
const SignInContext = createContext<{ signIn(credential: Credential): Promise<void>; ended?: string; status: AuthState["status"] } | null>(null);

export function SessionProvider({ children, signedOut }: { children: ReactNode; signedOut: ReactNode }) {
  const [auth, setAuth] = useState<AuthState>(() => (storedCredential() ? { status: "checking", credential: storedCredential() } : { status: "signedOut" }));
  const [environments, setEnvironments] = useState<Environment[]>([]);
  const [environmentId, setEnvironmentIdState] = useState<string | null>(() => sessionStorage.getItem(ENVIRONMENT_KEY));

  const endSession = useCallback((message?: string) => {
    sessionStorage.removeItem(CREDENTIAL_KEY);
    setAuth({ status: "signedOut", ended: message });
    setEnvironments([]);
    if (location.hash !== "#/sign-in") location.hash = "#/sign-in";
  }, []);

  const api = useMemo(
    () => (auth.credential ? createApi(auth.credential, (message) => endSession(`Your session ended: ${message}`)) : null),
    [auth.credential, endSession],
  );

  const signIn = useCallback(async (credential: Credential) => {
    const session = await fetchSession<Session>(credential);
    sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
    setAuth({ status: "signedIn", credential, session });
  }, []);

  // A reload: the stored credential is checked again (it may have been revoked since).
  useEffect(() => {
    if (auth.status !== "checking" || !auth.credential) return;
    const credential = auth.credential;
    fetchSession<Session>(credential).then(
      (session) => setAuth({ status: "signedIn", credential, session }),
      (error: Error) => endSession(`Your session ended: ${error.message}`),
    );
  }, [auth, endSession]);

  const refreshEnvironments = useCallback(async () => {
    if (!api) return;
    const { environments } = await api.get<{ environments: Environment[] }>("/api/v1/admin/environments");
    setEnvironments(environments);
    setEnvironmentIdState((current) => {
      const kept = environments.find((environment) => environment.id === current);
      const picked = kept ?? environments.find((environment) => environment.slug === "live") ?? environments[0];
      if (picked) sessionStorage.setItem(ENVIRONMENT_KEY, picked.id);
      return picked?.id ?? null;
    });
  }, [api]);

  useEffect(() => {
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
      refreshEnvironments,
      signOut: () => endSession(),
    };
  }, [auth, api, environments, environmentId, refreshEnvironments, endSession]);

  return (
    <SignInContext.Provider value={{ signIn, ended: auth.ended, status: auth.status }}>
      {value ? <SessionContext.Provider value={value}>{children}</SessionContext.Provider> : auth.status === "checking" ? <p className="loading">Checking your session…</p> : signedOut}
    </SignInContext.Provider>
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
