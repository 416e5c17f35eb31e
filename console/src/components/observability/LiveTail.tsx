/**
 * The live tail of the picked environment: its decisions as they happen, newest first, read from
 * GET /api/v1/admin/environments/{id}/tail (server-sent events through `api.stream`, since EventSource cannot send
 * the Authorization header). A dropped stream is reopened after a growing pause; Stop closes it. A tail the server
 * ends at the end of its lifetime (`event: end`, reason "expired") is reopened at once and silently: opening it
 * checks the credential again, and a revoked one signs the console out.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiProblem, segment, useApi } from "../../api";
import { denialText, isRecord, records, shortTime, type Json } from "./format";

/** The list keeps the newest decisions only: a busy environment must not grow the page without bound. */
export const TAIL_CAP = 200;
const RETRY_DELAYS_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

type TailState =
  | { status: "stopped" }
  | { status: "connecting" }
  | { status: "live"; since: number }
  | { status: "dropped"; reason: string; retryAt: number }
  /** Refused for good (no permission, no such environment): retrying would be refused again. */
  | { status: "refused"; reason: string };

interface TailDecision {
  id: string;
  kind: string;
  createdAt: string;
  identifier: string | null;
  surfaceSlug: string | null;
  outcome: string | null;
  plans: string[];
  denials: Json[];
  /** Denials the summary left out (it lists at most 20). */
  moreDenials: number;
  durationMs: number | null;
}

function decisionOf(data: unknown): TailDecision | null {
  if (!isRecord(data) || typeof data.id !== "string") return null;
  return {
    id: data.id,
    kind: String(data.kind ?? ""),
    createdAt: String(data.createdAt ?? new Date().toISOString()),
    identifier: typeof data.identifier === "string" ? data.identifier : null,
    surfaceSlug: typeof data.surfaceSlug === "string" ? data.surfaceSlug : null,
    outcome: typeof data.outcome === "string" ? data.outcome : null,
    plans: Array.isArray(data.plans) ? data.plans.map(String) : [],
    denials: records(data.denials),
    moreDenials: typeof data.moreDenials === "number" ? data.moreDenials : 0,
    durationMs: typeof data.durationMs === "number" ? data.durationMs : null,
  };
}

