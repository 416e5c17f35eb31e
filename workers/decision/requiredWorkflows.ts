/**
 * A `required` workflow that fails ends the request with 531, whichever flow ran it (a decision, or the middleware and
 * provisioning a counter update or identity link resolves its subject with). Every flow handles it here: the failed
 * request is recorded with the runs so far and the error, and the caller learns which workflow failed — with the
 * customer's error text only for a secret key (a browser holding a publishable key sees none of the customer's
 * internals; the record keeps them).
 */
import { ApiError } from "../errors";
import { newId } from "../lib/ids";
import type { EventKind } from "../services/events";
import { RequiredWorkflowError } from "../workflows/stages";
import type { CallerScope } from "./context";
import type { Services } from "./services";

export async function recordingRequiredFailures<T>(
  services: Services,
  caller: Pick<CallerScope, "environment" | "keyType"> & { kind: EventKind; surfaceSlug?: string; action?: string },
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof RequiredWorkflowError)) throw error;
    const { environment, kind, surfaceSlug, action } = caller;
    services.recordEvent({
      id: newId("evt"),
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind,
      identifier: null,
      surfaceSlug: surfaceSlug ?? null,
      outcome: "failed",
      record: { ...(action ? { action } : {}), workflows: error.records, error: error.message, versionId: environment.deployedVersionId },
    });
    throw caller.keyType === "secret" ? error : new ApiError("workflow_error", `Workflow ${error.slug} failed`);
  }
}
