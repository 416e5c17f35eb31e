/**
 * After a response: credits this request deducted below their `autoTopUp` threshold get a top-up requested in the
 * background (payments/topUp.ts). Only for signed-in identities — packs are bought and granted for them alone — and
 * never for a replayed request (the first one asked).
 */
import type { CreditReading } from "../engine";
import { topUpsDue } from "../payments/topUp";
import type { Configured, Identified } from "./context";
import type { Services } from "./services";
import type { Environment } from "../services/tenancy";

export function requestTopUpsAfter(
  services: Services,
  subject: Configured & Identified & { environment: Environment },
  readings: Iterable<CreditReading> | undefined,
): void {
  if (!readings || !subject.identity.isAuthenticated) return;
  const due = topUpsDue(subject.prepared, subject.store, readings);
  if (due.length > 0) services.requestCreditTopUps(subject.environment, subject.identity.identifier, due);
}
