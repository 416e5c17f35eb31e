/**
 * The events of the picked environment (GET /api/v1/admin/events), newest first, with filters and cursor paging.
 * A row opens to its record: for decisions, what was denied and why, the plans and offers, then the whole record.
 */
import { Fragment, useCallback, useEffect, useRef, useState } from "react";
import { useApi } from "../../api";
import { JsonView } from "../JsonView";
import { ProblemBox } from "../ProblemBox";
import { DenialsTable } from "../playground/TraceView";
import { isoFromLocal, isRecord, records, shortTime, type Json } from "./format";

export const EVENT_KINDS = ["access_check", "surface_decision", "counter_update", "admin", "endpoint", "action_failed", "payment", "usage", "offer_redemption"] as const;
const OUTCOMES = ["granted", "denied", "failed", "started", "completed", "active", "past_due", "canceled", "reported", "no_customer"];

export interface StoredEvent {
  id: string;
  environmentId: string;
  kind: string;
  createdAt: string;
  identifier: string | null;
  surfaceSlug: string | null;
  outcome: string | null;
  record: Json;
}

interface Filters {
  kind: string;
  identifier: string;
  surface: string;
  outcome: string;
  from: string;
  to: string;
}

const NO_FILTERS: Filters = { kind: "", identifier: "", surface: "", outcome: "", from: "", to: "" };
const PAGE_SIZE = 50;

function queryOf(environmentId: string | null, filters: Filters, cursor: string | null): { query?: string; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (environmentId) params.set("environmentId", environmentId);
  if (filters.kind) params.set("kind", filters.kind);
  if (filters.identifier.trim()) params.set("identifier", filters.identifier.trim());
  if (filters.surface.trim()) params.set("surface", filters.surface.trim());
  if (filters.outcome.trim()) {
    if (!/^[a-z_]{1,40}$/.test(filters.outcome.trim())) errors.outcome = "lower-case letters and _ (granted, denied, failed, …)";
    else params.set("outcome", filters.outcome.trim());
  }
  const from = isoFromLocal(filters.from);
  const to = isoFromLocal(filters.to);
  if (filters.from && !from) errors.from = "not a date";
  if (filters.to && !to) errors.to = "not a date";
  if (from && to && from > to) errors.to = "before from";
  if (from) params.set("from", from);
  if (to) params.set("to", to);
  if (cursor) params.set("cursor", cursor);
  return Object.keys(errors).length ? { errors } : { query: params.toString(), errors };
}

