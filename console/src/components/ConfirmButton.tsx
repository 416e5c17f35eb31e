import { useState, type ReactNode } from "react";

/**
 * A destructive action asks once more in place (no browser dialog, which automation and some browsers block):
 * the button becomes "Confirm" / "Cancel".
 */
export function ConfirmButton({ children, question, onConfirm, testId, className = "danger", disabled }: { children: ReactNode; question: ReactNode; onConfirm(): void | Promise<void>; testId?: string; className?: string; disabled?: boolean }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking)
    return (
      <button type="button" className={className} data-testid={testId} disabled={disabled} onClick={() => setAsking(true)}>
        {children}
      </button>
    );
  return (
    <span className="confirm">
      <span className="confirm-question">{question}</span>
      <button
        type="button"
        className={className}
        disabled={busy}
        data-testid={testId ? `${testId}-confirm` : undefined}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        Confirm
      </button>
      <button type="button" onClick={() => setAsking(false)} data-testid={testId ? `${testId}-cancel` : undefined}>
        Cancel
      </button>
    </span>
  );
}
