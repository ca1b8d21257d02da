/**
 * Node claims, the pure part (tested by table). A node belongs to at most one running job
 * (DESIGN.md; Contiv #104): `currentJob` on its record, set with compare-and-swap. etcd caps a
 * transaction's compares and its writes at 128 each by default (--max-txn-ops) and its size
 * (--max-request-bytes), so claims go in chunks as large as those allow, several in flight;
 * when any chunk loses its CAS, every chunk that committed is released again, so a refused job
 * changes nothing.
 */
import type { TxnLimits } from '../txn-batch';

/**
 * Claim transactions in flight at once. They touch disjoint nodes, so their order does not
 * matter; at 10,000 nodes one at a time (50 nodes each) was 200 round trips, 9.4 s of StartJob
 * on a loaded 2-core box.
 */
export const CLAIM_CONCURRENCY = 4;

/**
 * Items in order, cut into chunks that fit one transaction: at most `limits.maxOps - reserved`
 * items (each is one compare and one write; `reserved` compares are the caller's own, e.g. the
 * leader fence) and at most `limits.maxBytes` of `bytesOf`. An item larger than the byte limit
 * goes alone (etcd then refuses it, and says so).
 */
export function chunkToLimits<T>(items: readonly T[], bytesOf: (item: T) => number, limits: TxnLimits, reserved = 1): T[][] {
  const most = Math.max(1, limits.maxOps - reserved);
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const b = bytesOf(item);
    if (cur.length > 0 && (cur.length >= most || bytes + b > limits.maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(item);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export interface ClaimView {
  id: string;
  currentJob?: string;
}

/** A node's existing claim is stale when its job is gone or finished: it may be taken over. */
export type JobLiveness = (jobId: string) => 'active' | 'finished' | 'missing';

/** The nodes held by another live job, with that job's id; empty = every node may be claimed. */
export function claimConflicts(nodes: readonly ClaimView[], jobId: string, liveness: JobLiveness): { nodeId: string; jobId: string }[] {
  const out: { nodeId: string; jobId: string }[] = [];
  for (const n of nodes) {
    if (!n.currentJob || n.currentJob === jobId) continue;
    if (liveness(n.currentJob) === 'active') out.push({ nodeId: n.id, jobId: n.currentJob });
  }
  return out;
}