function EventRecord({ event }: { event: StoredEvent }) {
  const record = event.record;
  const denials = records(record.denials);
  const filtered = records(record.offersFiltered);
  const isDecision = event.kind === "access_check" || event.kind === "surface_decision";
  return (
    <div className="ev-record" data-testid="event-record">
      {isDecision ? (
        <>
          <div className="ev-facts">
            <span>
              Plans: <strong>{Array.isArray(record.plans) && record.plans.length ? record.plans.join(", ") : "none"}</strong>
            </span>
            {isRecord(record.meter) ? <span>Meter: {String(record.meter.status)}{record.meter.reason ? ` (${String(record.meter.reason)})` : ""}</span> : null}
            {record.category ? <span>Category: {String(record.category)}</span> : null}
            {isRecord(record.bot) ? <span>Bot: {String(record.bot.code ?? record.bot.category)}</span> : null}
            {record.jwtError ? <span className="status-bad">JWT refused: {String(record.jwtError)}</span> : null}
          </div>
          <h4>Denials</h4>
          <DenialsTable denials={denials} testId="event-denials" />
          {filtered.length ? (
            <>
              <h4>Offers not shown</h4>
              <ul className="ev-reasons">
                {filtered.map((offer, index) => (
                  <li key={index}>
                    <code>{String(offer.offer)}</code>: {String(offer.reason)}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {records(record.workflows).some((run) => run.ok === false) ? (
            <>
              <h4>Failed workflows</h4>
              <ul className="ev-reasons">
                {records(record.workflows)
                  .filter((run) => run.ok === false)
                  .map((run, index) => (
                    <li key={index}>
                      <code>{String(run.slug)}</code> {run.kind ? `(${String(run.kind)})` : ""}: {String(run.error ?? "failed")}
                    </li>
                  ))}
              </ul>
            </>
          ) : null}
        </>
      ) : null}
      <details open={!isDecision}>
        <summary>Record</summary>
        <JsonView value={record} maxHeight={400} />
      </details>
    </div>
  );
}

export function EventsExplorer({ environmentId }: { environmentId: string | null }) {
  const api = useApi();
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<Filters>(NO_FILTERS);
  const [events, setEvents] = useState<StoredEvent[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [problem, setProblem] = useState<unknown>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [loading, setLoading] = useState(false);
  const [open, setOpen] = useState<string | null>(null);

  // Each request is numbered: an answer that arrives after a later request started (another environment picked, a new
  // search) is dropped, so the list never shows another environment's or another search's events.
  const requests = useRef(0);
  const fetchPage = useCallback(
    async (wanted: Filters, cursor: string | null) => {
      const { query, errors } = queryOf(environmentId, wanted, cursor);
      setErrors(errors);
      if (!query) return;
      const request = ++requests.current;
      const current = () => request === requests.current;
      setLoading(true);
      setProblem(null);
      try {
        const page = await api.get<{ events: StoredEvent[]; nextCursor: string | null }>(`/api/v1/admin/events?${query}`);
        if (!current()) return;
        setEvents((shown) => (cursor ? [...(shown ?? []), ...page.events] : page.events));
        setNextCursor(page.nextCursor);
        setApplied(wanted);
      } catch (error) {
        if (!current()) return;
        setProblem(error);
        if (!cursor) setEvents([]);
      } finally {
        if (current()) setLoading(false);
      }
    },
    [api, environmentId],
  );
  // Leaving the page (or the component) makes every answer still under way stale.
  useEffect(
    () => () => {
      requests.current++;
    },
    [],
  );

  // A new environment (a new fetchPage) starts over with the filters in force; `applied` is read here, not watched:
  // a search applies filters itself.
  useEffect(() => {
    setOpen(null);
    // The previous environment's events are not this one's: none are shown until this one's arrive.
    setEvents(null);
    setNextCursor(null);
    void fetchPage(applied, null);
  }, [fetchPage]);

  const set = (key: keyof Filters, value: string) => setFilters((current) => ({ ...current, [key]: value }));
  const error = (field: string) =>
    errors[field] ? (
      <span className="field-error" data-testid={`field-error-${field}`}>
        {errors[field]}
      </span>
    ) : null;

  return (
    <div className="ev-explorer">
      <form
        className="ev-filters"
        onSubmit={(event) => {
          event.preventDefault();
          setOpen(null);
          void fetchPage(filters, null);
        }}
      >
        <label>
          Kind
          <select value={filters.kind} onChange={(event) => set("kind", event.target.value)} data-testid="events-filter-kind">
            <option value="">any</option>
            {EVENT_KINDS.map((kind) => (
              <option key={kind}>{kind}</option>
            ))}
          </select>
        </label>
        <label>
          Identifier
          <input value={filters.identifier} onChange={(event) => set("identifier", event.target.value)} data-testid="events-filter-identifier" />
        </label>
        <label>
          Surface
          <input value={filters.surface} onChange={(event) => set("surface", event.target.value)} data-testid="events-filter-surface" />
        </label>
        <label>
          Outcome
          <input value={filters.outcome} onChange={(event) => set("outcome", event.target.value)} list="ev-outcomes" data-testid="events-filter-outcome" />
          <datalist id="ev-outcomes">
            {OUTCOMES.map((outcome) => (
              <option key={outcome} value={outcome} />
            ))}
          </datalist>
          {error("outcome")}
        </label>
        <label>
          From
          <input type="datetime-local" value={filters.from} onChange={(event) => set("from", event.target.value)} data-testid="events-filter-from" />
          {error("from")}
        </label>
        <label>
          To
          <input type="datetime-local" value={filters.to} onChange={(event) => set("to", event.target.value)} data-testid="events-filter-to" />
          {error("to")}
        </label>
        <div className="ev-filter-actions">
          <button type="submit" className="primary" disabled={loading} data-testid="events-search">
            Search
          </button>
          <button
            type="button"
            onClick={() => {
              setFilters(NO_FILTERS);
              void fetchPage(NO_FILTERS, null);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ProblemBox problem={problem} />
      {events === null ? (
        <p className="loading">Loading events…</p>
      ) : events.length === 0 ? (
        <p className="empty" data-testid="events-list">
          No events match.
        </p>
      ) : (
        <table className="data-table ev-table" data-testid="events-list">
          <thead>
            <tr>
              <th>Time</th>
              <th>Kind</th>
              <th>Identifier</th>
              <th>Surface</th>
              <th>Outcome</th>
              <th>Denials</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event) => {
              const denials = records(event.record.denials);
              return (
                <Fragment key={event.id}>
                  <tr className="clickable" onClick={() => setOpen(open === event.id ? null : event.id)} data-testid="event-row" aria-expanded={open === event.id}>
                    <td title={event.createdAt}>{shortTime(event.createdAt)}</td>
                    <td>{event.kind}</td>
                    <td>
                      <code>{event.identifier ?? ""}</code>
                    </td>
                    <td>{event.surfaceSlug ?? ""}</td>
                    <td className={event.outcome === "denied" || event.outcome === "failed" ? "status-bad" : undefined}>{event.outcome ?? ""}</td>
                    <td>{denials.length ? denials.length : ""}</td>
                  </tr>
                  {open === event.id ? (
                    <tr className="ev-expanded">
                      <td colSpan={6}>
                        <EventRecord event={event} />
                      </td>
                    </tr>
                  ) : null}
                </Fragment>
              );
            })}
          </tbody>
        </table>
      )}
      {nextCursor ? (
        <button type="button" onClick={() => void fetchPage(applied, nextCursor)} disabled={loading} data-testid="events-load-more">
          {loading ? "Loading…" : "Load more"}
        </button>
      ) : null}
    </div>
  );
}
