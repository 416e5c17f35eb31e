import { env } from "cloudflare:workers";
import type { MeterRequest } from "../../../workers/engine/types";
import { meterStub, type MeterStub } from "../../../durable-objects/meter/client";
import type { EvaluateResult } from "../../../durable-objects/meter/MeterObject";
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
