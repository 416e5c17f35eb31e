/**
 * #/playground — compose an access check or a surface decision, run it for real in the picked environment (it
 * consumes meters and is recorded, like a call with the environment's secret key) and read its trace.
 */
import { useEffect, useState } from "react";
import { ApiProblem, segment, useApi, type ProblemDetail } from "../api";
import { JsonView } from "../components/JsonView";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { TraceView } from "../components/playground/TraceView";
import { USER_AGENTS, VERIFIED_BOT_CATEGORIES } from "../components/playground/presets";
import { useEnvironment, useSession } from "../session";
import "../components/playground/playground.css";

type Kind = "access_check" | "surface_decision";
type IdentityForm = "anonymous" | "provided" | "jwt";

interface Form {
  kind: Kind;
  surfaceSlug: string;
  identityForm: IdentityForm;
  anonymousIdentifier: string;
  userIdentifier: string;
  userJwt: string;
  jwtFallback: boolean;
  userAgentPreset: string;
  userAgent: string;
  country: string;
  region: string;
  city: string;
  continent: string;
  asn: string;
  verifiedBotCategory: string;
  verifiedBot: boolean;
  resourceId: string;
  resourceMeta: string;
  action: string;
  url: string;
  referer: string;
  clientIP: string;
}

const INITIAL: Form = {
  kind: "access_check",
  surfaceSlug: "",
  identityForm: "anonymous",
  anonymousIdentifier: "",
  userIdentifier: "",
  userJwt: "",
  jwtFallback: false,
  userAgentPreset: USER_AGENTS[0]!.value,
  userAgent: USER_AGENTS[0]!.value,
  country: "",
  region: "",
  city: "",
  continent: "",
  asn: "",
  verifiedBotCategory: "",
  verifiedBot: false,
  resourceId: "",
  resourceMeta: "",
  action: "",
  url: "",
  referer: "",
  clientIP: "",
};

/**
 * The form field an API error path names (`request.identity.userIdentifier` → userIdentifier), or null. The playground
 * call's own 400 names paths under `request.`; a decision's 400 (inside the 200) names them from the request's root.
 */
function fieldOfPath(path: string): string | null {
  const inner = path.replace(/^request\./, "");
  if (inner === "userAgent" || inner === "http.userAgent") return "userAgent";
  const exact: Record<string, string> = {
    "identity.anonymousIdentifier": "anonymousIdentifier",
    "identity.userIdentifier": "userIdentifier",
    "identity.userJwt": "userJwt",
    surfaceSlug: "surfaceSlug",
    action: "action",
    "resource.id": "resourceId",
    "http.url": "url",
    "http.referer": "referer",
    "http.clientIP": "clientIP",
  };
  if (exact[inner]) return exact[inner];
  if (inner.startsWith("resource.meta")) return "resource.meta";
  const cf = /^cloudflare\.cf\.(country|region|city|continent|asn|verifiedBotCategory)\b/.exec(inner);
  return cf ? cf[1]! : null;
}

interface PlaygroundResult {
  status: number;
  response: Record<string, unknown>;
}

