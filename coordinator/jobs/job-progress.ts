/**
 * One job being run by this leader: its batches in order, each node's command, the
 * --max-failures threshold, and the job's end. Everything it needs to resume is in etcd, so a
 * new leader picks up where the old one stopped:
 *
 * - nodes recorded succeeded/failed/cancelled/skipped are not run again;
 * - a node recorded running gets its command re-sent with the SAME command id: the agent
 *   answers from its result memory, or ignores the duplicate while it is still running it;
 * - every write (job record, node record, per-node progress) is fenced by the election, so a
 *   deposed leader's late write is refused by etcd.
 *
 * Per batch: the batch's node records are read in a few reads, each node moves to its *-ing
 * state (checked, with its event, and with its "running" job record in the same transaction;
 * the EventLog group-commits the batch's moves into a few transactions, each move still guarded
 * by its own CAS and the fence), gets its command (built while the move commits; the batch's
 * facts read together, batch-loader.ts; command-dispatch.ts), reports per-unit progress
 * (recorded, bounded), and ends as
 * job-outcome.ts decides. A node's claim is released in the same transaction as its final
 * transition; the nodes the job never ran are released when it ends.
 *
 * An upgrade that stops at its threshold with `--rollback on-failure` then rolls back
 * (job-rollback.ts): RollingBack, each node it ran on re-applied with what it had before, newest
 * first; a new leader that finds the job RollingBack resumes the rollback, not the batches.
 */
import {
  errorMessage, FailedPreconditionError, NotLeaderError, type Clock, type Logger,
} from '../../shared';
import { setMaxListeners } from 'node:events';
import type { Command } from '../../generated/cluster/v1/Command';
import type { AgentStreams } from '../agent-streams';
import type { MutationResult, NodeStore, VersionedNode } from '../node-store';
import { thresholdExceeded } from './batch-plan';
import { BundleResolver } from './bundle-resolution';
import { dispatchCommand, Halted, type CommandRouter, type DispatchContext, type DispatchTimings } from './command-dispatch';
import type { ConfigReader } from './config-records';
import {
  CANCELLED_BY_OPERATOR, commandKindFor, decideNodeOutcome, failedOutcome, finishedJobNode, finishedNodeChange,
  startedNodeChange, workingState, type CommandOutcome,
} from './job-outcome';
import {
  batchOf, checkJobTransition, commandIdFor, commandVariables, isNodeDone, isRunnable, JOB_TRANSITIONS, pendingNode,
  type JobNodeRecord, type JobRecord, type JobState,
} from './job-record';
import type { JobStore, VersionedJob } from './job-store';
import { secondsBetween, type JobObserver } from './job-observer';
import { renderInputs, type RenderInputs } from '../../shared/render-inputs';
import { soakCommandId, soakFailure, soakUntil, waitUntil } from './canary-soak';
import { resumeHint } from './job-pause';
import {
  rollbackCommandId, rollbackEnd, rollbackOrder, rollbackRefusal, rollbackStartChange, rolledBackNodeChange, rollsBack,
} from './job-rollback';
import { Redactor } from '../../shared/secret-envelope';
import { BatchLoader } from './batch-loader';

/** What a job's progress needs from the runner. */
export interface JobProgressDeps {
  /** Fenced by the election. */
  store: JobStore;
  /** Fenced by the election. */
  nodes: NodeStore;
  streams: AgentStreams;
  router: CommandRouter;
  config: ConfigReader;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  timings: DispatchTimings;
  /** Told of finished jobs and nodes and of commands in flight (metrics). */
  observer?: JobObserver;
}

export class JobProgress {
  done: Promise<void> = Promise.resolve();
  /** The run ended with the job Paused (job-runner.ts looks again for a resume that raced it). */
  paused = false;
  private readonly cancel = new AbortController();
  private readonly halted = new AbortController();
  private readonly log: Logger;
  private job!: JobRecord;
  private rev = '0';
  private nodes = new Map<string, JobNodeRecord>();
  private readonly bundles: BundleResolver;
  /** Per node: the chain of its record writes (progress and final), in order. */
  private readonly writes = new Map<string, Promise<void>>();
  private readonly groupPaths = new Map<string, Promise<string[]>>();
  /** Nodes' facts for their commands: the nodes of a batch read theirs together. */
  private readonly facts: BatchLoader<string, unknown>;

