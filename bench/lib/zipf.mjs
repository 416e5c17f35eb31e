/**
 * Seeded draws for scenario (g): a population of returning identities whose popularity follows Zipf's law, so a run
 * draws the same sequence every time (runs stay comparable) and a few identities take most of the traffic, as on a
 * real site.
 */

/** mulberry32: a small, fast 32-bit PRNG; good enough to pick identifiers, and seeded. */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sampler of ranks 0…n-1 with P(rank k) ∝ 1 / (k+1)^s. The cumulative distribution is computed once (n doubles);
 * each draw is a binary search in it.
 */
export function zipfSampler(n, s, random) {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s);
    cdf[k] = total;
  }
  for (let k = 0; k < n; k++) cdf[k] /= total;
  const draw = () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** The share of draws that land on the `top` most popular ranks. */
  const shareOfTop = (top) => cdf[Math.min(top, n) - 1];
  return { draw, shareOfTop };
}
