/**
 * Job batching, a pure function tested by table: which nodes go together, in what order.
 * all-at-once = one batch; rolling = batches of `size` nodes or of a percentage of the job's
 * nodes (rounded up, at least 1), in the order given (callers sort by node id for stability).
 */
import { InvalidArgumentError } from '../../shared';

export type BatchSize = { kind: 'count'; value: number } | { kind: 'percent'; value: number };

export interface Strategy {
  type: 'all-at-once' | 'rolling';
  batch: BatchSize;
  /** Failed nodes tolerated; one more stops the job. */
  maxFailures: number;
}

/** Parses "3" or "25%". */
export function parseBatchSize(text: string): BatchSize {
  const t = text.trim();
  let m: RegExpExecArray | null;
  if ((m = /^(\d+)%$/.exec(t))) {
    const value = Number(m[1]);
    if (value < 1 || value > 100) throw new InvalidArgumentError(`batch ${JSON.stringify(text)}: a percentage must be between 1% and 100%`);
    return { kind: 'percent', value };
  }
  if ((m = /^(\d+)$/.exec(t))) {
    const value = Number(m[1]);
    if (value < 1) throw new InvalidArgumentError(`batch ${JSON.stringify(text)}: must be at least 1`);
    return { kind: 'count', value };
  }
  throw new InvalidArgumentError(`batch ${JSON.stringify(text)}: use a node count like 2 or a percentage like 25%`);
}

export function formatBatchSize(b: BatchSize): string {
  return b.kind === 'percent' ? `${b.value}%` : String(b.value);
}

export function batchLength(total: number, batch: BatchSize): number {
  if (total === 0) return 0;
  const n = batch.kind === 'count' ? batch.value : Math.ceil((total * batch.value) / 100);
  return Math.max(1, Math.min(total, n));
}

export function planBatches(nodeIds: readonly string[], strategy: Pick<Strategy, 'type' | 'batch'>): string[][] {
  if (nodeIds.length === 0) return [];
  if (strategy.type === 'all-at-once') return [[...nodeIds]];
  const len = batchLength(nodeIds.length, strategy.batch);
  const out: string[][] = [];
  for (let i = 0; i < nodeIds.length; i += len) out.push(nodeIds.slice(i, i + len));
  return out;
}

/**
 * --canary N: the first N nodes are a batch of their own, the rest are batched as the strategy
 * says. The caller has checked 0 < canary < nodeIds.length.
 */
export function planCanaryBatches(nodeIds: readonly string[], canary: number, strategy: Pick<Strategy, 'type' | 'batch'>): string[][] {
  if (canary <= 0 || canary >= nodeIds.length) return planBatches(nodeIds, strategy);
  return [nodeIds.slice(0, canary), ...planBatches(nodeIds.slice(canary), strategy)];
}

/** Whether a job with `failed` failures must stop (strictly more than maxFailures). */
export function thresholdExceeded(failed: number, maxFailures: number): boolean {
  return failed > maxFailures;
}