  constructor(private readonly o: JobProgressDeps, readonly jobId: string) {
    // Node commands in flight wait on both signals through one listener per signal
    // (command-dispatch.ts, shared/abort-subscribers.ts); the waits and canary soaks add their
    // own, and Node's default warning at 11 listeners would only fill the leader's log.
    setMaxListeners(0, this.cancel.signal, this.halted.signal);
    this.log = o.logger.child({ component: 'job-runner', jobId });
    this.bundles = new BundleResolver(o.config);
    // One read per etcd --max-txn-ops keys: the limits the store was given (settings.txnMaxOps).
    const maxOps = o.store.limits.maxOps;
    this.facts = new BatchLoader((ids) => o.config.factsOf(ids, maxOps), maxOps);
  }

  start(): void {
    this.done = this.run().catch((err: unknown) => {
      if (err instanceof Halted || err instanceof NotLeaderError) this.log.info('job halted; the next leader resumes it', { why: errorMessage(err) });
      else this.log.error('job run failed; a later pass retries it', { err: errorMessage(err) });
    });
  }

  requestCancel(): void {
    if (!this.cancel.signal.aborted) {
      this.log.info('cancelling job');
      this.cancel.abort();
    }
  }

  halt(): void {
    this.halted.abort();
  }

  private checkHalted(): void {
    if (this.halted.signal.aborted || !this.o.isLeader()) throw new Halted('leadership lost or runner stopped');
  }

  /**
   * Read-modify-write of the job record with its event; re-reads on a lost CAS, and on a
   * transition refused on the record as this run last read it: the runner's pass hands an
   * operator's cancel to the run without the record that says Cancelling, so a run that ends
   * its cancelled job still holds Running (and Running → Cancelled is refused). Only a refusal
   * on the current record stands.
   */
  private async updateJob(change: (j: JobRecord) => { next: JobRecord; type: string; message: string } | undefined): Promise<void> {
    for (let i = 0; i < 5; i++) {
      this.checkHalted();
      const c = change(this.job);
      if (!c) return;
      if (c.next.state !== this.job.state && !JOB_TRANSITIONS[this.job.state].includes(c.next.state)) {
        if (!(await this.reread())) checkJobTransition(this.jobId, this.job.state, c.next.state);
        continue;
      }
      try {
        const v: VersionedJob = await this.o.store.commit(c.next, this.rev, { type: c.type, message: c.message });
        this.job = v.record;
        this.rev = v.modRevision;
        return;
      } catch (err) {
        if (err instanceof NotLeaderError) throw err;
        await this.reread();
      }
    }
    throw new Error(`job ${this.jobId} kept changing while being updated`);
  }

  /** Reads the job record again (a cancel found there is taken up); true when it had changed. */
  private async reread(): Promise<boolean> {
    const fresh = await this.o.store.require(this.jobId);
    const changed = fresh.modRevision !== this.rev;
    this.job = fresh.record;
    this.rev = fresh.modRevision;
    if (this.job.state === 'Cancelling') this.requestCancel();
    return changed;
  }

