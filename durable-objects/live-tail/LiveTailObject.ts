/**
 * The live tail of one environment: a Durable Object that holds the open `text/event-stream` responses of its
 * tails (at most MAX_TAILS) and writes to them the summaries of the decisions the isolates publish to it.
 *
 * The decision path never calls it on its own: an isolate publishes an environment's records from its flush (after the
 * responses, one call per tailed environment and flush) only while the environment's row carries a lease that this
 * object sets when its first client connects, renews while clients stay and ends when the last one leaves
 * (storage-schema.md). Clients are held in memory: an object that restarts has lost its streams, and the tails
 * reconnect.
 *
 * A tail's credential is checked when it opens, never again: each tail is ended after MAX_TAIL_LIFETIME_MS (an
 * `event: end` with `{ reason: "expired" }`, then the end of the stream), so a client keeps tailing only by opening a
 * new one with a credential that is still good.
 */
import { DurableObject } from "cloudflare:workers";
import { setTailLease } from "../../workers/services/tenancy";

/** Open tails an environment may have at once; one more is refused (429). */
export const MAX_TAILS = 10;
/** A `: ping` comment keeps each stream (and the proxies between it and the client) from idling out. */
export const PING_INTERVAL_MS = 15_000;
/** How long a lease holds without renewal: an object gone without ending it stops the publications within this. */
export const LEASE_MS = 60_000;
/**
 * Bytes a client may leave unread before it is dropped: a reader that stalls must not grow the object's memory (every
 * tail of the environment lives in it). Counted in bytes, not chunks: one flush's chunk can be large.
 */
export const MAX_UNREAD_BYTES = 1024 * 1024;
/** How long a tail stays open (checked at each ping, so up to PING_INTERVAL_MS more). */
export const MAX_TAIL_LIFETIME_MS = 15 * 60_000;

/** One decision as a tail shows it (the record stays in the events API). */
export interface DecisionSummary {
  id: string;
  kind: string;
  createdAt: string;
  environmentId: string;
  identifier: string | null;
  surfaceSlug: string | null;
  outcome: string | null;
  plans: string[];
  /** At most MAX_SUMMARY_DENIALS of them (workers/services/liveTail.ts); `moreDenials` counts the rest when any. */
  denials: { featureSlug: string; property: string; reason: string }[];
  moreDenials?: number;
  /** The sum of the record's stage timings (ms); null when it has none. */
  durationMs: number | null;
  versionId: string | null;
}

type Client = WritableStreamDefaultWriter<Uint8Array>;

const encoder = new TextEncoder();

export class LiveTailObject extends DurableObject<Env> {
  /** Each open tail, with when it opened. */
  private readonly clients = new Map<Client, number>();
  /** MAX_TAIL_LIFETIME_MS, but for a test that ends its tails without waiting for it. */
  tailLifetimeMs = MAX_TAIL_LIFETIME_MS;
  private environmentId: string | undefined;
  private leaseUntil = 0;
  /** The lease writes, one after the other: an end and a new start racing to D1 must land in the order they were made. */
  private leaseWrites: Promise<void> = Promise.resolve();
  /** Batches of summaries published to this object since it started (an operator's, or a test's, view of its load). */
  publishedBatches = 0;

