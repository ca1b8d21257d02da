/**
 * The job records alone (jobs/<jobId>), without their per-node records (jobs/<jobId>/nodes/...),
 * for readers that need only a job's kind and state: the metrics' jobs by kind and state. A
 * prefix read of jobs/ returns every node record of every kept job as well (one commission of
 * 10,000 nodes is 10,000 records, with their output), and etcd cannot leave keys out of a range.
 * So this walks the prefix one job at a time: each step is one transaction of two ranges with
 * limit 1, at the revision of the first step, that reads the next key after a job's record
 * while stepping over the range of its node records:
 *
 *   [job(id) + 0x00, jobNodesPrefix(id))   keys between the record and its node records;
 *   [end of jobNodesPrefix(id), end of jobs/)   the next job's record.
 *
 * A read is then one transaction per job (plus one), each returning one key: at most
 * `jobRetention` finished jobs are kept, however many nodes they ran on. Records are decoded
 * and skipped as the snapshot reader does (snapshot.ts): a bad one is counted, never fatal.
 */
import { Range, type Etcd3, type IKeyValue, type IRangeRequest } from 'etcd3';
import { errorMessage, type Keyspace } from '../../shared';
import { decodeJob, type JobRecord } from './job-record';

export interface JobRecordScan {
  /** The etcd revision every step read at. */
  revision: string;
  /** By job id, in key order. */
  jobs: Map<string, JobRecord>;
  /** By job id: the mod and create revisions of each job record in `jobs` (CAS, creation order). */
  revisions: Map<string, { modRevision: string; createRevision: string }>;
  /** The key/values of the `alongside` prefixes, read in the first step (same revision). */
  alongside: IKeyValue[][];
  /** Keys under jobs/ that are not a readable job record, with why. */
  skipped: { key: string; reason: string }[];
}

function rangeOf(start: Buffer, end: Buffer, revision: string | undefined): { request_range: IRangeRequest } {
  return { request_range: { key: start, range_end: end, limit: 1, ...(revision ? { revision } : {}) } };
}

/** A prefix read whole beside the scan; `keysOnly`: its keys without their values. */
export type AlongsidePrefix = string | { prefix: string; keysOnly?: boolean };

/**
 * Every job record under jobs/ at one revision; `alongside` prefixes (e.g. nodes/) are read whole
 * in the first transaction, so the caller gets them at the same revision.
 */
export async function scanJobRecords(client: Etcd3, ks: Keyspace, alongside: readonly AlongsidePrefix[] = []): Promise<JobRecordScan> {
  const all = Range.prefix(ks.jobsPrefix());
  const first = await client.kv.txn({
    compare: [],
    success: [
      ...alongside.map((a) => {
        const r = Range.prefix(typeof a === 'string' ? a : a.prefix);
        return { request_range: { key: r.start, range_end: r.end, keys_only: typeof a !== 'string' && a.keysOnly === true } };
      }),
      rangeOf(all.start, all.end, undefined),
    ],
    failure: [],
  });
  const revision = first.header.revision;
  const out: JobRecordScan = {
    revision,
    jobs: new Map(),
    revisions: new Map(),
    alongside: first.responses.slice(0, alongside.length).map((r) => r.response_range?.kvs ?? []),
    skipped: [],
  };
  /** Job ids whose record key was seen (readable or not). */
  const seen = new Set<string>();
  let found: IKeyValue | undefined = first.responses[alongside.length]?.response_range?.kvs?.[0];
  while (found) {
    const key = found.key.toString();
    const parsed = ks.parseJobKey(key);
    let ranges: { request_range: IRangeRequest }[];
    if (parsed?.nodeId !== undefined) {
      // Node records of a job whose id extends another's (j-1-2 sorts between j-1 and
      // j-1/nodes/), or whose job record is missing: step over the rest of them.
      if (!seen.has(parsed.jobId)) out.skipped.push({ key, reason: 'a job node record without its job record' });
      ranges = [rangeOf(Range.prefix(ks.jobNodesPrefix(parsed.jobId)).end, all.end, revision)];
    } else if (parsed) {
      seen.add(parsed.jobId);
      try {
        const job = decodeJob(key, found.value.toString());
        if (job.id === parsed.jobId) {
          out.jobs.set(job.id, job);
          out.revisions.set(job.id, { modRevision: found.mod_revision, createRevision: found.create_revision });
        }
        else out.skipped.push({ key, reason: `record of job ${job.id} under the key of ${parsed.jobId}` });
      } catch (err) {
        out.skipped.push({ key, reason: errorMessage(err) });
      }
      const nodes = Range.prefix(ks.jobNodesPrefix(parsed.jobId));
      ranges = [rangeOf(Buffer.concat([found.key, Buffer.from([0])]), nodes.start, revision), rangeOf(nodes.end, all.end, revision)];
    } else {
      out.skipped.push({ key, reason: 'not a job key' });
      ranges = [rangeOf(Buffer.concat([found.key, Buffer.from([0])]), all.end, revision)];
    }
    const step = await client.kv.txn({ compare: [], success: ranges, failure: [] });
    found = step.responses.map((r) => r.response_range?.kvs?.[0]).find((kv): kv is IKeyValue => kv !== undefined);
  }
  return out;
}