  private async run(): Promise<void> {
    await this.reread();
    // The runner's pass decided on a list that can be older than the record: a job that finished
    // (or paused) since, its run gone, was started again and finished a second time: its record
    // rewritten, a second job.succeeded event, the metrics counting it twice (seen in CI).
    if (!isRunnable(this.job.state)) {
      this.log.debug('not running: the job is no longer runnable', { state: this.job.state });
      return;
    }
    this.nodes = await this.o.store.nodes(this.jobId);
    const now = (): string => this.o.clock.iso();

    if (this.job.state === 'Pending' && !this.cancel.signal.aborted) {
      await this.updateJob((j) => j.state !== 'Pending' ? undefined : {
        next: { ...j, state: 'Running', startedAt: now(), message: `running batch 1 of ${j.batches.length}` },
        type: 'job.started', message: `${j.kind}${j.dryRun ? ' (dry run)' : ''} of ${j.nodeIds.length} node(s) started`,
      });
    }
    this.log.info('running job', { kind: this.job.kind, state: this.job.state, nodes: this.job.nodeIds.length, batches: this.job.batches.length });

    let stopReason: string | undefined = this.job.state === 'RollingBack' ? this.job.rollbackReason ?? this.job.message : undefined;
    for (let b = this.job.currentBatch; b < this.job.batches.length && this.job.state !== 'RollingBack'; b++) {
      if (this.cancel.signal.aborted) break;
      this.checkHalted();
      if (b !== this.job.currentBatch) {
        const hold = await this.holdBeforeBatch(b);
        if (hold.paused) { this.paused = true; return; }
        if (hold.stopReason) { stopReason = hold.stopReason; break; }
        if (this.cancel.signal.aborted) break;
        await this.updateJob((j) => j.state !== 'Running' ? undefined : {
          next: { ...j, currentBatch: b, message: `running batch ${b + 1} of ${j.batches.length}` },
          type: 'job.batch', message: `batch ${b + 1} of ${j.batches.length}: ${j.batches[b].join(', ')}`,
        });
      }
      const known = await this.o.nodes.getMany(this.job.batches[b]);
      await Promise.all(this.job.batches[b].map((id) => this.runNode(id, known.get(id))));
      this.checkHalted();
      const failed = this.count('failed');
      if (thresholdExceeded(failed, this.job.maxFailures)) {
        stopReason = `${failed} node(s) failed, more than --max-failures ${this.job.maxFailures}; remaining nodes skipped`;
        break;
      }
    }
    if (stopReason && (this.job.state === 'RollingBack' || rollsBack(this.job, true, this.cancel.signal.aborted))) await this.rollBack(stopReason);
    if (this.cancel.signal.aborted) {
      // Nodes recorded running (e.g. resumed by a new leader) get their CancelCommand too.
      const running = this.job.nodeIds.filter((id) => this.nodes.get(id)?.state === 'running');
      const known = await this.o.nodes.getMany(running);
      await Promise.all(running.map((id) => this.runNode(id, known.get(id))));
    }
    await this.finish(stopReason);
  }

  /**
   * Before batch b (b ≥ 1): the operator's pause and the canary gate. The record is read again
   * (a pause or cancel may have been written by any replica); after the canary batch the
   * canary soaks (--canary-soak) or the job pauses (--canary). `paused`: the job is Paused and
   * this run ends (resume makes the runner start it again at batch b); `stopReason`: the soak
   * failed more nodes than --max-failures allows.
   */
  private async holdBeforeBatch(b: number): Promise<{ paused: boolean; stopReason?: string }> {
    await this.reread();
    if (this.cancel.signal.aborted) return { paused: false };
    const canaryGate = b === 1 && (this.job.canary ?? 0) > 0;
    if (canaryGate && this.job.canarySoakMs && this.job.state === 'Running') {
      await this.soakCanary();
      if (this.cancel.signal.aborted) return { paused: false };
      const failed = this.count('failed');
      if (thresholdExceeded(failed, this.job.maxFailures)) {
        return { paused: false, stopReason: `${failed} node(s) failed, more than --max-failures ${this.job.maxFailures} (the canary failed its soak); remaining nodes skipped` };
      }
    }
    const total = this.job.batches.length;
    await this.updateJob((j) => {
      if (j.state === 'Pausing') {
        return {
          next: { ...j, state: 'Paused', currentBatch: b, message: `paused after batch ${b} of ${total}; ${resumeHint(j.id)}` },
          type: 'job.paused', message: `paused before batch ${b + 1} of ${total}`,
        };
      }
      if (canaryGate && !j.canarySoakMs && j.state === 'Running') {
        return {
          next: { ...j, state: 'Paused', currentBatch: b, message: `canary done on ${j.batches[0].join(', ')}: check it, then ${resumeHint(j.id)}` },
          type: 'job.paused', message: `paused after the canary batch (${j.batches[0].join(', ')})`,
        };
      }
      return undefined;
    });
    if (this.job.state === 'Paused') this.log.info('job paused', { beforeBatch: b + 1, message: this.job.message });
    return { paused: this.job.state === 'Paused' };
  }