  /**
   * Opens a tail: `GET /?environmentId=…` answers the stream (`event: ready` first), or 429 when MAX_TAILS are open.
   * The lease is in place before the stream is answered, so the caller's isolate can see it at once.
   */
  override async fetch(request: Request): Promise<Response> {
    const environmentId = new URL(request.url).searchParams.get("environmentId");
    if (!environmentId) return new Response("environmentId is required", { status: 400 });
    if (this.clients.size >= MAX_TAILS) return new Response(null, { status: 429 });
    this.environmentId = environmentId;
    // The writable side's queue is measured in bytes: `desiredSize` is what the client may still leave unread.
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>(undefined, new ByteLengthQueuingStrategy({ highWaterMark: MAX_UNREAD_BYTES }));
    const client = writable.getWriter();
    this.clients.set(client, Date.now());
    // A client that goes away cancels its stream: its writer then errors, and the client is dropped.
    client.closed.catch(() => this.drop(client));
    this.send(client, encoder.encode(`event: ready\ndata: ${JSON.stringify({ environmentId })}\n\n`));
    try {
      await this.holdLease();
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + PING_INTERVAL_MS);
    } catch (error) {
      this.drop(client);
      throw error;
    }
    return new Response(readable, { headers: { "content-type": "text/event-stream; charset=utf-8" } });
  }

  /** The decisions of one flush, written to every open tail as `event: decision` messages. */
  async publish(summaries: DecisionSummary[]): Promise<void> {
    this.publishedBatches++;
    if (this.clients.size === 0 || summaries.length === 0) return;
    const chunk = encoder.encode(summaries.map((summary) => `event: decision\ndata: ${JSON.stringify(summary)}\n\n`).join(""));
    for (const client of this.clients.keys()) this.send(client, chunk);
  }

  /** Ends the tails open for their lifetime, pings the others and renews the lease while any is open; ends it once none is. */
  override async alarm(): Promise<void> {
    const ping = encoder.encode(": ping\n\n");
    const now = Date.now();
    for (const [client, openedAt] of this.clients) {
      if (now - openedAt >= this.tailLifetimeMs) this.expire(client);
      else this.send(client, ping);
    }
    if (this.clients.size === 0) return this.endLease();
    await this.ctx.storage.setAlarm(Date.now() + PING_INTERVAL_MS);
    await this.holdLease().catch((error: unknown) =>
      // The lease still has at least half its time: the next alarm renews it.
      console.warn(JSON.stringify({ event: "live_tail_lease_not_renewed", environmentId: this.environmentId, error: String(error) })),
    );
  }

  /** Open tails (for tests and operators reading the object). */
  get openTails(): number {
    return this.clients.size;
  }

  private send(client: Client, chunk: Uint8Array): void {
    if (!this.clients.has(client)) return;
    // Below zero: more than MAX_UNREAD_BYTES are waiting for this client.
    if (client.desiredSize !== null && client.desiredSize < 0) {
      this.drop(client);
      return;
    }
    client.write(chunk).catch(() => this.drop(client));
  }

  /** Ends a tail that has lived its time: a last `end` event, then the end of its stream (the client opens a new one). */
  private expire(client: Client): void {
    this.send(client, encoder.encode(`event: end\ndata: ${JSON.stringify({ reason: "expired" })}\n\n`));
    if (!this.clients.delete(client)) return; // dropped instead: it had too much unread
    client.close().catch(() => {});
  }

  private drop(client: Client): void {
    if (!this.clients.delete(client)) return;
    client.abort().catch(() => {});
    if (this.clients.size === 0) this.ctx.waitUntil(this.endLease());
  }

  /** Sets the lease when it is missing or half spent (one D1 write at most every LEASE_MS / 2). */
  private async holdLease(): Promise<void> {
    const now = Date.now();
    if (!this.environmentId) return;
    // Held already: a write of it may still be on its way (a concurrent open), and the caller relies on it being in D1.
    if (this.leaseUntil - now > LEASE_MS / 2) return this.leaseWrites;
    const until = now + LEASE_MS;
    this.leaseUntil = until;
    try {
      await this.writeLease(this.environmentId, until);
    } catch (error) {
      // Not held after all: the next open or alarm tries again.
      if (this.leaseUntil === until) this.leaseUntil = 0;
      throw error;
    }
  }

  private writeLease(environmentId: string, until: number | null): Promise<void> {
    const write = this.leaseWrites.then(() => setTailLease(this.env.DB, environmentId, until));
    this.leaseWrites = write.catch(() => {});
    return write;
  }

  private async endLease(): Promise<void> {
    if (!this.environmentId || this.leaseUntil === 0 || this.clients.size > 0) return;
    this.leaseUntil = 0;
    try {
      await this.writeLease(this.environmentId, null);
    } catch (error) {
      // The lease runs out by itself within LEASE_MS: isolates publish to an object without clients until then.
      console.warn(JSON.stringify({ event: "live_tail_lease_not_ended", environmentId: this.environmentId, error: String(error) }));
    }
  }
}
