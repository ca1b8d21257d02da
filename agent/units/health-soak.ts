/**
 * The soak of a health-gated apply (issue 15 §2, shared/health-gate.ts): after the units
 * converged, every probe (the bundle's verify probes and the job's extra ones) must pass in
 * every round: the first right after the apply (each probe retried within its timeout, as the
 * apply's own probes are), then one every interval until the soak time has passed, and one at
 * its end. The first failing probe ends the soak: the node is not healthy on this version.
 */
import type { VerifyProbe } from '../../shared/bundle/types';
import { runProbe, type ProbeResult } from './verify-probes';
import type { UnitContext } from './unit';

/** When the rounds start, in ms after the apply ended: 0, interval, 2×interval, ..., soak. Pure. */
export function soakRoundOffsets(soakMs: number, intervalMs: number): number[] {
  const out = [0];
  if (soakMs <= 0) return out;
  const step = Math.max(1, intervalMs);
  for (let t = step; t < soakMs; t += step) out.push(t);
  out.push(soakMs);
  return out;
}

export interface SoakResult {
  ok: boolean;
  /** Rounds run (a failed one included). */
  rounds: number;
  /** The last round's results (the failing round's when not ok). */
  probes: ProbeResult[];
  /** The first failing probe and when (ms after the apply). */
  failure?: { probe: ProbeResult; atMs: number };
  cancelled: boolean;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) { resolve(); return; }
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runHealthSoak(
  probes: readonly VerifyProbe[],
  ctx: UnitContext,
  gate: { soakMs: number; intervalMs: number },
  now: () => number = Date.now,
): Promise<SoakResult> {
  const started = now();
  const offsets = soakRoundOffsets(gate.soakMs, gate.intervalMs);
  let last: ProbeResult[] = [];
  for (let round = 0; round < offsets.length; round++) {
    await sleep(started + offsets[round] - now(), ctx.signal);
    if (ctx.signal.aborted) return { ok: false, rounds: round, probes: last, cancelled: true };
    last = [];
    for (const probe of probes) {
      const r = await runProbe(probe, ctx, { retry: round === 0 });
      last.push(r);
      if (ctx.signal.aborted) return { ok: false, rounds: round + 1, probes: last, cancelled: true };
      if (!r.ok) return { ok: false, rounds: round + 1, probes: last, failure: { probe: r, atMs: now() - started }, cancelled: false };
    }
  }
  return { ok: true, rounds: offsets.length, probes: last, cancelled: false };
}