  /** --canary-soak: wait, then re-verify each canary node; a failing one is recorded failed. */
  private async soakCanary(): Promise<void> {
    const until = soakUntil(this.job.canarySoakUntil, this.o.clock.now(), this.job.canarySoakMs ?? 0);
    const canaries = this.job.batches[0] ?? [];
    await this.updateJob((j) => j.canarySoakUntil === until ? undefined : {
      next: { ...j, canarySoakUntil: until, message: `canary soak: ${canaries.join(', ')} verified again at ${until}` },
      type: 'job.soak', message: `canary soak until ${until} on ${canaries.join(', ')}`,
    });
    await waitUntil(this.o.clock, until, this.cancel.signal, this.halted.signal);
    if (this.cancel.signal.aborted || !this.job.bundle) return;
    this.checkHalted();
    const { bundle, bundleJson, secrets } = await this.bundles.resolve(this.job.bundle);
    // Secret variables are opened for these commands only, and redacted from what comes back.
    const opened = await this.o.config.openVariables(commandVariables(bundle.variables, this.job.variables));
    const redactor = new Redactor([...opened.secret.map((n) => opened.variables[n]), ...secrets]);
    // Only the canaries that succeeded are verified: a failed one already counts.
    const passed = canaries.filter((id) => this.nodes.get(id)?.state === 'succeeded');
    await Promise.all(passed.map(async (id) => {
      const command: Command = {
        id: soakCommandId(this.jobId, id), jobId: this.jobId, kind: 'COMMAND_KIND_VERIFY',
        bundleJson, variables: opened.variables, timeoutMs: this.o.timings.commandTimeoutMs,
        ...(opened.secret.length ? { secretVariables: opened.secret } : {}),
      };
      // The node's job record keeps its apply's units and output: the verify's progress is not written.
      const c: DispatchContext = {
        streams: this.o.streams, router: this.o.router, clock: this.o.clock, log: this.log, timings: this.o.timings,
        cancel: this.cancel.signal, halted: this.halted.signal, remember: () => undefined, write: () => Promise.resolve(),
        ...(redactor.empty ? {} : { redactor }),
      };
      const failure = soakFailure(await dispatchCommand(c, id, command, pendingNode(id, 0)));
      this.checkHalted();
      if (failure && !this.cancel.signal.aborted) {
        const rec = this.nodes.get(id) ?? pendingNode(id, 0);
        await this.writeNode({ ...rec, state: 'failed', error: failure, finishedAt: this.o.clock.iso() });
        this.log.info('canary failed its soak', { nodeId: id, error: failure });
      }
    }));
  }

  private count(state: JobNodeRecord['state']): number {
    return this.job.nodeIds.filter((id) => this.nodes.get(id)?.state === state).length;
  }

  private async finish(stopReason: string | undefined): Promise<void> {
    this.checkHalted();
    const cancelled = this.cancel.signal.aborted;
    // Nodes never run: skipped, claim released.
    const skipped: Promise<void>[] = [];
    for (const id of this.job.nodeIds) {
      const rec = this.nodes.get(id) ?? pendingNode(id, batchOf(this.job, id));
      if (isNodeDone(rec.state)) continue;
      skipped.push(this.writeNode({ ...rec, state: 'skipped', finishedAt: this.o.clock.iso(), error: cancelled ? CANCELLED_BY_OPERATOR : stopReason ?? 'not run' }));
    }
    await Promise.all(skipped);
    const claimed = [...(await this.o.nodes.getMany(this.job.nodeIds)).values()].filter((n) => n.record.currentJob === this.jobId);
    await Promise.all(claimed.map((n) => this.releaseClaim(n)));
    const failed = this.count('failed');
    const succeeded = this.count('succeeded');
    let state: JobState;
    let message: string;
    if (cancelled) {
      state = 'Cancelled';
      message = `${CANCELLED_BY_OPERATOR}: ${succeeded} succeeded, ${this.count('cancelled')} cancelled, ${this.count('skipped')} skipped`;
    } else if (this.job.state === 'RollingBack') {
      ({ state, message } = rollbackEnd(this.job, this.nodes, stopReason ?? this.job.message));
    } else if (stopReason) {
      state = 'Failed';
      message = stopReason;
    } else {
      state = 'Succeeded';
      message = `${succeeded} of ${this.job.nodeIds.length} node(s) succeeded` + (failed > 0 ? `, ${failed} failed (within --max-failures ${this.job.maxFailures})` : '');
    }
    // A verification that ran is a success whatever it found; what it found is the job's result.
    const drifted = this.job.kind === 'verify' && !this.job.dryRun ? this.job.nodeIds.filter((id) => this.nodes.get(id)?.drift !== undefined) : [];
    if (drifted.length > 0 && state === 'Succeeded') message = `${message}; drift on ${drifted.length} node(s): ${drifted.join(', ')}`;
    await this.updateJob((j) => {
      const to: JobState = j.state === 'Cancelling' || cancelled ? 'Cancelled' : state;
      if (j.state === 'Pending' && to !== 'Cancelled') return { next: { ...j, state: 'Failed', finishedAt: this.o.clock.iso(), message }, type: 'job.failed', message };
      return {
        next: { ...j, state: to, finishedAt: this.o.clock.iso(), message: to === 'Cancelled' && !cancelled ? CANCELLED_BY_OPERATOR : message, ...(this.job.kind === 'verify' ? { drifted } : {}) },
        type: `job.${to.toLowerCase()}`, message,
      };
    });
    this.log.info('job finished', { state: this.job.state, message: this.job.message });
    const seconds = secondsBetween(this.job.startedAt ?? this.job.createdAt, this.job.finishedAt);
    if (seconds !== undefined) this.o.observer?.jobFinished(this.job.kind, this.job.state, seconds);
  }

