/**
 * One etcd transaction: guards ("compares"), writes, and — when a guard fails — an
 * explanation of WHICH guard failed. etcd only answers "succeeded: false"; to tell a lost
 * compare-and-swap (re-read and retry) from a lost fence (stop: we are not the leader) from a
 * moved event counter (refresh and retry), the failure branch reads every guarded key and the
 * guards are re-evaluated here against what it returned, at the same revision.
 *
 * We use the raw KV RPC rather than etcd3's ComparatorBuilder because the builder cannot run a
 * transaction with zero compares and hides the failure branch's responses behind its own types.
 */
import { checkDeadline } from './request-binding';
import { Range, type Etcd3, type IKeyValue, type IRequestOp, type ITxnRequest, type ITxnResponse, type ICompare } from 'etcd3';
import { FailedPreconditionError } from '../shared';
import { ResourceExhaustedError } from '../shared/errors';
import { isEtcdFull } from '../shared/etcd';

/**
 * etcd refused a transaction for its size: more compares, writes or reads than its
 * `--max-txn-ops`, or more bytes than its `--max-request-bytes`. The coordinator keeps within
 * the limits it was given (`--etcd-max-txn-ops`, `--etcd-max-request-bytes`), so the message
 * names the flag that disagrees with etcd. A group committer splits on it (txn-batch.ts
 * isTooLarge); what cannot be split reaches the caller with this message.
 */
