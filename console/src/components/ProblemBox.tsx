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
  return (
    <div className="problem" role="alert" data-testid="problem">
      <strong>{title ?? (isApi && problem.status ? `${problem.status} ${problem.code}` : "Problem")}</strong>
      <p>{message}</p>
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
