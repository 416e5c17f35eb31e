import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import type { Period } from "../../../schema/config";
import type { MeterRequest } from "../../../workers/engine/types";
import { meterStub, type MeterStub } from "../../../durable-objects/meter/client";
import type { EvaluateResult, MeterObject } from "../../../durable-objects/meter/MeterObject";
import type { MeterReading } from "../../../workers/engine/types";

/** A fresh meter object: its own organization/store key and identifier, so tests never share state. */
export function freshMeter(label = "user"): { stub: MeterStub; storeKey: string; identifier: string } {
  const storeKey = `org_${crypto.randomUUID().slice(0, 8)}:default`;
  const identifier = `${label}-${crypto.randomUUID()}`;
  return { stub: meterStub(env.METER, storeKey, identifier), storeKey, identifier };
}

export function counter(counterId: string, limit: number, extra: Partial<MeterRequest> = {}): MeterRequest {
  return { counterId, limit, period: "month", uniqueResources: false, consume: true, ...extra };
}

export function readingsOf(result: EvaluateResult): MeterReading[] {
  if ("conflict" in result) throw new Error("unexpected idempotency conflict");
  return result.readings;
}

export function only<T>(items: readonly T[]): T {
  if (items.length !== 1) throw new Error(`expected exactly one item, got ${items.length}`);
  return items[0]!;
}

export const at = (iso: string): number => Date.parse(iso);

export type Deduction = { ok: boolean; balance: number; reason?: "insufficient_credits"; replayed?: true } | { conflict: true };

/**
 * Charges `cost` to a credits balance the way surface decisions and counter updates do (one `evaluate` with a consuming
 * credit request), reported as `{ok, balance, reason?, replayed?}`.
 */
export async function deduct(stub: MeterStub, input: { creditId: string; cost: number; idempotencyKey?: string; requestHash?: string }): Promise<Deduction> {
  const result = await stub.evaluate({
    counters: [],
    credits: [{ creditId: input.creditId, cost: input.cost, consume: true }],
    timeZone: "UTC",
    idempotencyKey: input.idempotencyKey,
    requestHash: input.requestHash,
  });
  if ("conflict" in result) return { conflict: true };
  const credit = result.credits![0]!;
  return {
    ok: credit.deductedInRequest,
    balance: credit.balance,
    ...(credit.reason ? { reason: credit.reason } : {}),
    ...(result.replayed ? { replayed: true as const } : {}),
  };
}

/** Gives a plan's periodic allowance the way a decision does (an `evaluate` whose credit request carries `grant`); returns the balance. */
export async function applyAllowance(stub: MeterStub, input: { creditId: string; amount: number; period: Period; now: number; carryOver?: number }): Promise<number> {
  const grant = { amount: input.amount, period: input.period, ...(input.carryOver === undefined ? {} : { carryOver: input.carryOver }) };
  const result = await stub.evaluate({
    counters: [],
    credits: [{ creditId: input.creditId, cost: 0, consume: false, grant }],
    timeZone: "UTC",
    now: input.now,
  });
  if ("conflict" in result) throw new Error("unexpected idempotency conflict");
  return result.credits![0]!.balance;
}

/** The credit ledger of one balance, newest first, read from the object's storage. */
export function creditLedger(stub: MeterStub, creditId: string): Promise<{ delta: number; balance: number; reason: string }[]> {
  return runInDurableObject(stub, (_instance: MeterObject, state) =>
    state.storage.sql
      .exec<{ delta: number; balance: number; reason: string }>("SELECT delta, balance, reason FROM credit_ledger WHERE credit_id = ? ORDER BY id DESC", creditId)
      .toArray(),
  );
}
