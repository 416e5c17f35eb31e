/**
 * A decision answered on its fallback because the meter was slow is never billed as overage, even though the object
 * consumed the unit when the call finally arrived: the visitor got the fallback's answer, not that unit.
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

const DOCUMENT = {
  features: { api: { properties: { enabled: { type: "enabled", fallback: "off", onMeterFailure: "closed" } } } },
  plans: {
    basic: { autoAssign: ["authenticated"], features: { api: { enabled: { metered: { limit: 1, period: "month", overage: "overflow", stripeMeterEvent: "api_calls" } } } } },
  },
  surfaces: { call: { consumes: ["api.enabled"] } },
};

it("bills no overage for a late meter answer the response did not use", async () => {
  const org = await createOrganization("Late overage");
  await publish(org.adminKey, DOCUMENT, [org.preview.id]);
  await connectStripe(org, org.preview.id);
  const user = uniqueId("late");
  const decide = (caller = call) => caller("POST", "/api/v1/surface-decisions", { key: org.preview.secretKey, body: { surfaceSlug: "call", identity: { userIdentifier: user } } });
  const usage = () => payments.sent.filter((message) => "kind" in message && message.kind === "usage");

  // Within the limit, then one unit over it: billed.
  expect((await decide()).body.features.api.properties.enabled.hasAccess).toBe(true);
  expect((await decide()).body.features.api.properties.enabled).toMatchObject({ hasAccess: true, overageUnits: 1 });
  await waitForBackgroundWork();
  expect(usage()).toHaveLength(1);

  // The meter answers after the deadline: the response is the closed fallback, and nothing more is billed.
  const slow = await decide(workerWith({ meter: faultyMeter("slow", [user]) }));
  expect(slow.body.features.api.properties.enabled).toMatchObject({ hasAccess: false, isFallback: true });
  await waitForBackgroundWork();
  expect(usage()).toHaveLength(1);
});
