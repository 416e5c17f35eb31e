/**
 * An identity link (`POST /api/v1/identity-links`): when an anonymous visitor signs in, their current counters are
 * carried over to the signed-in user, once per pair. The signed-in identity is resolved as a decision resolves it.
 */
import { ApiError } from "../errors";
import type { CallerScope } from "./context";
import type { Services } from "./services";
import { callMeter } from "./meterCall";
import { recordingRequiredFailures } from "./requiredWorkflows";
import { identify, loadConfig, runMiddleware } from "./stages";

export interface IdentityLinkRequest extends CallerScope {
  body: CallerScope["body"] & { anonymousIdentifier: string };
}

export interface IdentityLinkResult {
  status: "success";
  identifier: string;
  anonymousIdentifier: string;
  linked: boolean;
  counters: number;
}

export async function linkIdentity(services: Services, request: IdentityLinkRequest): Promise<IdentityLinkResult> {
  const { anonymousIdentifier } = request.body;
  const subject = await recordingRequiredFailures(services, { ...request, kind: "counter_update", action: "identity.link" }, async () =>
    runMiddleware(services, await identify(services, await loadConfig(services, request))),
  );
  const { identity, environment, store } = subject;
  if (!identity.isAuthenticated) {
    throw new ApiError("bad_request", "identity must be the signed-in user (userJwt, or userIdentifier with a secret key), not an anonymous identifier");
  }
  if (anonymousIdentifier === identity.identifier) throw new ApiError("bad_request", "An identity cannot be linked to itself");

  // Two calls, not atomic together; `importOnce` is what makes the copy happen once: it checks and records the link
  // key in one synchronous step of the user's object, so concurrent or repeated links import at most once.
  const organizationId = environment.organizationId;
  const exported = await callMeter(() => services.meter.stub({ organizationId, store, authenticated: false, identifier: anonymousIdentifier }).exportCounters());
  const imported = await callMeter(() =>
    services.meter.stub({ organizationId, store, authenticated: true, identifier: identity.identifier }).importOnce(`${anonymousIdentifier}->${identity.identifier}`, exported),
  );

  if (imported.linked) {
    services.waitUntil(
      services
        .insertEvent({
          organizationId,
          environmentId: environment.id,
          kind: "counter_update",
          identifier: identity.identifier,
          outcome: "linked",
          record: { action: "identity.link", anonymousIdentifier, identifier: identity.identifier, counters: imported.counters },
        })
        .catch((error: unknown) => services.logger.error("identity_link_event_not_written", { error: String(error) })),
    );
  }
  return { status: "success", identifier: identity.identifier, anonymousIdentifier, linked: imported.linked, counters: imported.counters };
}
