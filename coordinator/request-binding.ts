/**
 * Every write bound to the request that asked for it. A unary handler runs inside the binding
 * of its call (unary-handler.ts): the earlier of the call's gRPC deadline and the wall-clock
 * deadline of its `x-request-deadline` header (shared/request-headers.ts says why both), and
 * the idempotency key of its `x-idempotency-key` header. `runTxn` (etcd-txn.ts), the one path
 * by which the coordinator writes to etcd, refuses to send a transaction once the deadline has
 * passed: a replica that was frozen (SIGSTOP, a long GC, a paused VM) past its client's deadline
 * must not commit a write the client has already reported as failed, or an operator who retries
 * runs the command twice. etcd cannot compare against a clock, so the check is made in the last
 * step before the transaction leaves; what remains is the time one `await` takes.
 *
 * Work outside a call (the leader's loops) has no binding and is never refused here.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { DeadlineExceededError, InvalidArgumentError } from '../shared/errors';
import { DEADLINE_HEADER, IDEMPOTENCY_HEADER } from '../shared/request-headers';

export { IDEMPOTENCY_HEADER, DEADLINE_HEADER };

/** An idempotency key: what a client may send (a UUID fits, with room for a suffix). */
const KEY = /^[A-Za-z0-9._:-]{8,128}$/;

export interface RequestBinding {
  /** The method, for messages. */
  method: string;
  /** Epoch ms after which nothing is committed for this request; Infinity without a deadline. */
  deadlineMs: number;
  idempotencyKey?: string;
}

const current = new AsyncLocalStorage<RequestBinding>();

interface BindableCall {
  getDeadline(): grpc.Deadline;
  getPath(): string;
  metadata: grpc.Metadata;
}

/** The binding of a call: its deadline and its idempotency key (INVALID_ARGUMENT when malformed). */
export function bindingOf(call: BindableCall): RequestBinding {
  const d = call.getDeadline();
  let deadlineMs = d instanceof Date ? d.getTime() : d;
  const sent = call.metadata.get(DEADLINE_HEADER);
  if (sent.length > 0) {
    const v = sent[0];
    if (sent.length > 1 || typeof v !== 'string' || !/^\d{1,15}$/.test(v)) {
      throw new InvalidArgumentError(`the ${DEADLINE_HEADER} header must be one time in epoch milliseconds`);
    }
    deadlineMs = Math.min(deadlineMs, Number(v));
  }
  const values = call.metadata.get(IDEMPOTENCY_HEADER);
  let idempotencyKey: string | undefined;
  if (values.length > 0) {
    const v = values[0];
    if (values.length > 1 || typeof v !== 'string' || !KEY.test(v)) {
      throw new InvalidArgumentError(`the ${IDEMPOTENCY_HEADER} header must be one value of 8-128 characters from A-Z a-z 0-9 . _ : -`);
    }
    idempotencyKey = v;
  }
  return { method: call.getPath(), deadlineMs: Number.isFinite(deadlineMs) ? deadlineMs : Infinity, ...(idempotencyKey ? { idempotencyKey } : {}) };
}

export function runBound<T>(binding: RequestBinding, fn: () => T): T {
  return current.run(binding, fn);
}

/** The binding of the call this code runs for, if any. */
export function currentBinding(): RequestBinding | undefined {
  return current.getStore();
}

/**
 * Runs `fn` outside any call's binding: for undoing this request's own partial writes (a
 * rollback must still land after the deadline, or a claim would be left behind).
 */
export function unbound<T>(fn: () => T): T {
  return current.exit(fn);
}

/** Throws DeadlineExceededError when the request this code runs for is past its deadline. */
export function checkDeadline(what: string, now: number = Date.now()): void {
  const err = deadlineError(current.getStore(), what, now);
  if (err) throw err;
}

/**
 * The error for `binding` when its deadline has passed (undefined otherwise). Group-committed
 * writes (event-log.ts, txn-batch.ts) keep each writer's binding and check it themselves: their
 * shared transaction runs unbound, so one writer's expired request never refuses the others'.
 */
export function deadlineError(binding: RequestBinding | undefined, what: string, now: number = Date.now()): DeadlineExceededError | undefined {
  if (!binding || now < binding.deadlineMs) return undefined;
  return new DeadlineExceededError(`${binding.method}: the request's deadline passed ${now - binding.deadlineMs} ms before ${what}; nothing was committed`);
}

/** The etcd key digest of an idempotency key: per caller, so two users' keys never meet. */
export function idempotencyDigest(actor: string, key: string): string {
  return createHash('sha256').update(`${actor}\n${key}`).digest('hex');
}