export class EtcdLimitError extends FailedPreconditionError {
  constructor(readonly limit: 'ops' | 'bytes', message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * etcd takes no writes: its database reached its `--quota-backend-bytes` (the NOSPACE alarm).
 * Not split by the group committers (a smaller transaction is refused the same), not tried on
 * another endpoint (shared/etcd.ts isRetriedOnAnotherEndpoint: every member refuses alike).
 */
export class EtcdSpaceError extends ResourceExhaustedError {
  override readonly retryable = false;
}

/** The message for a write refused by etcd's NOSPACE alarm: what it means and what to do. */
export const ETCD_SPACE_MESSAGE = 'etcd refused the write: its database is full (over its --quota-backend-bytes, alarm NOSPACE), and it takes no writes ' +
  'until space is freed: compact and defragment it (etcdctl compact REVISION; etcdctl defrag --cluster) and clear the alarm (etcdctl alarm disarm), ' +
  'or raise --quota-backend-bytes (and the coordinator\'s etcdQuotaBytes); `clusterctl status` shows the database size against the quota';

/** Approximate bytes of a request: its keys and values (what etcd's limit is mostly spent on). */
function requestBytes(req: ITxnRequest): number {
  const len = (b: Buffer | string | undefined): number => (b === undefined ? 0 : Buffer.byteLength(b));
  let n = 0;
  for (const c of req.compare ?? []) n += len(c.key) + len(c.value) + len(c.range_end);
  for (const op of [...(req.success ?? []), ...(req.failure ?? [])]) {
    const one = op.request_put ?? op.request_range ?? op.request_delete_range;
    n += len(one?.key) + len(op.request_put?.value) + len(op.request_range?.range_end ?? op.request_delete_range?.range_end);
  }
  return n;
}

/**
 * etcd's refusal of `req` for its size as an EtcdLimitError naming the coordinator flag to set
 * (etcd's messages: rpctypes ErrGRPCTooManyOps, ErrGRPCRequestTooLarge, and gRPC's "received
 * message larger than max" past etcd's receive limit, --max-request-bytes plus 512 KiB), and its
 * refusal of any write once its database is full as an EtcdSpaceError; other errors unchanged.
 */
export function etcdLimitError(err: unknown, req: ITxnRequest): unknown {
  const text = err instanceof Error ? err.message : String(err);
  if (/too many operations in txn request/i.test(text)) {
    const ops = Math.max(req.compare?.length ?? 0, req.success?.length ?? 0, req.failure?.length ?? 0);
    return new EtcdLimitError('ops', `etcd refused a transaction of ${ops} operations (over its --max-txn-ops): ` +
      'start the coordinator with --etcd-max-txn-ops equal to etcd\'s --max-txn-ops; if it already is, this request cannot be split: make it smaller', { cause: err });
  }
  // etcd's NOSPACE is a RESOURCE_EXHAUSTED too, but no size of request helps it.
  if (isEtcdFull(err)) return new EtcdSpaceError(ETCD_SPACE_MESSAGE, { cause: err });
  if (/request is too large|message larger than max/i.test(text)) {
    return new EtcdLimitError('bytes', `etcd refused a request of about ${requestBytes(req)} bytes (over its --max-request-bytes): ` +
      'start the coordinator with --etcd-max-request-bytes equal to etcd\'s --max-request-bytes, or raise both; if they are equal, this request cannot be split: make it smaller', { cause: err });
  }
  return err;
}

/** One transaction; etcd's refusal for its size becomes an EtcdLimitError. */
async function txn(client: Etcd3, req: ITxnRequest): Promise<ITxnResponse> {
  try {
    return await client.kv.txn(req);
  } catch (err) {
    throw etcdLimitError(err, req);
  }
}

export type CompareTarget = 'Create' | 'Mod' | 'Version' | 'Value';
export type CompareOp = '==' | '!=' | '<' | '>';

/** A guard on one key. `reason` names it in explanations ("fence", "cas", "event-seq"). */
export interface Compare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  /** Revisions and versions as decimal text (etcd's int64), values as text. */
  value: string;
  reason: string;
}

export type TxnOp =
  // Buffer: bytes stored as given (distributed files); text is stored as UTF-8.
  | { kind: 'put'; key: string; value: string | Buffer; lease?: string }
  | { kind: 'delete'; key: string }
  | { kind: 'delete-range'; from: string; to: string };

export interface KeyState {
  createRevision: string;
  modRevision: string;
  version: string;
  value: string;
}

export type TxnOutcome =
  | { succeeded: true; revision: string; response: ITxnResponse }
  | {
      succeeded: false;
      revision: string;
      /** The guards that did not hold. */
      failed: Compare[];
      /** What each guarded key held when the transaction ran (absent keys are missing). */
      current: Map<string, KeyState>;
    };

const RESULT: Record<CompareOp, ICompare['result']> = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' };

function toCompare(c: Compare): ICompare {
  const key = Buffer.from(c.key);
  switch (c.target) {
    case 'Create': return { key, target: 'Create', result: RESULT[c.op], create_revision: c.value };
    case 'Mod': return { key, target: 'Mod', result: RESULT[c.op], mod_revision: c.value };
    case 'Version': return { key, target: 'Version', result: RESULT[c.op], version: c.value };
    case 'Value': return { key, target: 'Value', result: RESULT[c.op], value: Buffer.from(c.value) };
  }
}

function toOp(op: TxnOp): IRequestOp {
  switch (op.kind) {
    case 'put': return { request_put: { key: Buffer.from(op.key), value: typeof op.value === 'string' ? Buffer.from(op.value) : op.value, ...(op.lease ? { lease: op.lease } : {}) } };
    case 'delete': return { request_delete_range: { key: Buffer.from(op.key) } };
    case 'delete-range': return { request_delete_range: { key: Buffer.from(op.from), range_end: Buffer.from(op.to) } };
  }
}

export function keyState(kv: IKeyValue): KeyState {
  return { createRevision: kv.create_revision, modRevision: kv.mod_revision, version: kv.version, value: kv.value.toString() };
}

function cmp(actual: bigint | string, op: CompareOp, expected: bigint | string): boolean {
  switch (op) {
    case '==': return actual === expected;
    case '!=': return actual !== expected;
    case '<': return actual < expected;
    case '>': return actual > expected;
  }
}

/** Whether `c` holds for a key in `state` (undefined = absent: etcd compares zero values). */
export function holds(c: Compare, state: KeyState | undefined): boolean {
  if (c.target === 'Value') return state !== undefined && cmp(state.value, c.op, c.value);
  const field = c.target === 'Create' ? state?.createRevision : c.target === 'Mod' ? state?.modRevision : state?.version;
  return cmp(BigInt(field ?? '0'), c.op, BigInt(c.value));
}

/** Runs one transaction; never throws for a failed guard, only for etcd errors. */
export async function runTxn(client: Etcd3, compares: readonly Compare[], ops: readonly TxnOp[]): Promise<TxnOutcome> {
  // Not after the deadline of the request this write is for (request-binding.ts).
  if (ops.length > 0) checkDeadline('the etcd transaction');
  const guarded = [...new Set(compares.map((c) => c.key))];
  const response = await txn(client, {
    compare: compares.map(toCompare),
    success: ops.map(toOp),
    failure: guarded.map((key) => ({ request_range: { key: Buffer.from(key) } })),
  });
  const revision = response.header.revision;
  if (response.succeeded) return { succeeded: true, revision, response };
  const current = new Map<string, KeyState>();
  for (const r of response.responses) {
    for (const kv of r.response_range?.kvs ?? []) current.set(kv.key.toString(), keyState(kv));
  }
  const failed = compares.filter((c) => !holds(c, current.get(c.key)));
  return { succeeded: false, revision, failed, current };
}

/** Reads several prefixes at ONE revision (a snapshot), e.g. members, facts and nodes. */
export async function readPrefixes(
  client: Etcd3,
  prefixes: readonly { prefix: string; keysOnly?: boolean }[],
): Promise<{ revision: string; kvs: IKeyValue[][] }> {
  const response = await txn(client, {
    compare: [],
    success: prefixes.map(({ prefix, keysOnly }) => {
      const range = Range.prefix(prefix);
      return { request_range: { key: range.start, range_end: range.end, keys_only: keysOnly === true } };
    }),
    failure: [],
  });
  return { revision: response.header.revision, kvs: response.responses.map((r) => r.response_range?.kvs ?? []) };
}

/** Reads single keys at one revision; missing keys are undefined. */
export async function readKeys(client: Etcd3, keys: readonly string[]): Promise<{ revision: string; kvs: (IKeyValue | undefined)[] }> {
  const response = await txn(client, {
    compare: [],
    success: keys.map((key) => ({ request_range: { key: Buffer.from(key) } })),
    failure: [],
  });
  return { revision: response.header.revision, kvs: response.responses.map((r) => r.response_range?.kvs?.[0]) };
}

/**
 * The values at `keys` (`kvs[i]` is `keys[i]`'s, undefined when absent), `chunk` keys per
 * read-only transaction (etcd's `--max-txn-ops` bounds one), the chunks read concurrently.
 */
export async function readKeysChunked(client: Etcd3, keys: readonly string[], chunk: number): Promise<(IKeyValue | undefined)[]> {
  const parts: Promise<(IKeyValue | undefined)[]>[] = [];
  for (let i = 0; i < keys.length; i += chunk) parts.push(readKeys(client, keys.slice(i, i + chunk)).then((r) => r.kvs));
  return (await Promise.all(parts)).flat();
}

/** The record at `key`, decoded, with the revision a compare-and-swap needs; undefined when absent. */
export async function readRecord<R>(client: Etcd3, key: string, decode: (key: string, text: string) => R): Promise<{ record: R; modRevision: string } | undefined> {
  const { kvs } = await readKeys(client, [key]);
  const kv = kvs[0];
  return kv ? { record: decode(key, kv.value.toString()), modRevision: kv.mod_revision } : undefined;
}