  /** Clears currentJob on a node still claimed by this job (with its event). */
  private async releaseClaim(node: VersionedNode): Promise<void> {
    this.checkHalted();
    await this.o.nodes.mutate(node.record.id, (cur) => {
      if (!cur || cur.currentJob !== this.jobId) return undefined;
      const { currentJob: _c, ...rest } = cur;
      return { next: rest, event: { type: 'job.released', jobId: this.jobId, message: `released by job ${this.jobId}` } };
    }, { known: node });
  }

  /** Queues a write of the node's job record (progress and final writes stay in order). */
  private writeNode(rec: JobNodeRecord): Promise<void> {
    return this.chainWrite(rec, () => this.o.store.putNode(this.jobId, rec));
  }

  /** Runs `write` (which writes `rec`) after the node's record writes queued before it. */
  private chainWrite(rec: JobNodeRecord, write: () => Promise<void>): Promise<void> {
    this.nodes.set(rec.nodeId, rec);
    const prev = this.writes.get(rec.nodeId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => {
      this.checkHalted();
      return write();
    });
    this.writes.set(rec.nodeId, next);
    return next;
  }

  /** `known`: the node record as the batch read it (undefined: read it here). */
  private async runNode(id: string, known: VersionedNode | undefined): Promise<void> {
    let rec = this.nodes.get(id) ?? pendingNode(id, batchOf(this.job, id));
    if (isNodeDone(rec.state)) return;
    if (this.cancel.signal.aborted && rec.state === 'pending') return;
    this.checkHalted();
    const job = this.job;
    let versioned = known ?? (await this.o.nodes.get(id));
    const node = versioned?.record;
    // Verify, repair and decommission work on what the node has applied (its bundle version and
    // the variables it rendered with, extra vars included); commission and upgrade on the desired.
    const onApplied = job.kind === 'decommission' || job.kind === 'verify' || job.kind === 'repair';
    const bundleRef = (onApplied ? node?.appliedConfig : undefined) ?? job.bundle;
    /** The node's job record as "running", when this run starts its command (not yet written). */
    let starting: JobNodeRecord | undefined;
    if (rec.state === 'pending') {
      const attempt = rec.attempt + 1;
      // The boot of the agent attached now, which the command goes to: written with this record,
      // so the first send needs no write of its own (one put fewer per node in a fan-out).
      const boot = this.o.streams.get(id)?.bootId;
      const { bootId: _before, ...pending } = rec;
      rec = {
        ...pending, state: 'running', attempt, commandId: commandIdFor(this.jobId, id, attempt), startedAt: this.o.clock.iso(), units: [],
        ...(bundleRef ? { bundle: bundleRef } : {}), ...(boot ? { bootId: boot } : {}),
      };
      // What a rollback would restore, written before the node is touched (a new leader needs it).
      if (job.kind === 'upgrade' && !job.dryRun && node && rec.previous === undefined) {
        rec.previous = { state: node.state, ...(node.appliedConfig ? { bundle: node.appliedConfig } : {}), ...(node.appliedInputs ? { inputs: node.appliedInputs } : {}) };
      }
      starting = rec;
      // Known here at once (as a write would make it), so a node that fails before the write ends from it.
      this.nodes.set(id, rec);
    }
    let outcome: CommandOutcome;
    let inputs: RenderInputs | undefined;
    try {
      if (!node) {
        if (starting) await this.writeNode(starting);
        throw new FailedPreconditionError(`node ${id} no longer exists`);
      }
      // The move into the working state and the command (facts read, secrets opened) are made
      // side by side; the command is sent only once the move and the "running" record are written.
      const [moved, command] = await Promise.allSettled([this.startNode(id, job, versioned, starting), this.commandFor(rec, bundleRef, onApplied && node.appliedInputs?.bundle === bundleRef ? node.appliedInputs : undefined, job.group ?? node.group)]);
      if (moved.status === 'rejected') throw moved.reason;
      versioned = moved.value ?? versioned;
      if (command.status === 'rejected') throw command.reason;
      inputs = command.value.inputs;
      outcome = await this.dispatch(id, command.value.command, rec, true, command.value.redactor, starting?.bootId !== undefined);
    } catch (err) {
      if (err instanceof Halted || err instanceof NotLeaderError) throw err;
      outcome = failedOutcome('failed', errorMessage(err));
    }
    this.checkHalted();
    await this.finishNode(id, rec, outcome, job.kind === 'exec' ? undefined : bundleRef, inputs, versioned);
  }

