/**
 * The offer funnel, computed from events in D1: impressions are the `offers` entries of surface decision records
 * (decision stage: `[{group, slot, offer, variant, tokenId, amount, currency}]`, counted with json_each), redemptions the
 * `offer_redemption` events by outcome (one per token and outcome: their ids are derived). Both per offer and variant.
 */
import { flushEvents } from "../services/events";

export interface OfferFunnelRow {
  offer: string;
  variant: string | null;
  impressions: number;
  started: number;
  completed: number;
  failed: number;
  /** completed / impressions; null without impressions. */
  conversion: number | null;
}

export async function offerFunnel(db: D1Database, query: { organizationId: string; environmentId: string; from: string; to: string }): Promise<OfferFunnelRow[]> {
  // Decision records are buffered per isolate: this one's go to D1 first, as for the events query.
  await flushEvents();
  const scope = [query.organizationId, query.environmentId, query.from, query.to];
  const within = "e.organization_id = ? AND e.environment_id = ? AND e.created_at >= ? AND e.created_at <= ?";
  const [impressions, redemptions] = await db.batch([
    db
      .prepare(
        `SELECT json_extract(shown.value, '$.offer') AS offer, json_extract(shown.value, '$.variant') AS variant, COUNT(*) AS count
         FROM events e, json_each(e.record, '$.offers') shown
         WHERE ${within} AND e.kind = 'surface_decision' AND json_type(e.record, '$.offers') = 'array'
         GROUP BY 1, 2`,
      )
      .bind(...scope),
    db
      .prepare(
        `SELECT json_extract(e.record, '$.offer') AS offer, json_extract(e.record, '$.variant') AS variant, e.outcome AS outcome, COUNT(*) AS count
         FROM events e WHERE ${within} AND e.kind = 'offer_redemption' GROUP BY 1, 2, 3`,
      )
      .bind(...scope),
  ]);
  const rows = new Map<string, OfferFunnelRow>();
  const rowOf = (offer: string, variant: string | null) => {
    const key = JSON.stringify([offer, variant]);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { offer, variant, impressions: 0, started: 0, completed: 0, failed: 0, conversion: null }));
    return row;
  };
  for (const shown of impressions!.results as { offer: string | null; variant: string | null; count: number }[]) {
    if (typeof shown.offer === "string") rowOf(shown.offer, shown.variant).impressions += shown.count;
  }
  for (const redeemed of redemptions!.results as { offer: string | null; variant: string | null; outcome: string; count: number }[]) {
    if (typeof redeemed.offer !== "string") continue;
    const row = rowOf(redeemed.offer, redeemed.variant);
    if (redeemed.outcome === "started" || redeemed.outcome === "completed" || redeemed.outcome === "failed") row[redeemed.outcome] += redeemed.count;
  }
  return [...rows.values()]
    .map((row) => ({ ...row, conversion: row.impressions > 0 ? row.completed / row.impressions : null }))
    .sort((a, b) => a.offer.localeCompare(b.offer) || (a.variant ?? "").localeCompare(b.variant ?? ""));
}
