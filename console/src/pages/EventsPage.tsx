/** #/events — the picked environment's decisions as they happen (live tail) and its recorded events (explorer). */
import { Page, Panel } from "../components/Page";
import { EventsExplorer } from "../components/observability/EventsExplorer";
import { LiveTail } from "../components/observability/LiveTail";
import { useEnvironment, useSession } from "../session";
import "../components/playground/playground.css";
import "../components/observability/observability.css";

export default function EventsPage() {
  const { environmentId } = useSession();
  const environment = useEnvironment();
  const name = environment ? environment.name || environment.slug : null;
  return (
    <Page title="Events" subtitle={name ? `Decisions and audit entries of ${name}.` : "Pick an environment to see its events."}>
      <Panel title="Live tail">
        <LiveTail environmentId={environmentId} />
      </Panel>
      <Panel title="Explorer">
        <EventsExplorer environmentId={environmentId} />
      </Panel>
    </Page>
  );
}