  /**
   * Writes the node's "running" job record (`starting`, when this run starts the command) and
   * moves the node into the job's working state. Both go in ONE transaction when the node moves:
   * one commit per node instead of two (at 10,000 nodes, 10,000 fewer). Returns the node record
   * as written (undefined when it did not move).
   */
  private async startNode(id: string, job: JobRecord, known: VersionedNode | undefined, starting: JobNodeRecord | undefined): Promise<VersionedNode | undefined> {
    if (!workingState(job)) {
      if (starting) await this.writeNode(starting);
      return undefined;
    }
    const write = starting ? this.o.store.nodeRecordOp(this.jobId, starting) : undefined;
    const moved = await this.o.nodes.mutate(id, (cur) => startedNodeChange(job, cur, id), { known: known ?? null, ...(write ? { ops: [write] } : {}) });
    // Already in its working state (a resumed run): no transaction was made, so the record is written alone.
    if (starting && !moved.changed) await this.writeNode(starting);
    return moved.node;
  }

  /**
   * The command for one node: an exec's argv, or the bundle and its variables, with the inputs
   * it renders from (recorded on the node when an apply succeeds). `applied`: the node's applied
   * inputs, whose variables (this job's extra vars over them) verify, repair and decommission use.
   */
  /**
   * A group's allowed paths, read once per job run (a group edited mid-job applies from the next
   * job, as its variables do); [] for no group or a group without them.
   */
  private allowedPaths(group: string | undefined): Promise<string[]> {
    if (!group) return Promise.resolve([]);
    let paths = this.groupPaths.get(group);
    if (!paths) {
      paths = this.o.config.group(group).then((g) => g?.record.allowedPaths ?? []);
      this.groupPaths.set(group, paths);
    }
    return paths;
  }

  private async commandFor(rec: JobNodeRecord, bundleRef: string | undefined, applied: RenderInputs | undefined, group: string | undefined): Promise<{ command: Command; inputs?: RenderInputs; redactor?: Redactor }> {
    const job = this.job;
    const base = { id: rec.commandId, jobId: this.jobId };
    const gate = job.health && !job.dryRun && commandKindFor(job.kind, job.dryRun) === 'COMMAND_KIND_APPLY' && job.kind !== 'repair'
      ? { soakMs: job.health.soakMs, intervalMs: job.health.intervalMs, probes: job.health.probes }
      : undefined;
    if (job.kind === 'exec') {
      // One argv, no bundle: the agent runs it under its root and kills it at the timeout.
      const exec = job.exec ?? { argv: [], timeoutMs: 0 };
      return { command: { ...base, kind: 'COMMAND_KIND_EXEC', argv: exec.argv, timeoutMs: exec.timeoutMs } };
    }
    if (!bundleRef) throw new FailedPreconditionError(`node ${rec.nodeId} has no bundle to ${job.kind}`);
    const { bundle, bundleJson, secrets } = await this.bundles.resolve(bundleRef);
    const extra = job.extraVars ?? {};
    const variables = applied ? { ...applied.variables, ...extra } : commandVariables(bundle.variables, job.variables);
    const extraNames = [...(applied?.extraVars ?? []), ...Object.keys(extra)];
    // Secret variables stay sealed in the inputs (recorded on the node) and in the job record;
    // they are opened here, for this command only (docs/secrets.md).
    const inputs = renderInputs(bundleRef, bundle, variables, await this.facts.load(rec.nodeId), extraNames);
    const opened = await this.o.config.openVariables(variables);
    const kind = commandKindFor(job.kind, job.dryRun);
    return {
      command: {
        ...base, kind,
        // The bundle as stored (sources inlined); the agent validates and renders it with
        // `variables` and its own facts.
        bundleJson,
        variables: opened.variables,
        ...(opened.secret.length ? { secretVariables: opened.secret } : {}),
        // A health-gated apply holds the command for its soak too.
        timeoutMs: this.o.timings.commandTimeoutMs + (gate?.soakMs ?? 0),
        ...(gate ? { health: gate } : {}),
        // For what writes (apply) or plans to: the agent checks the rendered units against them
        // again (a leader is not trusted blindly). Verify only reads, and decommission removes
        // what an earlier version placed, possibly before the group had the list.
        allowedPaths: kind === 'COMMAND_KIND_APPLY' || kind === 'COMMAND_KIND_PLAN' ? await this.allowedPaths(group) : [],
      },
      inputs,
      redactor: new Redactor([...opened.secret.map((n) => opened.variables[n]), ...secrets]),
    };
  }

