/**
 * Stage 1 — config: the environment's deployed version, as a prepared snapshot (compiled once per isolate; no D1
 * query in the steady state), and the user data store the environment reads and writes.
 */
import { ApiError } from "../../errors";
import { storeOf } from "../../services/tenancy";
import type { CallerScope, Configured } from "../context";
import type { Services } from "../services";

export async function loadConfig<C extends CallerScope & { surfaceSlug?: string }>(services: Services, context: C): Promise<C & Configured> {
  const { environment, surfaceSlug } = context;
  if (!environment.deployedVersionId) {
    throw new ApiError("not_found", "No configuration version is deployed to this environment: create a version and deploy it");
  }
  const prepared = await services.snapshot(environment.deployedVersionId);
  if (surfaceSlug !== undefined && !prepared.surfaceBySlug.has(surfaceSlug)) {
    throw new ApiError("surface_not_found", `Surface ${surfaceSlug} not found`);
  }
  services.timing.mark("config");
  return { ...context, prepared, store: storeOf(environment) };
}
