import { ApiProblem, type ProblemDetail } from "../api";

/**
 * What went wrong, as the API said it: the message, then each detail as `path: message`. `details` overrides the
 * problem's own when the form showed some of them next to their fields already.
 */
export function ProblemBox({ problem, details, title }: { problem: unknown; details?: ProblemDetail[]; title?: string }) {
  if (!problem) return null;
  const isApi = problem instanceof ApiProblem;
  const message = problem instanceof Error ? problem.message : String(problem);
  const shown = details ?? (isApi ? problem.details : []);
  const lead = leadOf(message, shown);
  return (
    <div className="problem" role="alert" data-testid="problem">
      <strong>{title ?? (isApi && problem.status ? `${problem.status} ${problem.code}` : "Problem")}</strong>
      {lead ? <p>{lead}</p> : null}
      {shown.length > 0 ? (
        <ul>
          {shown.map((detail, index) => (
            <li key={index}>
              <code>{detail.path}</code>: {detail.message}
            </li>
          ))}
        </ul>
      ) : null}
      {isApi && problem.requestId ? <p className="muted small">Request {problem.requestId}</p> : null}
    </div>
  );
}

/**
 * The API's message often repeats its details ("Invalid request: a.b: too long; c: required", "Workflow x does not
 * compile: workflows.x.source: …"): only the part before the first detail it repeats is shown above the list.
 */
function leadOf(message: string, details: ProblemDetail[]): string {
  let cut = message.length;
  for (const detail of details) {
    const at = message.indexOf(`${detail.path}: `);
    if (at >= 0 && at < cut) cut = at;
  }
  return cut === message.length ? message : message.slice(0, cut).replace(/[\s:;,-]+$/, "");
}