  /**
   * Rolls back every node the job ran on, newest first (job-rollback.ts), one at a time: a
   * rollback is the careful path back, and one at a time keeps the rest of the group serving.
   */
  private async rollBack(stopReason: string): Promise<void> {
    const order = rollbackOrder(this.job, this.nodes);
    if (this.job.state !== 'RollingBack') {
      await this.updateJob((j) => j.state !== 'Running' ? undefined : {
        next: { ...j, state: 'RollingBack', rollbackReason: stopReason, message: `rolling back: ${stopReason}` },
        type: 'job.rollback', message: `rolling back ${order.length} node(s), newest first (${order.join(', ')}): ${stopReason}`,
      });
    }
    if (this.job.state !== 'RollingBack') return;
    this.log.info('rolling back', { nodes: order, why: stopReason });
    for (const id of order) {
      if (this.cancel.signal.aborted) break;
      this.checkHalted();
      await this.rollBackNode(id, stopReason);
    }
  }

  private async rollBackNode(id: string, reason: string): Promise<void> {
    const rec = this.nodes.get(id);
    if (!rec) return;
    const previous = rec.previous;
    const now = (): string => this.o.clock.iso();
    const refusal = rollbackRefusal(previous);
    if (refusal !== undefined || previous?.bundle === undefined) {
      await this.writeNode({ ...rec, rollback: { state: 'failed', commandId: '', bundle: '', startedAt: now(), finishedAt: now(), error: `not rolled back: ${refusal ?? ''}` } });
      return;
    }
    const target = previous.bundle;
    const started = rec.rollback ?? { state: 'running' as const, commandId: rollbackCommandId(this.jobId, id), bundle: target, startedAt: now() };
    if (!rec.rollback) await this.writeNode({ ...rec, rollback: started });
    let outcome: CommandOutcome;
    let claimed = false;
    try {
      await this.o.nodes.mutate(id, (cur) => rollbackStartChange(this.job, cur, id, target));
      claimed = true;
      const { bundle, bundleJson, secrets } = await this.bundles.resolve(target);
      // Exactly the variables it rendered with before; for an apply recorded before inputs were,
      // the bundle's defaults under the job's variables without its own extra vars. Secret ones
      // are stored sealed and opened for this command only.
      const extra = new Set(Object.keys(this.job.extraVars ?? {}));
      const variables = previous.inputs?.variables ?? commandVariables(bundle.variables, Object.fromEntries(Object.entries(this.job.variables).filter(([k]) => !extra.has(k))));
      const opened = await this.o.config.openVariables(variables);
      const command: Command = {
        id: started.commandId, jobId: this.jobId, kind: 'COMMAND_KIND_APPLY', bundleJson, variables: opened.variables,
        ...(opened.secret.length ? { secretVariables: opened.secret } : {}),
        timeoutMs: this.o.timings.commandTimeoutMs,
        // An apply like any other: the agent checks it against the group's allowed paths.
        allowedPaths: await this.allowedPaths(this.job.group),
      };
      // The upgrade's units and output stay in the node's record: the rollback's progress is not written over them.
      const redactor = new Redactor([...opened.secret.map((n) => opened.variables[n]), ...secrets]);
      outcome = await this.dispatch(id, command, { nodeId: id, state: 'running', batch: rec.batch, attempt: rec.attempt, units: [] }, false, redactor);
    } catch (err) {
      if (err instanceof Halted || err instanceof NotLeaderError) throw err;
      outcome = failedOutcome('failed', errorMessage(err));
    }
    this.checkHalted();
    const ok = outcome.outcome === 'succeeded';
    const error = ok ? undefined : outcome.error || `command ${outcome.outcome}`;
    await this.writeNode({ ...(this.nodes.get(id) ?? rec), rollback: { ...started, state: ok ? 'succeeded' : 'failed', finishedAt: now(), ...(error ? { error } : {}) } });
    if (claimed) await this.o.nodes.mutate(id, (cur) => rolledBackNodeChange(this.job, cur, previous, outcome, reason));
    this.log.info('node rolled back', { nodeId: id, to: target, ok, error });
  }