export function LiveTail({ environmentId }: { environmentId: string | null }) {
  const api = useApi();
  const [state, setState] = useState<TailState>({ status: "stopped" });
  const [rows, setRows] = useState<TailDecision[]>([]);
  const [now, setNow] = useState(() => Date.now());
  const controller = useRef<AbortController | null>(null);
  const retryTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const attempts = useRef(0);

  const stop = useCallback(() => {
    clearTimeout(retryTimer.current);
    controller.current?.abort();
    controller.current = null;
    attempts.current = 0;
    setState({ status: "stopped" });
  }, []);

  /** Opens the tail; `renewal` keeps the current status (a tail the server ended on time, reopened at once). */
  const open = useCallback((renewal = false) => {
    if (!environmentId) return;
    clearTimeout(retryTimer.current);
    controller.current?.abort();
    const abort = new AbortController();
    controller.current = abort;
    if (!renewal) setState({ status: "connecting" });
    let expired = false;
    const dropped = (reason: string) => {
      if (abort.signal.aborted) return;
      const delay = RETRY_DELAYS_MS[Math.min(attempts.current, RETRY_DELAYS_MS.length - 1)]!;
      attempts.current += 1;
      setState({ status: "dropped", reason, retryAt: Date.now() + delay });
      retryTimer.current = setTimeout(() => openRef.current(), delay);
    };
    api
      .stream(
        `/api/v1/admin/environments/${segment(environmentId)}/tail`,
        (event, data) => {
          if (abort.signal.aborted) return;
          if (event === "ready") {
            attempts.current = 0;
            if (!renewal) setState({ status: "live", since: Date.now() });
          } else if (event === "end") {
            expired = isRecord(data) && data.reason === "expired";
          } else if (event === "decision") {
            const decision = decisionOf(data);
            if (decision) setRows((current) => [decision, ...current.filter((row) => row.id !== decision.id)].slice(0, TAIL_CAP));
          }
        },
        abort.signal,
      )
      .then(
        () => {
          if (expired && !abort.signal.aborted) openRef.current(true);
          else dropped("the stream ended");
        },
        (error: unknown) => {
          if (error instanceof ApiProblem && error.status === 401) return; // the session ends: nothing to reopen
          if (error instanceof ApiProblem && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) {
            controller.current = null;
            setState({ status: "refused", reason: `${error.status} ${error.code}: ${error.message}` });
            return;
          }
          dropped(error instanceof ApiProblem ? `${error.status} ${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error));
        },
      );
  }, [api, environmentId]);
  const openRef = useRef(open);
  openRef.current = open;

  // Another environment (or leaving the page) closes the tail; its rows belong to the old environment.
  useEffect(() => {
    setRows([]);
    return () => {
      clearTimeout(retryTimer.current);
      controller.current?.abort();
      controller.current = null;
      attempts.current = 0;
      setState({ status: "stopped" });
    };
  }, [environmentId]);

  // The countdown of a reconnect.
  useEffect(() => {
    if (state.status !== "dropped") return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [state.status]);

  const running = state.status !== "stopped" && state.status !== "refused";
  return (
    <div className="tail">
      <div className="tail-controls">
        {running ? (
          <button type="button" onClick={stop} data-testid="tail-stop">
            Stop
          </button>
        ) : (
          <button type="button" className="primary" onClick={() => open()} disabled={!environmentId} data-testid="tail-start">
            Start live tail
          </button>
        )}
        <span className={`tail-status tail-${state.status}`} data-testid="tail-status" data-status={state.status}>
          {state.status === "stopped" && "Stopped."}
          {state.status === "connecting" && "Connecting…"}
          {state.status === "live" && "Live: decisions appear as they are made."}
          {state.status === "refused" && `The tail was refused (${state.reason}).`}
          {state.status === "dropped" && (
            <>
              Connection lost ({state.reason}). Reconnecting in {Math.max(0, Math.ceil((state.retryAt - now) / 1000))} s…{" "}
              <button type="button" className="link" onClick={() => open()}>
                Reconnect now
              </button>
            </>
          )}
        </span>
        {rows.length ? (
          <button type="button" className="link" onClick={() => setRows([])}>
            Clear
          </button>
        ) : null}
        <span className="muted small">Newest first, the last {TAIL_CAP} kept.</span>
      </div>
      <ol className="tail-list" data-testid="tail-list">
        {rows.length === 0 ? <li className="muted tail-empty">{running ? "Waiting for decisions…" : "Start the tail to watch decisions as they happen."}</li> : null}
        {rows.map((row) => (
          <li key={row.id} className={`tail-row tail-${row.outcome ?? "unknown"}`} data-testid="tail-row" data-outcome={row.outcome ?? ""}>
            <span className="tail-time" title={row.createdAt}>
              {shortTime(row.createdAt)}
            </span>
            <span className="tail-kind">{row.kind === "surface_decision" ? `surface ${row.surfaceSlug ?? ""}` : "access check"}</span>
            <code className="tail-identifier">{row.identifier ?? ""}</code>
            <span className={row.outcome === "denied" || row.outcome === "failed" ? "status-bad" : "status-good"}>{row.outcome ?? ""}</span>
            <span className="tail-plans">{row.plans.length ? row.plans.join(", ") : <span className="muted">no plan</span>}</span>
            <span className="tail-denials">{[...row.denials.map(denialText), ...(row.moreDenials ? [`+${row.moreDenials} more`] : [])].join("; ")}</span>
            <span className="tail-duration">{row.durationMs === null ? "" : `${row.durationMs.toFixed(1)} ms`}</span>
          </li>
        ))}
      </ol>
    </div>
  );
}
