import { useApi } from "../api";
import { normalizeDocument } from "../components/config";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { href } from "../components/router";
import { useLoad } from "../components/useLoad";
import { useSession } from "../session";

interface Organization {
  id: string;
  name: string;
  createdAt: string;
}

interface Version {
  id: string;
  number: number;
  description: string;
}

export default function OverviewPage() {
  const api = useApi();
  const { session, environments } = useSession();
  const data = useLoad(async () => {
    const [organization, document, versions] = await Promise.all([
      api
        .get<{ organization: Organization }>("/api/v1/admin/organization")
        .then((answer) => answer.organization)
        .catch(() => null),
      api.get<Record<string, unknown>>("/api/v1/admin/config").then(normalizeDocument),
      api.get<{ versions: Version[] }>("/api/v1/admin/versions").then((answer) => answer.versions),
    ]);
    return { organization, document, versions };
  }, [api]);

  const document = data.data?.document;
  const versions = data.data?.versions ?? [];
  const versionOf = (id: string | null | undefined) => versions.find((version) => version.id === id);
  const count = (record: Record<string, unknown> | undefined) => Object.keys(record ?? {}).length;
  const counted = (record: Record<string, unknown> | undefined, one: string, many = `${one}s`) => `${count(record)} ${count(record) === 1 ? one : many}`;
  const steps: { label: string; done: boolean; link: string }[] = document
    ? [
        { label: "Define a feature with its properties", done: count(document.features) > 0, link: href("features", "new") },
        { label: "Create plans and set their feature values", done: count(document.plans) > 0, link: href("plans") },
        { label: "Add a surface that consumes a metered property", done: count(document.surfaces) > 0, link: href("surfaces") },
        { label: "Add a JWT authentication method", done: count(document.authMethods) > 0, link: href("auth-methods") },
        { label: "Write a provisioning workflow", done: Object.values(document.workflows).some((workflow) => workflow.type === "provisioning"), link: href("workflows") },
        { label: "Create a version and deploy it", done: environments.some((environment) => environment.deployedVersionId), link: href("versions") },
        { label: "Try a decision in the playground", done: false, link: href("playground") },
        { label: "Watch decisions arrive", done: false, link: href("events") },
      ]
    : [];

  return (
    <Page title={data.data?.organization?.name ?? "Overview"} subtitle={<>Organization <code data-testid="organization-id">{session.organizationId}</code></>}>
      <ProblemBox problem={data.error} />
      <div className="overview-grid">
        <Panel title="Environments" testId="overview-environments">
          {environments.length === 0 ? <p className="muted">No environments.</p> : null}
          <ul className="plain-list">
            {environments.map((environment) => {
              const version = versionOf(environment.deployedVersionId);
              return (
                <li key={environment.id} data-testid={`overview-environment-${environment.slug}`}>
                  <strong>{environment.name}</strong> <span className="tag">{environment.type}</span>
                  <div className="muted small">
                    {environment.deployedVersionId ? (
                      <>
                        serving <strong>{version ? `v${version.number}` : environment.deployedVersionId}</strong>
                        {version?.description ? ` — ${version.description}` : ""}
                      </>
                    ) : (
                      "nothing deployed yet"
                    )}
                  </div>
                </li>
              );
            })}
          </ul>
          <a href={href("versions")}>Versions and deployments →</a>
        </Panel>
        <Panel title="Draft">
          {document ? (
            <ul className="plain-list counts">
              <li>
                <a href={href("features")}>{counted(document.features, "feature")}</a>
              </li>
              <li>
                <a href={href("plans")}>{counted(document.plans, "plan")}</a>
              </li>
              <li>
                <a href={href("surfaces")}>{counted(document.surfaces, "surface")}</a>
              </li>
              <li>
                <a href={href("auth-methods")}>{counted(document.authMethods, "authentication method")}</a>
              </li>
              <li>
                <a href={href("workflows")}>{counted(document.workflows, "workflow")}</a>
              </li>
              <li>
                <a href={href("offers")}>
                  {counted(document.offers, "offer")}, {counted(document.offerGroups, "offer group")}
                </a>
              </li>
            </ul>
          ) : data.loading ? (
            <p className="loading">Loading…</p>
          ) : null}
          <a href={href("config")}>Edit as one YAML document →</a>
        </Panel>
        <Panel title="Getting started" testId="overview-steps">
          <ol className="steps">
            {steps.map((step) => (
              <li key={step.label} className={step.done ? "done" : undefined}>
                <a href={step.link}>{step.label}</a>
              </li>
            ))}
          </ol>
        </Panel>
      </div>
    </Page>
  );
}
