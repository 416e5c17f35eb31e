/**
 * The console's shell: sign-in until a credential is accepted, then a left navigation, a header (organization,
 * credential, environment picker, sign-out) and the page of the hash route.
 */
import { lazy, Suspense, type ComponentType, type LazyExoticComponent } from "react";
import { PageErrorBoundary } from "./components/PageErrorBoundary";
import { useRoute } from "./components/router";
import OrganizationsPage from "./pages/OrganizationsPage";
import SignInPage from "./pages/SignInPage";
import { SessionProvider, useSession, type Session } from "./session";

interface RouteEntry {
  page: string;
  label: string;
  component: LazyExoticComponent<ComponentType>;
  /** The action a credential needs to see the entry (hidden otherwise; the page would only show a 403). */
  needs?: string;
}

const NAVIGATION: { section: string; routes: RouteEntry[] }[] = [
  {
    section: "",
    routes: [{ page: "", label: "Overview", component: lazy(() => import("./pages/OverviewPage")) }],
  },
  {
    section: "Configure",
    routes: [
      { page: "features", label: "Features", component: lazy(() => import("./pages/FeaturesPage")) },
      { page: "plans", label: "Plans", component: lazy(() => import("./pages/PlansPage")) },
      { page: "surfaces", label: "Surfaces", component: lazy(() => import("./pages/SurfacesPage")) },
      { page: "auth-methods", label: "Authentication", component: lazy(() => import("./pages/AuthMethodsPage")) },
      { page: "workflows", label: "Workflows", component: lazy(() => import("./pages/WorkflowsPage")) },
      { page: "offers", label: "Offers", component: lazy(() => import("./pages/OffersPage")) },
      { page: "config", label: "Config document", component: lazy(() => import("./pages/ConfigPage")) },
    ],
  },
  {
    section: "Ship",
    routes: [
      { page: "versions", label: "Versions & deploys", component: lazy(() => import("./pages/VersionsPage")) },
      { page: "settings", label: "Environment settings", component: lazy(() => import("./pages/SettingsPage")), needs: "settings.read" },
    ],
  },
  {
    section: "Observe",
    routes: [
      { page: "playground", label: "Playground", component: lazy(() => import("./pages/PlaygroundPage")) },
      { page: "events", label: "Events", component: lazy(() => import("./pages/EventsPage")), needs: "events.read" },
      { page: "metrics", label: "Metrics", component: lazy(() => import("./pages/MetricsPage")), needs: "events.read" },
    ],
  },
];

const ROUTES = NAVIGATION.flatMap((section) => section.routes);

function credentialLabel(session: Session): string {
  switch (session.credential) {
    case "operator":
      return "Operator token";
    case "organizationKey":
      return `Organization key · ${session.role ?? ""}`;
    case "environmentKey":
      return `Environment key · ${session.environment?.slug ?? ""}`;
  }
}

function EnvironmentPicker() {
  const { environments, environmentId, setEnvironmentId } = useSession();
  return (
    <label className="env-picker">
      <span className="muted small">Environment</span>
      <select value={environmentId ?? ""} onChange={(event) => setEnvironmentId(event.target.value)} data-testid="env-picker" disabled={environments.length <= 1}>
        {environments.length === 0 ? <option value="">—</option> : null}
        {environments.map((environment) => (
          <option key={environment.id} value={environment.id}>
            {environment.name} ({environment.slug})
          </option>
        ))}
      </select>
    </label>
  );
}

function Shell() {
  const { session, can, signOut, switchOrganization, environmentsError, refreshEnvironments } = useSession();
  const route = useRoute();
  // A signed-in visit to #/sign-in (a bookmark, the browser's back button) lands on the overview.
  const page = route.page === "sign-in" ? "" : route.page;
  const current = ROUTES.find((entry) => entry.page === page);
  const Current = current?.component;
  return (
    <div className="shell">
      <nav className="sidebar">
        <a className="brand" href="#/">
          <span className="brand-mark">◆</span> Console
        </a>
        {NAVIGATION.map((section) => (
          <div key={section.section} className="nav-section">
            {section.section ? <div className="nav-heading">{section.section}</div> : null}
            {section.routes
              .filter((entry) => !entry.needs || can(entry.needs))
              .map((entry) => (
                <a
                  key={entry.page}
                  href={`#/${entry.page}`}
                  className={entry.page === page ? "nav-link active" : "nav-link"}
                  data-testid={`nav-${entry.page || "overview"}`}
                  aria-current={entry.page === page ? "page" : undefined}
                >
                  {entry.label}
                </a>
              ))}
          </div>
        ))}
        <div className="nav-footer">
          <a href="/docs" target="_blank" rel="noreferrer">
            API reference ↗
          </a>
        </div>
      </nav>
      <div className="app-main">
        <header className="topbar">
          <div className="topbar-org">
            <span className="muted small">Organization</span>
            <code data-testid="header-organization">{session.organizationId}</code>
          </div>
          <div className="topbar-credential" data-testid="header-credential">
            {credentialLabel(session)}
            {!can("configuration.write") ? <span className="tag">read-only configuration</span> : null}
          </div>
          <EnvironmentPicker />
          {session.credential === "operator" ? (
            <button className="link" onClick={switchOrganization} data-testid="switch-organization">
              Organizations
            </button>
          ) : null}
          <button className="link" onClick={signOut} data-testid="sign-out">
            Sign out
          </button>
        </header>
        <main className="content">
          {environmentsError ? (
            <div className="problem banner" role="alert" data-testid="environments-error">
              <strong>The environments could not be loaded</strong>
              <p>
                {environmentsError}{" "}
                <button type="button" className="link" onClick={() => void refreshEnvironments().catch(() => undefined)}>
                  Retry
                </button>
              </p>
            </div>
          ) : null}
          <PageErrorBoundary key={page}>
            <Suspense fallback={<p className="loading">Loading…</p>}>
              {Current ? (
                <Current />
              ) : (
                <p>
                  No page here. <a href="#/">Back to the overview</a>
                </p>
              )}
            </Suspense>
          </PageErrorBoundary>
        </main>
      </div>
    </div>
  );
}

export default function App() {
  // The outer boundary catches what fails outside a page (the shell, the session, the sign-in and organizations
  // screens), so the console never goes blank.
  return (
    <PageErrorBoundary>
      <SessionProvider signedOut={<SignInPage />} choosingOrganization={<OrganizationsPage />}>
        <Shell />
      </SessionProvider>
    </PageErrorBoundary>
  );
}
