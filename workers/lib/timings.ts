/** Per-stage durations of one request, reported in the `Server-Timing` header. */
export class Timings {
  private readonly stages: [string, number][] = [];
  private last = performance.now();

  /** Records the time since the previous mark (or since creation) under `stage`. */
  mark(stage: string): void {
    const now = performance.now();
    this.stages.push([stage, now - this.last]);
    this.last = now;
  }

  toRecord(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [stage, ms] of this.stages) out[stage] = Math.round((out[stage] ?? 0) * 1000 + ms * 1000) / 1000;
    return out;
  }

  header(): string {
    return this.stages.map(([stage, ms]) => `${stage};dur=${ms.toFixed(2)}`).join(", ");
  }
}
