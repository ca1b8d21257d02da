/**
 * Group commit: the independent transactions of many writers packed into ONE etcd
 * transaction. A fan-out to 10,000 nodes is ~4 writes per node; one round trip each through
 * the serialized event counter is ~10 ms, so 10,000 nodes took ~95 s. Packing them amortises
 * the round trip and the raft proposal over up to etcd's `--max-txn-ops` operations.
 *
 * Correctness stays per part: every part keeps its own guards (CAS, leader fence), the packed
 * transaction carries all of them, and when it fails each part's guards are re-evaluated
 * against what the failure branch read (etcd-txn.ts `holds`), so the part whose guard failed
 * is told which, and the parts whose guards held are simply run again.
 *
 * etcd refuses a transaction that writes one key twice, and a part that reads (compares) a key
 * another part writes would see the state before that write, which is not what it was decided
 * on. So a part that touches a key of an earlier part waits for the next transaction, and so do
 * later parts touching ITS keys (per-key order is the order of submission).
 */
import { EtcdLimitError, holds, type Compare, type KeyState, type TxnOp } from './etcd-txn';
import { unbound } from './request-binding';

/** What one transaction may hold. etcd's defaults: `--max-txn-ops` 128, `--max-request-bytes` 1.5 MiB. */
export interface TxnLimits {
  /** Most compares, most success ops and most failure reads of one transaction. */
  maxOps: number;
  /** Most bytes of keys and values written by one transaction. */
  maxBytes: number;
}

/** One writer's transaction. */
export interface TxnPart {
  compares: readonly Compare[];
  ops: readonly TxnOp[];
}

/**
 * How many queued parts (times the transaction's op limit) a packer looks at for one
 * transaction: from the front of its queue only, with room to step over parts that touch a key
 * already taken. Looking at the whole queue for each transaction made a fan-out quadratic.
 */
export const PACK_WINDOW_FACTOR = 4;

/** Room a packer keeps for its own guards and writes (the event counter). */
export interface Reserved {
  compares: number;
  ops: number;
  bytes: number;
}

function compareId(c: Compare): string {
  return `${c.key}\u0000${c.target}\u0000${c.op}\u0000${c.value}`;
}

function opBytes(op: TxnOp): number {
  switch (op.kind) {
    case 'put': return op.key.length + (typeof op.value === 'string' ? Buffer.byteLength(op.value) : op.value.length);
    case 'delete': return op.key.length;
    case 'delete-range': return op.from.length + op.to.length;
  }
}

/** Bytes a part adds to a transaction (its writes and its own extra bytes, e.g. its event). */
export function partBytes(part: TxnPart, extra = 0): number {
  return part.ops.reduce((n, op) => n + opBytes(op), extra);
}

/**
 * Which parts (indices, in order) go into the next transaction: as many as fit from the front,
 * skipping (and blocking the keys of) parts that touch a key of a part already taken. A part
 * alone is always taken, even if larger than the limits (etcd then refuses it, as before).
 * `opsPerPart` counts writes a packer adds per part (its event, its history); `cap` bounds the part count.
 */
export function packBatch(parts: readonly TxnPart[], limits: TxnLimits, reserved: Reserved, opsPerPart: number | ((i: number) => number) = 0, bytesOf: (i: number) => number = (i) => partBytes(parts[i]), cap = Infinity): number[] {
  const taken: number[] = [];
  const written = new Set<string>();
  const compared = new Set<string>();
  const blocked = new Set<string>();
  const compareIds = new Set<string>();
  let ops = reserved.ops;
  let bytes = reserved.bytes;
  for (let i = 0; i < parts.length && taken.length < cap; i++) {
    const part = parts[i];
    // A range delete's keys are unknown here: it runs alone, and nothing passes it.
    if (part.ops.some((op) => op.kind === 'delete-range')) {
      if (taken.length === 0) taken.push(i);
      break;
    }
    const opKeys = part.ops.map((op) => (op.kind === 'delete-range' ? op.from : op.key));
    const cmpKeys = part.compares.map((c) => c.key);
    const conflict = opKeys.some((k) => written.has(k) || compared.has(k) || blocked.has(k)) || cmpKeys.some((k) => written.has(k) || blocked.has(k));
    if (conflict) {
      for (const k of [...opKeys, ...cmpKeys]) blocked.add(k);
      continue;
    }
    const newCompares = part.compares.filter((c) => !compareIds.has(compareId(c)));
    const newCompareIds = new Set(newCompares.map(compareId));
    const guardedKeys = new Set([...compared, ...cmpKeys]);
    const addOps = part.ops.length + (typeof opsPerPart === 'number' ? opsPerPart : opsPerPart(i));
    const addBytes = bytesOf(i);
    const fits = compareIds.size + newCompareIds.size + reserved.compares <= limits.maxOps
      && guardedKeys.size + reserved.compares <= limits.maxOps
      && ops + addOps <= limits.maxOps
      && bytes + addBytes <= limits.maxBytes;
    if (!fits && taken.length > 0) break;
    taken.push(i);
    for (const id of newCompareIds) compareIds.add(id);
    for (const k of opKeys) written.add(k);
    for (const k of cmpKeys) compared.add(k);
    ops += addOps;
    bytes += addBytes;
  }
  return taken;
}

