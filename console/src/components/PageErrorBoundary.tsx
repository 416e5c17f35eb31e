import { Component, type ReactNode } from "react";

/**
 * A page that fails to render (or whose code cannot be fetched) takes down that page only: the shell stays, and
 * says what happened. A missing chunk means the console was rebuilt or redeployed since this tab loaded it.
 */
export class PageErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state: { error: Error | null } = { error: null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    const outdated = /dynamically imported module|Importing a module script failed|error loading dynamically imported module/i.test(error.message);
    return (
      <div className="problem" role="alert" data-testid="page-error">
        <strong>{outdated ? "The console was updated" : "This page failed"}</strong>
        <p>{outdated ? "This tab runs an older copy of the console: reload to get the current one." : error.message}</p>
        <button type="button" onClick={() => location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