  /** `known`: the node record as last read or written here (a stale one costs one CAS retry). */
  private async finishNode(id: string, rec: JobNodeRecord, r: CommandOutcome, bundleRef: string | undefined, inputs: RenderInputs | undefined, known: VersionedNode | undefined): Promise<void> {
    const job = this.job;
    // The agent says the command was cancelled, and this run has not heard of a cancel: the job
    // record decides whether it was the operator's (sent by another run of the job, e.g. an
    // earlier leader's, and answered from the agent's memory of results when this run re-sent
    // the command) or not (an agent shutting down): not a failure of the node in the first case,
    // a failure in the second.
    if (r.outcome === 'cancelled' && !this.cancel.signal.aborted) await this.reread();
    const d = decideNodeOutcome(job, r, this.cancel.signal.aborted);
    const finished = finishedJobNode(this.nodes.get(id) ?? rec, d, r, this.o.clock.iso());
    // The final record goes in the transaction of the node's own change (one commit per node
    // instead of two: at 1,000 nodes, 1,000 fewer), after the node's earlier record writes.
    await this.chainWrite(finished, async () => {
      let moved: MutationResult;
      try {
        moved = await this.o.nodes.mutate(id, (cur) => finishedNodeChange(job, d, r, bundleRef, cur, inputs, finished.bootId), {
          ...(known ? { known } : {}), ops: [this.o.store.nodeRecordOp(this.jobId, finished)],
        });
      } catch (err) {
        if (err instanceof Halted || err instanceof NotLeaderError) throw err;
        // The node's change failed (it kept changing): the record still says how the command ended.
        await this.o.store.putNode(this.jobId, finished);
        throw err;
      }
      // Nothing to change on the node (gone meanwhile, or an exec's claim already released): the record alone.
      if (!moved.changed) await this.o.store.putNode(this.jobId, finished);
    });
    const seconds = secondsBetween(finished.startedAt, finished.finishedAt);
    if (seconds !== undefined) this.o.observer?.nodeFinished(job.kind, finished.state, seconds);
    this.log.info('node finished', { nodeId: id, outcome: r.outcome, error: d.error });
  }

  /**
   * `record`: keep the command's progress in the node's job record (not for a rollback's);
   * `bootIdBeforeSend`: `rec`'s boot id was taken as this run started the command (DispatchContext).
   */
  private dispatch(nodeId: string, command: Command, rec: JobNodeRecord, record = true, redactor?: Redactor, bootIdBeforeSend = false): Promise<CommandOutcome> {
    const c: DispatchContext = {
      streams: this.o.streams, router: this.o.router, clock: this.o.clock, log: this.log, timings: this.o.timings,
      cancel: this.cancel.signal, halted: this.halted.signal,
      remember: (r) => { if (record) this.nodes.set(r.nodeId, r); },
      write: (r) => (record ? this.writeNode(r) : Promise.resolve()),
      ...(redactor && !redactor.empty ? { redactor } : {}),
      ...(bootIdBeforeSend ? { bootIdBeforeSend } : {}),
    };
    const observer = this.o.observer;
    if (!observer) return dispatchCommand(c, nodeId, command, rec);
    observer.commandStarted();
    return dispatchCommand(c, nodeId, command, rec).finally(() => observer.commandSettled());
  }
}
