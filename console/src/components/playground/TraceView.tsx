/**
 * The trace of one decision (`trace` of a decision response asked with `?trace=true`): how long each stage took,
 * which plans the identity held and why, how every property was resolved, what the meter said, what each workflow
 * was given and returned, which offers were shown or filtered, and what was denied.
 * The trace is read defensively: a part missing or shaped otherwise shows as raw JSON rather than breaking the page.
 */
import type { ReactNode } from "react";
import { JsonView } from "../JsonView";

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const list = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isRecord) : []);
const text = (value: unknown): string => (value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value));

/** A value's JSON cut to a table cell's width; the whole of it in the tooltip. */
function Short({ value, max = 48 }: { value: unknown; max?: number }) {
  const full = text(value);
  return <code title={full.length > max ? JSON.stringify(value, null, 2) : undefined}>{full.length > max ? `${full.slice(0, max - 1)}…` : full}</code>;
}

/** A compact rendering of a property value: `true`, `42`, `"high"`, or a meter's state in a few words. */
function ValueCell({ value }: { value: unknown }) {
  if (isRecord(value) && "type" in value) {
    const parts: string[] = [];
    if ("value" in value) parts.push(text(value.value));
    if ("hasAccess" in value) parts.push(value.hasAccess ? "access" : "no access");
    if (value.remainingUnits !== undefined) parts.push(`${text(value.remainingUnits)} of ${text(value.totalUnits)} left`);
    if (value.balance !== undefined) parts.push(`balance ${text(value.balance)}`);
    if (value.isFallback) parts.push("fallback");
    return <code title={JSON.stringify(value, null, 2)}>{parts.join(", ") || text(value)}</code>;
  }
  return <code>{text(value)}</code>;
}

function Section({ title, children, testId }: { title: ReactNode; children: ReactNode; testId?: string }) {
  return (
    <section className="trace-section" data-testid={testId}>
      <h3>{title}</h3>
      {children}
    </section>
  );
}

