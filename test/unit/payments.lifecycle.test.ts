/** The entitlement lifecycle (workers/payments/lifecycle.ts): states, and what each grants at a given clock. */
import { describe, expect, it } from "vitest";
import { entitledProductIds, type StoredSubscription, subscriptionAccess, subscriptionStateOf } from "../../workers/payments/lifecycle";

const HOUR = 3_600_000;
const t0 = Date.parse("2026-11-01T00:00:00.000Z");
const subscription = (overrides: Partial<StoredSubscription> = {}): StoredSubscription => ({
  state: "active",
  productIds: ["prod_a"],
  currentPeriodEnd: new Date(t0 + 30 * 24 * HOUR).toISOString(),
  stateSince: new Date(t0).toISOString(),
  graceHours: 72,
  revokedAt: null,
  ...overrides,
});

describe("subscription lifecycle", () => {
  it("maps provider statuses to states; cancel at period end is its own state", () => {
    expect(subscriptionStateOf("active", false)).toBe("active");
    expect(subscriptionStateOf("trialing", false)).toBe("trialing");
    expect(subscriptionStateOf("active", true)).toBe("canceling");
    expect(subscriptionStateOf("trialing", true)).toBe("canceling");
    expect(subscriptionStateOf("past_due", true)).toBe("past_due");
    expect(subscriptionStateOf("incomplete_expired", false)).toBe("canceled");
    expect(subscriptionStateOf("unknown", false)).toBe("unknown");
  });

  it("grants active and trialing without end, canceling until the period ends", () => {
    expect(subscriptionAccess(subscription(), t0)).toEqual({ granted: true, until: null });
    expect(subscriptionAccess(subscription({ state: "trialing" }), t0).granted).toBe(true);
    const canceling = subscription({ state: "canceling" });
    const end = Date.parse(canceling.currentPeriodEnd!);
    expect(subscriptionAccess(canceling, end - 1)).toEqual({ granted: true, until: canceling.currentPeriodEnd });
    expect(subscriptionAccess(canceling, end).granted).toBe(false);
  });

  it("grants past_due for the grace hours after it began, not a millisecond more", () => {
    const pastDue = subscription({ state: "past_due", stateSince: new Date(t0).toISOString(), graceHours: 72 });
    expect(subscriptionAccess(pastDue, t0 + 72 * HOUR - 1)).toEqual({ granted: true, until: new Date(t0 + 72 * HOUR).toISOString() });
    expect(subscriptionAccess(pastDue, t0 + 72 * HOUR).granted).toBe(false);
    expect(subscriptionAccess({ ...pastDue, graceHours: 0 }, t0).granted).toBe(false);
  });

  it("never grants unpaid, paused, incomplete, canceled, unknown or revoked subscriptions", () => {
    for (const state of ["unpaid", "paused", "incomplete", "canceled", "unknown", "revoked"] as const) {
      expect(subscriptionAccess(subscription({ state }), t0).granted, state).toBe(false);
    }
    expect(subscriptionAccess(subscription({ revokedAt: new Date(t0).toISOString() }), t0).granted).toBe(false);
  });

  it("unites the products of what grants now: subscriptions and paid purchases", () => {
    const products = entitledProductIds(
      [subscription({ productIds: ["prod_b", "prod_a"] }), subscription({ state: "canceled", productIds: ["prod_c"] })],
      [
        { state: "paid", productIds: ["prod_d", "prod_a"] },
        { state: "refunded", productIds: ["prod_e"] },
        { state: "disputed", productIds: ["prod_f"] },
      ],
      t0,
    );
    expect(products).toEqual(["prod_a", "prod_b", "prod_d"]);
  });
});
