/**
 * The offer funnel: impressions are the offers surface decisions showed (the decision records' `offers`, counted by
 * the environment's event store — D1 or Analytics Engine, services/eventStore.ts), redemptions the `offer_redemption`
 * events by outcome (one per token and outcome: their ids are derived; always in D1). Both per offer and variant.
 */
import type { ImpressionCount } from "../services/eventStore";

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

export async function offerFunnel(
  db: D1Database,
  impressions: readonly ImpressionCount[],
  query: { organizationId: string; environmentId: string; from: string; to: string },
): Promise<OfferFunnelRow[]> {
  const { results: redemptions } = await db
    .prepare(
      `SELECT json_extract(e.record, '$.offer') AS offer, json_extract(e.record, '$.variant') AS variant, e.outcome AS outcome, COUNT(*) AS count
       FROM events e WHERE e.organization_id = ? AND e.environment_id = ? AND e.created_at >= ? AND e.created_at <= ? AND e.kind = 'offer_redemption' GROUP BY 1, 2, 3`,
    )
    .bind(query.organizationId, query.environmentId, query.from, query.to)
    .all<{ offer: string | null; variant: string | null; outcome: string; count: number }>();
  const rows = new Map<string, OfferFunnelRow>();
  const rowOf = (offer: string, variant: string | null) => {
    const key = JSON.stringify([offer, variant]);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { offer, variant, impressions: 0, started: 0, completed: 0, failed: 0, conversion: null }));
    return row;
  };
  for (const shown of impressions) rowOf(shown.offer, shown.variant).impressions += shown.count;
  for (const redeemed of redemptions) {
    if (typeof redeemed.offer !== "string") continue;
    const row = rowOf(redeemed.offer, redeemed.variant);
    if (redeemed.outcome === "started" || redeemed.outcome === "completed" || redeemed.outcome === "failed") row[redeemed.outcome] += redeemed.count;
  }
  return [...rows.values()]
    .map((row) => ({ ...row, conversion: row.impressions > 0 ? row.completed / row.impressions : null }))
    .sort((a, b) => a.offer.localeCompare(b.offer) || (a.variant ?? "").localeCompare(b.variant ?? ""));
}