/** A table of objects whose columns are the union of their keys (meter readings, credits, offers shown). */
function RecordsTable({ rows, empty }: { rows: Json[]; empty: string }) {
  if (rows.length === 0) return <p className="muted">{empty}</p>;
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return (
    <div className="trace-scroll">
      <table className="data-table trace-table">
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column}>{column}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => (
            <tr key={index}>
              {columns.map((column) => (
                <td key={column}>{isRecord(row[column]) || Array.isArray(row[column]) ? <Short value={row[column]} /> : text(row[column])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function StageTimeline({ stages }: { stages: Json[] }) {
  const timed = stages.map((stage) => ({ stage: text(stage.stage), ms: typeof stage.ms === "number" ? stage.ms : 0 }));
  const total = timed.reduce((sum, stage) => sum + stage.ms, 0);
  if (timed.length === 0) return <p className="muted">No stage timings.</p>;
  let offset = 0;
  return (
    <div className="trace-timeline" data-testid="trace-stages">
      {timed.map((stage, index) => {
        const left = total ? (offset / total) * 100 : 0;
        const width = total ? Math.max((stage.ms / total) * 100, 0.5) : 0.5;
        offset += stage.ms;
        return (
          <div className="trace-stage" key={`${stage.stage}-${index}`}>
            <span className="trace-stage-name">{stage.stage}</span>
            <span className="trace-stage-track">
              <span className="trace-stage-bar" style={{ marginLeft: `${left}%`, width: `${width}%` }} />
            </span>
            <span className="trace-stage-ms">{stage.ms.toFixed(stage.ms < 10 ? 2 : 1)} ms</span>
          </div>
        );
      })}
      <div className="trace-stage trace-stage-total">
        <span className="trace-stage-name">total</span>
        <span className="trace-stage-track" />
        <span className="trace-stage-ms">{total.toFixed(1)} ms</span>
      </div>
    </div>
  );
}

function winnerText(winner: unknown): string {
  if (!isRecord(winner)) return text(winner);
  if (winner.kind === "plan") return `plan ${text(winner.plan)}`;
  if (winner.kind === "workflow") return `workflow ${text(winner.workflow)}`;
  return text(winner.kind);
}

function PropertiesTable({ properties }: { properties: Json[] }) {
  if (properties.length === 0) return <p className="muted">No properties.</p>;
  return (
    <div className="trace-scroll">
      <table className="data-table trace-table" data-testid="trace-properties">
        <thead>
          <tr>
            <th>Feature</th>
            <th>Property</th>
            <th>Type</th>
            <th>Value</th>
            <th>Winner</th>
            <th>Conflict rule</th>
            <th>Candidates</th>
          </tr>
        </thead>
        <tbody>
          {properties.map((property, index) => {
            const winner = isRecord(property.winner) ? property.winner : {};
            return (
              <tr key={index}>
                <td>{text(property.featureSlug)}</td>
                <td>{text(property.property)}</td>
                <td>{text(property.type)}</td>
                <td>
                  <ValueCell value={property.value} />
                </td>
                <td className={`trace-winner trace-winner-${text(winner.kind)}`}>{winnerText(property.winner)}</td>
                <td>{property.conflictRule === null || property.conflictRule === undefined ? <span className="muted">—</span> : text(property.conflictRule)}</td>
                <td>
                  {list(property.candidates).length === 0 ? (
                    <span className="muted">none</span>
                  ) : (
                    <ul className="trace-candidates">
                      {list(property.candidates).map((candidate, position) => (
                        <li key={position} className={winner.kind === "plan" && winner.plan === candidate.plan ? "trace-candidate-won" : undefined}>
                          {text(candidate.plan)}: <Short value={candidate.value} />
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function WorkflowRuns({ runs }: { runs: Json[] }) {
  if (runs.length === 0) return <p className="muted">No workflow ran.</p>;
  return (
    <div className="trace-workflows">
      {runs.map((run, index) => (
        <details key={index} className={run.ok === false ? "trace-workflow trace-workflow-failed" : "trace-workflow"} data-testid="trace-workflow">
          <summary>
            <strong>{text(run.slug)}</strong> <span className="muted">{text(run.type)}</span>{" "}
            <span className={run.ok === false ? "status-bad" : "status-good"}>{run.ok === false ? "failed" : "ok"}</span>
            {typeof run.durationMs === "number" ? <span className="muted"> · {run.durationMs.toFixed(1)} ms</span> : null}
            {run.kind ? <span className="muted"> · {text(run.kind)}</span> : null}
            {run.error ? <span className="status-bad"> · {text(run.error)}</span> : null}
          </summary>
          <div className="trace-io">
            <div>
              <h4>Input</h4>
              <JsonView value={run.input} maxHeight={300} />
            </div>
            <div>
              <h4>Output</h4>
              <JsonView value={run.output} maxHeight={300} />
            </div>
          </div>
        </details>
      ))}
    </div>
  );
}

const DENIAL_REASONS: Record<string, string> = {
  off: "a plan sets it off",
  no_plan: "no plan held grants it: its fallback applies and is off",
  fallback: "no plan held grants it: its fallback applies and is off",
  workflow_override: "a feature workflow set it off",
  limit_reached: "the meter's limit is reached",
  insufficient_credits: "the balance does not cover the price",
  meter_unavailable: "the meter could not be reached: it fails closed",
  payment_required: "a crawler or agent that did not pay the surface's price (pay-per-crawl)",
};

export function DenialsTable({ denials, testId }: { denials: Json[]; testId?: string }) {
  if (denials.length === 0) return <p className="muted" data-testid={testId}>Nothing denied.</p>;
  return (
    <table className="data-table trace-table" data-testid={testId}>
      <thead>
        <tr>
          <th>Feature</th>
          <th>Property</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {denials.map((denial, index) => (
          <tr key={index}>
            <td>{text(denial.featureSlug)}</td>
            <td>{text(denial.property)}</td>
            <td>
              <code>{text(denial.reason)}</code> <span className="muted">{DENIAL_REASONS[text(denial.reason)] ?? ""}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function TraceView({ trace }: { trace: unknown }) {
  if (!isRecord(trace)) {
    return (
      <div className="trace" data-testid="playground-trace">
        <p className="muted">No trace in this answer.</p>
      </div>
    );
  }
  const identity = isRecord(trace.identity) ? trace.identity : null;
  const meter = isRecord(trace.meter) ? trace.meter : null;
  const offers = isRecord(trace.offers) ? trace.offers : null;
  const unknownPlans = Array.isArray(trace.unknownPlanSlugs) ? trace.unknownPlanSlugs.map(text) : [];
  return (
    <div className="trace" data-testid="playground-trace">
      <p className="muted small">Version {text(trace.versionId)}</p>
      <Section title="Stages">
        <StageTimeline stages={list(trace.stages)} />
      </Section>
      <Section title="Identity" testId="trace-identity">
        {identity ? (
          <dl className="trace-facts">
            <dt>Auth type</dt>
            <dd>{text(identity.authType)}</dd>
            <dt>Identifier</dt>
            <dd>
              <code>{text(identity.identifier)}</code>
            </dd>
            <dt>Authenticated</dt>
            <dd>{identity.isAuthenticated ? "yes" : "no"}</dd>
            <dt>Category</dt>
            <dd>{text(identity.category)}</dd>
            <dt>Bot</dt>
            <dd>{identity.bot ? <code>{text(identity.bot)}</code> : "none"}</dd>
            {identity.jwtError ? (
              <>
                <dt>JWT refused</dt>
                <dd className="status-bad">{text(identity.jwtError)}</dd>
              </>
            ) : null}
          </dl>
        ) : (
          <JsonView value={trace.identity} />
        )}
      </Section>
      <Section title="Plans" testId="trace-plans">
        {list(trace.plans).length === 0 ? (
          <p className="muted">No plan held.</p>
        ) : (
          <table className="data-table trace-table">
            <thead>
              <tr>
                <th>Plan</th>
                <th>Source</th>
                <th>Detail</th>
              </tr>
            </thead>
            <tbody>
              {list(trace.plans).map((plan, index) => (
                <tr key={index}>
                  <td>{text(plan.slug)}</td>
                  <td>{text(plan.source)}</td>
                  <td>{plan.detail === undefined ? "" : <Short value={plan.detail} max={80} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {unknownPlans.length ? <p className="status-bad">Plans the configuration does not know (ignored): {unknownPlans.join(", ")}</p> : null}
      </Section>
      <Section title="Properties">
        <PropertiesTable properties={list(trace.properties)} />
      </Section>
      <Section title="Meter" testId="trace-meter">
        {meter ? (
          <>
            <p>
              Status <strong className={meter.status === "fallback" ? "status-bad" : undefined}>{text(meter.status)}</strong>
              {meter.reason ? <span className="muted"> — {text(meter.reason)}</span> : null}
            </p>
            <h4>Readings</h4>
            <RecordsTable rows={list(meter.readings)} empty="No counter read." />
            {list(meter.credits).length ? (
              <>
                <h4>Credits</h4>
                <RecordsTable rows={list(meter.credits)} empty="" />
              </>
            ) : null}
          </>
        ) : (
          <JsonView value={trace.meter} />
        )}
      </Section>
      <Section title="Workflows" testId="trace-workflows">
        <WorkflowRuns runs={list(trace.workflows)} />
      </Section>
      <Section title="Offers" testId="trace-offers">
        {offers ? (
          <>
            <h4>Shown</h4>
            <RecordsTable rows={list(offers.shown)} empty="No offer shown." />
            <h4>Filtered</h4>
            <RecordsTable rows={list(offers.filtered)} empty="No offer filtered out." />
          </>
        ) : (
          <p className="muted">No offers considered (an access check, or a surface without offer groups).</p>
        )}
      </Section>
      <Section title="Denials">
        <DenialsTable denials={list(trace.denials)} testId="trace-denials" />
      </Section>
    </div>
  );
}
