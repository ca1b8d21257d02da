/**
 * Node claims, the pure part (tested by table). A node belongs to at most one running job
 * (DESIGN.md; Contiv #104): `currentJob` on its record, set with compare-and-swap. etcd caps a
 * transaction at 128 operations by default (--max-txn-ops), so claims go in chunks; when a later
 * chunk loses its CAS the earlier chunks are released again, so a refused job changes nothing.
 */

/** Nodes per claim transaction: each node is one compare and one put, well under 128. */
export const CLAIM_CHUNK = 50;

export function chunk<T>(items: readonly T[], size: number = CLAIM_CHUNK): T[][] {
  if (size < 1) throw new RangeError('chunk size must be at least 1');
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
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

/**
 * After chunk `failedIndex` lost, which nodes must be released: every node of the chunks
 * before it (those transactions committed). The failed chunk wrote nothing (one txn).
 */
export function rollbackSet<T>(chunks: readonly (readonly T[])[], failedIndex: number): T[] {
  return chunks.slice(0, Math.max(0, failedIndex)).flat();
}