/** The parts' guards as one list, each distinct guard once (the leader fence is in every part). */
export function mergedCompares(parts: readonly TxnPart[]): Compare[] {
  const seen = new Map<string, Compare>();
  for (const p of parts) for (const c of p.compares) if (!seen.has(compareId(c))) seen.set(compareId(c), c);
  return [...seen.values()];
}

/** The part's own guards that did not hold in what a failed transaction read (the part's own objects). */
export function failedGuards(part: TxnPart, current: ReadonlyMap<string, KeyState>): Compare[] {
  return part.compares.filter((c) => !holds(c, current.get(c.key)));
}

/**
 * Whether etcd refused a transaction for its size (too many ops, too large a request): split it.
 * Not any RESOURCE_EXHAUSTED: a full database (NOSPACE) refuses every size, and splitting a batch
 * on it only multiplied the refused transactions.
 */
export function isTooLarge(err: unknown): boolean {
  if (err instanceof EtcdLimitError) return true;
  const text = err instanceof Error ? err.message : String(err);
  return /too many operations|request is too large|message larger than max/i.test(text);
}

interface QueuedPut {
  key: string;
  value: string;
  compares: readonly Compare[];
  waiters: { resolve(): void; reject(err: unknown): void }[];
}

/**
 * Plain guarded puts (a job's per-node records), group-committed: puts issued while a
 * transaction is in flight go out together in the next one, and a second put of a key that
 * has not been sent yet replaces the first (progress is coalesced, only the latest is
 * written). `guardFailed` turns a failed guard (the leader fence) into the error every
 * waiter of that put gets; a put whose guards held in a failed transaction is sent again.
 */
export class PutBatcher {
  private pending = new Map<string, QueuedPut>();
  private draining?: Promise<void>;
  private cap = Infinity;

  constructor(
    private readonly run: (compares: readonly Compare[], ops: readonly TxnOp[]) => Promise<{ succeeded: true } | { succeeded: false; current: Map<string, KeyState> }>,
    private readonly limits: TxnLimits,
    private readonly guardFailed: (failed: Compare[]) => Error,
  ) {}

  put(key: string, value: string, compares: readonly Compare[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const queued = this.pending.get(key);
      if (queued) {
        queued.value = value;
        queued.compares = compares;
        queued.waiters.push({ resolve, reject });
      } else {
        this.pending.set(key, { key, value, compares, waiters: [{ resolve, reject }] });
      }
      this.kick();
    });
  }

  /** Starts the drain loop unless it runs; a put queued as it ended starts it again. */
  private kick(): void {
    if (this.draining) return;
    // Shared by every queued put: not run in the binding of the request that started it.
    this.draining = unbound(() => this.drain()).finally(() => {
      this.draining = undefined;
      if (this.pending.size > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.size > 0) {
      // From the front of the queue only (PACK_WINDOW_FACTOR).
      const all: QueuedPut[] = [];
      for (const q of this.pending.values()) {
        all.push(q);
        if (all.length >= PACK_WINDOW_FACTOR * this.limits.maxOps) break;
      }
      const parts: TxnPart[] = all.map((q) => ({ compares: q.compares, ops: [{ kind: 'put', key: q.key, value: q.value }] }));
      const batch = packBatch(parts, this.limits, { compares: 0, ops: 0, bytes: 0 }, 0, undefined, this.cap).map((i) => all[i]);
      for (const q of batch) this.pending.delete(q.key);
      const settleAll = (q: QueuedPut, err?: unknown): void => { for (const w of q.waiters) if (err === undefined) w.resolve(); else w.reject(err); };
      const requeue = (q: QueuedPut): void => {
        // A newer put of the same key queued meanwhile wins; its waiters include ours.
        const newer = this.pending.get(q.key);
        if (newer) newer.waiters.unshift(...q.waiters); else this.pending.set(q.key, q);
      };
      try {
        const outcome = await this.run(mergedCompares(batch.map((q) => ({ compares: q.compares, ops: [] }))), batch.map((q) => ({ kind: 'put', key: q.key, value: q.value })));
        this.cap = Infinity;
        if (outcome.succeeded) { for (const q of batch) settleAll(q); continue; }
        for (const q of batch) {
          const failed = failedGuards({ compares: q.compares, ops: [] }, outcome.current);
          if (failed.length > 0) settleAll(q, this.guardFailed(failed)); else requeue(q);
        }
      } catch (err) {
        if (batch.length > 1 && isTooLarge(err)) {
          this.cap = Math.max(1, Math.floor(batch.length / 2));
          for (const q of batch) requeue(q);
          continue;
        }
        for (const q of batch) settleAll(q, err);
      }
    }
  }
}