/** The playground call's body from the form, or the form's errors by field. */
function requestOf(form: Form): { body?: Record<string, unknown>; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  let identity: Record<string, unknown>;
  if (form.identityForm === "anonymous") {
    identity = form.anonymousIdentifier.trim() ? { anonymousIdentifier: form.anonymousIdentifier.trim() } : { createAnonymousIdentifier: true };
  } else if (form.identityForm === "provided") {
    if (!form.userIdentifier.trim()) errors.userIdentifier = "the identifier your backend vouches for";
    identity = { userIdentifier: form.userIdentifier.trim() };
  } else {
    if (!form.userJwt.trim()) errors.userJwt = "paste a token of your identity provider";
    identity = { userJwt: form.userJwt.trim(), ...(form.jwtFallback ? { createAnonymousIdentifierFallback: true } : {}) };
  }
  const request: Record<string, unknown> = { identity };
  if (form.kind === "surface_decision") {
    if (!form.surfaceSlug.trim()) errors.surfaceSlug = "pick the surface to decide";
    request.surfaceSlug = form.surfaceSlug.trim();
  }
  if (form.action.trim()) request.action = form.action.trim();
  const resource: Record<string, unknown> = {};
  if (form.resourceId.trim()) resource.id = form.resourceId.trim();
  if (form.resourceMeta.trim()) {
    try {
      const meta = JSON.parse(form.resourceMeta) as unknown;
      if (typeof meta !== "object" || meta === null || Array.isArray(meta)) errors["resource.meta"] = "a JSON object";
      else resource.meta = meta;
    } catch (error) {
      errors["resource.meta"] = `not JSON: ${(error as Error).message}`;
    }
  }
  if (Object.keys(resource).length) request.resource = resource;
  const http: Record<string, string> = {};
  if (form.url.trim()) http.url = form.url.trim();
  if (form.referer.trim()) http.referer = form.referer.trim();
  if (form.clientIP.trim()) http.clientIP = form.clientIP.trim();
  if (Object.keys(http).length) request.http = http;
  const cf: Record<string, unknown> = {};
  for (const key of ["country", "region", "city", "continent"] as const) if (form[key].trim()) cf[key] = form[key].trim();
  if (form.asn.trim()) {
    const asn = Number(form.asn);
    if (!Number.isInteger(asn) || asn < 0) errors.asn = "a whole number";
    else cf.asn = asn;
  }
  if (form.verifiedBotCategory) cf.verifiedBotCategory = form.verifiedBotCategory;
  if (form.verifiedBot) cf.botManagement = { verifiedBot: true };
  if (Object.keys(cf).length) request.cloudflare = { cf };
  // The decision API's bounds (workers/decision/request.ts, identity/jwt.ts), checked before sending.
  const tooLong = (field: keyof Form, max: number) => {
    if (form[field].toString().trim().length > max && !errors[field]) errors[field] = `at most ${max} characters`;
  };
  tooLong("anonymousIdentifier", 512);
  tooLong("userIdentifier", 512);
  tooLong("resourceId", 512);
  tooLong("action", 100);
  tooLong("surfaceSlug", 100);
  tooLong("url", 8192);
  tooLong("referer", 8192);
  tooLong("clientIP", 100);
  tooLong("userAgent", 2048);
  if (Object.keys(errors).length) return { errors };
  return { body: { kind: form.kind, request, ...(form.userAgent.trim() ? { userAgent: form.userAgent.trim() } : {}) }, errors };
}

/** Surface slugs of the deployed version and of the draft: what can be decided now, and what will be after a deploy. */
function useSurfaceSlugs(deployedVersionId: string | null | undefined): { deployed: string[]; draft: string[] } {
  const api = useApi();
  const [slugs, setSlugs] = useState<{ deployed: string[]; draft: string[] }>({ deployed: [], draft: [] });
  useEffect(() => {
    let current = true;
    Promise.all([
      deployedVersionId
        ? api
            .get<{ document?: { surfaces?: Record<string, unknown> } }>(`/api/v1/admin/versions/${segment(deployedVersionId)}`)
            .then((version) => Object.keys(version.document?.surfaces ?? {}))
            .catch((): string[] => [])
        : Promise.resolve([]),
      api
        .get<{ items: { slug: string }[] }>("/api/v1/admin/surfaces")
        .then(({ items }) => items.map((item) => item.slug))
        .catch(() => []),
    ]).then(([deployed, draft]) => current && setSlugs({ deployed, draft: draft.filter((slug) => !deployed.includes(slug)) }));
    return () => {
      current = false;
    };
  }, [api, deployedVersionId]);
  return slugs;
}

