/**
 * A decision answered on its fallback because the meter was slow: the object consumed the unit when the call finally
 * arrived. Its overage is billed only when the fallback granted (onMeterFailure: open) — the visitor used the unit —
 * never when it refused.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { call, createOrganization, publish, waitForBackgroundWork } from "../../support/api";
import { faultyMeter, workerWith } from "../../support/faults";
import { type CapturedPayments, capturePayments, connectStripe } from "../../support/payments";
import { uniqueId } from "./helpers";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const documentWith = (onMeterFailure: "open" | "closed") => ({
  features: { api: { properties: { enabled: { type: "enabled", fallback: "off", onMeterFailure } } } },
  plans: {
    basic: { autoAssign: ["authenticated"], features: { api: { enabled: { metered: { limit: 1, period: "month", overage: "overflow", stripeMeterEvent: "api_calls" } } } } },
  },
  surfaces: { call: { consumes: ["api.enabled"] } },
});

async function lateOverage(onMeterFailure: "open" | "closed") {
  const org = await createOrganization("Late overage");
  await publish(org.adminKey, documentWith(onMeterFailure), [org.preview.id]);
  await connectStripe(org, org.preview.id);
  const user = uniqueId("late");
  const decide = (caller = call) => caller("POST", "/api/v1/surface-decisions", { key: org.preview.secretKey, body: { surfaceSlug: "call", identity: { userIdentifier: user } } });
  const usage = () => payments.sent.filter((message) => "kind" in message && message.kind === "usage");

  // Within the limit, then one unit over it: billed.
  expect((await decide()).body.features.api.properties.enabled.hasAccess).toBe(true);
  expect((await decide()).body.features.api.properties.enabled).toMatchObject({ hasAccess: true, overageUnits: 1 });
  await waitForBackgroundWork();
  expect(usage()).toHaveLength(1);

  // The meter answers after the deadline: the response is the fallback.
  const slow = await decide(workerWith({ meter: faultyMeter("slow", [user]) }));
  expect(slow.body.features.api.properties.enabled).toMatchObject({ hasAccess: onMeterFailure === "open", isFallback: true });
  await waitForBackgroundWork();
  return usage();
}

it("bills no overage for a late meter answer when the fallback refused the visitor", async () => {
  expect(await lateOverage("closed")).toHaveLength(1);
});

it("bills the late answer's overage when the fallback granted: the visitor used the unit", async () => {
  const reports = await lateOverage("open");
  expect(reports).toHaveLength(2);
  expect(reports[1]).toMatchObject({ kind: "usage", value: 1 });
});