export default function PlaygroundPage() {
  const api = useApi();
  const { can, environmentId } = useSession();
  const environment = useEnvironment();
  const [form, setForm] = useState<Form>(INITIAL);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [result, setResult] = useState<PlaygroundResult | null>(null);
  const [running, setRunning] = useState(false);
  const surfaces = useSurfaceSlugs(environment?.deployedVersionId);
  const allowed = can("decisions.test");
  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((current) => ({ ...current, [key]: value }));

  async function run(event: React.FormEvent) {
    event.preventDefault();
    if (!environmentId) return;
    const { body, errors } = requestOf(form);
    setErrors(errors);
    if (!body) return;
    setRunning(true);
    setProblem(null);
    // Details that name a field of the form go next to it; the others stay in the box or the response.
    const showNextToFields = (details: ProblemDetail[]) => {
      const byField: Record<string, string> = {};
      for (const detail of details) {
        const field = fieldOfPath(detail.path);
        if (field && !byField[field]) byField[field] = detail.message;
      }
      setErrors(byField);
    };
    try {
      const answer = await api.post<PlaygroundResult>(`/api/v1/admin/environments/${segment(environmentId)}/playground`, body);
      const details = answer.status >= 400 && Array.isArray(answer.response?.details) ? (answer.response.details as ProblemDetail[]) : [];
      showNextToFields(details);
      setResult(answer);
    } catch (error) {
      showNextToFields(error instanceof ApiProblem ? error.details : []);
      setProblem(error);
      setResult(null);
    } finally {
      setRunning(false);
    }
  }

  const error = (field: string) =>
    errors[field] ? (
      <span className="field-error" data-testid={`field-error-${field}`}>
        {errors[field]}
      </span>
    ) : null;
  const response = result?.response ?? null;
  const { trace, ...responseWithoutTrace } = response ?? {};
  const errorCode = response && typeof response.code === "string" ? response.code : null;

  return (
    <Page
      title="Playground"
      subtitle={
        environment
          ? `Runs a real decision in ${environment.name || environment.slug}: it consumes meters and is recorded, like a call with the environment's secret key.`
          : "Pick an environment to run decisions in."
      }
    >
      {!allowed ? <p className="notice">Your credential may not run decisions here (it needs decisions.test: an admin or deployer, or this environment's key).</p> : null}
      <div className="pg-layout">
        <form className="pg-form" onSubmit={run}>
          <fieldset>
            <legend>Decision</legend>
            <div className="pg-radios">
              <label>
                <input type="radio" name="kind" checked={form.kind === "access_check"} onChange={() => set("kind", "access_check")} data-testid="playground-kind-access" /> Access check
              </label>
              <label>
                <input type="radio" name="kind" checked={form.kind === "surface_decision"} onChange={() => set("kind", "surface_decision")} data-testid="playground-kind-surface" /> Surface decision
              </label>
            </div>
            {form.kind === "surface_decision" ? (
              <label>
                Surface
                <select value={form.surfaceSlug} onChange={(event) => set("surfaceSlug", event.target.value)} data-testid="playground-surface">
                  <option value="">—</option>
                  {surfaces.deployed.length ? (
                    <optgroup label="Deployed">
                      {surfaces.deployed.map((slug) => (
                        <option key={slug}>{slug}</option>
                      ))}
                    </optgroup>
                  ) : null}
                  {surfaces.draft.length ? (
                    <optgroup label="Draft only (not deployed: 404)">
                      {surfaces.draft.map((slug) => (
                        <option key={slug}>{slug}</option>
                      ))}
                    </optgroup>
                  ) : null}
                </select>
                {error("surfaceSlug")}
              </label>
            ) : null}
            <label>
              Action <span className="muted small">(prices credits properties)</span>
              <input value={form.action} onChange={(event) => set("action", event.target.value)} placeholder="generate" />
              {error("action")}
            </label>
          </fieldset>
          <fieldset>
            <legend>Identity</legend>
            <div className="pg-radios">
              {(["anonymous", "provided", "jwt"] as const).map((identityForm) => (
                <label key={identityForm}>
                  <input type="radio" name="identity" checked={form.identityForm === identityForm} onChange={() => set("identityForm", identityForm)} data-testid={`playground-identity-${identityForm}`} />{" "}
                  {identityForm === "anonymous" ? "Anonymous" : identityForm === "provided" ? "Provided identifier" : "JWT"}
                </label>
              ))}
            </div>
            {form.identityForm === "anonymous" ? (
              <label>
                Anonymous identifier <span className="muted small">(empty: a new visitor, anon_… minted)</span>
                <input value={form.anonymousIdentifier} onChange={(event) => set("anonymousIdentifier", event.target.value)} placeholder="visitor-1" data-testid="playground-anonymous-identifier" />
                {error("anonymousIdentifier")}
              </label>
            ) : null}
            {form.identityForm === "provided" ? (
              <label>
                User identifier
                <input value={form.userIdentifier} onChange={(event) => set("userIdentifier", event.target.value)} placeholder="ada@example.com" data-testid="playground-user-identifier" />
                {error("userIdentifier")}
              </label>
            ) : null}
            {form.identityForm === "jwt" ? (
              <>
                <label>
                  JWT
                  <textarea rows={3} value={form.userJwt} onChange={(event) => set("userJwt", event.target.value)} placeholder="eyJ…" data-testid="playground-jwt" />
                  {error("userJwt")}
                </label>
                <label className="checkbox">
                  <input type="checkbox" checked={form.jwtFallback} onChange={(event) => set("jwtFallback", event.target.checked)} /> Fall back to an anonymous visitor if the token does not verify
                </label>
              </>
            ) : null}
          </fieldset>
          <fieldset>
            <legend>Visitor</legend>
            <label>
              User agent
              <select
                value={USER_AGENTS.some((agent) => agent.value === form.userAgentPreset) ? form.userAgentPreset : ""}
                onChange={(event) => setForm((current) => ({ ...current, userAgentPreset: event.target.value, userAgent: event.target.value || current.userAgent }))}
                data-testid="playground-user-agent"
              >
                {USER_AGENTS.map((agent) => (
                  <option key={agent.value} value={agent.value}>
                    {agent.label}
                  </option>
                ))}
                <option value="">Custom…</option>
              </select>
              <input value={form.userAgent} onChange={(event) => setForm((current) => ({ ...current, userAgent: event.target.value, userAgentPreset: "" }))} className="small" />
              {error("userAgent")}
            </label>
            <div className="pg-grid">
              <label>
                cf.country
                <input value={form.country} onChange={(event) => set("country", event.target.value.toUpperCase())} placeholder="FR" maxLength={2} data-testid="playground-country" />
                {error("country")}
              </label>
              <label>
                cf.continent
                <input value={form.continent} onChange={(event) => set("continent", event.target.value.toUpperCase())} placeholder="EU" maxLength={2} />
              </label>
              <label>
                cf.region
                <input value={form.region} onChange={(event) => set("region", event.target.value)} />
              </label>
              <label>
                cf.city
                <input value={form.city} onChange={(event) => set("city", event.target.value)} />
              </label>
              <label>
                cf.asn
                <input value={form.asn} onChange={(event) => set("asn", event.target.value)} inputMode="numeric" placeholder="13335" />
                {error("asn")}
              </label>
              <label>
                cf.verifiedBotCategory
                <select value={form.verifiedBotCategory} onChange={(event) => set("verifiedBotCategory", event.target.value)} data-testid="playground-verified-bot-category">
                  <option value="">— (not a verified bot)</option>
                  {VERIFIED_BOT_CATEGORIES.map((category) => (
                    <option key={category}>{category}</option>
                  ))}
                </select>
              </label>
            </div>
            <label className="checkbox">
              <input type="checkbox" checked={form.verifiedBot} onChange={(event) => set("verifiedBot", event.target.checked)} /> cf.botManagement.verifiedBot
            </label>
            <div className="pg-grid">
              <label>
                http.url
                <input value={form.url} onChange={(event) => set("url", event.target.value)} placeholder="https://news.example/sport/42" />
                {error("url")}
              </label>
              <label>
                http.referer
                <input value={form.referer} onChange={(event) => set("referer", event.target.value)} />
                {error("referer")}
              </label>
              <label>
                http.clientIP
                <input value={form.clientIP} onChange={(event) => set("clientIP", event.target.value)} placeholder="203.0.113.7" />
                {error("clientIP")}
              </label>
            </div>
          </fieldset>
          <fieldset>
            <legend>Resource</legend>
            <label>
              resource.id <span className="muted small">(what unique-resource meters count)</span>
              <input value={form.resourceId} onChange={(event) => set("resourceId", event.target.value)} placeholder="article-42" data-testid="playground-resource-id" />
              {error("resourceId")}
            </label>
            <label>
              resource.meta <span className="muted small">(JSON object)</span>
              <textarea rows={2} value={form.resourceMeta} onChange={(event) => set("resourceMeta", event.target.value)} placeholder='{"section": "sport"}' />
              {error("resource.meta")}
            </label>
          </fieldset>
          <button type="submit" className="primary" disabled={!environmentId || !allowed || running} data-testid="playground-run">
            {running ? "Running…" : "Run"}
          </button>
        </form>
        <div className="pg-result">
          <ProblemBox problem={problem} />
          {result ? (
            <>
              <p className="pg-status" data-testid="playground-status" data-status={result.status}>
                <span className={result.status < 300 ? "status-good" : "status-bad"}>{result.status}</span>
                {errorCode ? <code> {errorCode}</code> : null}
                {typeof response?.message === "string" ? <span> — {response.message}</span> : null}
              </p>
              {trace === undefined ? (
                // An error answer has no trace: the error is the thing to read.
                <>
                  <Panel title="Response">
                    <JsonView value={response} testId="playground-response" maxHeight={500} />
                  </Panel>
                  <TraceView trace={trace} />
                </>
              ) : (
                <>
                  <Panel title="Trace">
                    <TraceView trace={trace} />
                  </Panel>
                  <Panel title="Response">
                    <JsonView value={responseWithoutTrace} testId="playground-response" maxHeight={500} />
                  </Panel>
                </>
              )}
            </>
          ) : !problem ? (
            <p className="empty">Compose a request and run it: its answer and trace appear here.</p>
          ) : null}
        </div>
      </div>
    </Page>
  );
}
