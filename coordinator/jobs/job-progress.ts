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
 * state (checked, with its event; the EventLog group-commits the batch's moves into a few
 * transactions, each move still guarded by its own CAS and the fence), gets its command
 * (command-dispatch.ts), reports per-unit progress (recorded, bounded), and ends as
 * job-outcome.ts decides. A node's claim is released in the same transaction as its final
 * transition; the nodes the job never ran are released when it ends.
 */
import {
  errorMessage, FailedPreconditionError, NotLeaderError, type Clock, type Logger,
} from '../../shared';
import type { Command } from '../../generated/cluster/v1/Command';
import type { AgentStreams } from '../agent-streams';
import type { NodeStore, VersionedNode } from '../node-store';
import { thresholdExceeded } from './batch-plan';
import { BundleResolver } from './bundle-resolution';
import { dispatchCommand, Halted, type CommandRouter, type DispatchContext, type DispatchTimings } from './command-dispatch';
import type { ConfigReader } from './config-records';
import {
  CANCELLED_BY_OPERATOR, commandKindFor, decideNodeOutcome, failedOutcome, finishedJobNode, finishedNodeChange,
  startedNodeChange, workingState, type CommandOutcome,
} from './job-outcome';
import {
  batchOf, checkJobTransition, commandIdFor, commandVariables, isNodeDone, pendingNode,
  type JobNodeRecord, type JobRecord, type JobState,
} from './job-record';
import type { JobStore, VersionedJob } from './job-store';
import { secondsBetween, type JobObserver } from './job-observer';
import { renderInputs, type RenderInputs } from '../../shared/render-inputs';

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

  constructor(private readonly o: JobProgressDeps, readonly jobId: string) {
    this.log = o.logger.child({ component: 'job-runner', jobId });
    this.bundles = new BundleResolver(o.config);
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

  /** Read-modify-write of the job record with its event; re-reads on a lost CAS. */
  private async updateJob(change: (j: JobRecord) => { next: JobRecord; type: string; message: string } | undefined): Promise<void> {
    for (let i = 0; i < 5; i++) {
      this.checkHalted();
      const c = change(this.job);
      if (!c) return;
      if (c.next.state !== this.job.state) checkJobTransition(this.jobId, this.job.state, c.next.state);
      try {
        const v: VersionedJob = await this.o.store.commit(c.next, this.rev, { type: c.type, message: c.message });
        this.job = v.record;
        this.rev = v.modRevision;
        return;
      } catch (err) {
        if (err instanceof NotLeaderError) throw err;
        const fresh = await this.o.store.require(this.jobId);
        this.job = fresh.record;
        this.rev = fresh.modRevision;
        if (this.job.state === 'Cancelling') this.requestCancel();
      }
    }
    throw new Error(`job ${this.jobId} kept changing while being updated`);
  }

  private async run(): Promise<void> {
    const v = await this.o.store.require(this.jobId);
    this.job = v.record;
    this.rev = v.modRevision;
    this.nodes = await this.o.store.nodes(this.jobId);
    if (this.job.state === 'Cancelling') this.requestCancel();
    const now = (): string => this.o.clock.iso();

    if (this.job.state === 'Pending' && !this.cancel.signal.aborted) {
      await this.updateJob((j) => j.state !== 'Pending' ? undefined : {
        next: { ...j, state: 'Running', startedAt: now(), message: `running batch 1 of ${j.batches.length}` },
        type: 'job.started', message: `${j.kind}${j.dryRun ? ' (dry run)' : ''} of ${j.nodeIds.length} node(s) started`,
      });
    }
    this.log.info('running job', { kind: this.job.kind, state: this.job.state, nodes: this.job.nodeIds.length, batches: this.job.batches.length });

    let stopReason: string | undefined;
    for (let b = this.job.currentBatch; b < this.job.batches.length; b++) {
      if (this.cancel.signal.aborted) break;
      this.checkHalted();
      if (b !== this.job.currentBatch) {
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
    if (this.cancel.signal.aborted) {
      // Nodes recorded running (e.g. resumed by a new leader) get their CancelCommand too.
      const running = this.job.nodeIds.filter((id) => this.nodes.get(id)?.state === 'running');
      const known = await this.o.nodes.getMany(running);
      await Promise.all(running.map((id) => this.runNode(id, known.get(id))));
    }
    await this.finish(stopReason);
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
    this.nodes.set(rec.nodeId, rec);
    const prev = this.writes.get(rec.nodeId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => {
      this.checkHalted();
      return this.o.store.putNode(this.jobId, rec);
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
    if (rec.state === 'pending') {
      const attempt = rec.attempt + 1;
      rec = { ...rec, state: 'running', attempt, commandId: commandIdFor(this.jobId, id, attempt), startedAt: this.o.clock.iso(), units: [], ...(bundleRef ? { bundle: bundleRef } : {}) };
      await this.writeNode(rec);
    }
    let outcome: CommandOutcome;
    let inputs: RenderInputs | undefined;
    try {
      if (!node) throw new FailedPreconditionError(`node ${id} no longer exists`);
      if (workingState(job)) {
        const moved = await this.o.nodes.mutate(id, (cur) => startedNodeChange(job, cur, id), { known: versioned ?? null });
        versioned = moved.node;
      }
      const applied = onApplied && node.appliedInputs?.bundle === bundleRef ? node.appliedInputs : undefined;
      const c = await this.commandFor(rec, bundleRef, applied, job.group ?? node.group);
      inputs = c.inputs;
      outcome = await this.dispatch(id, c.command, rec);
    } catch (err) {
      if (err instanceof Halted || err instanceof NotLeaderError) throw err;
      outcome = failedOutcome('failed', errorMessage(err));
    }
    this.checkHalted();
    await this.finishNode(id, rec, outcome, job.kind === 'exec' ? undefined : bundleRef, inputs, versioned);
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

  private async commandFor(rec: JobNodeRecord, bundleRef: string | undefined, applied: RenderInputs | undefined, group: string | undefined): Promise<{ command: Command; inputs?: RenderInputs }> {
    const job = this.job;
    const base = { id: rec.commandId, jobId: this.jobId };
    if (job.kind === 'exec') {
      // One argv, no bundle: the agent runs it under its root and kills it at the timeout.
      const exec = job.exec ?? { argv: [], timeoutMs: 0 };
      return { command: { ...base, kind: 'COMMAND_KIND_EXEC', argv: exec.argv, timeoutMs: exec.timeoutMs } };
    }
    if (!bundleRef) throw new FailedPreconditionError(`node ${rec.nodeId} has no bundle to ${job.kind}`);
    const bundle = await this.bundles.resolve(bundleRef);
    const extra = job.extraVars ?? {};
    const variables = applied ? { ...applied.variables, ...extra } : commandVariables(bundle.variables, job.variables);
    const extraNames = [...(applied?.extraVars ?? []), ...Object.keys(extra)];
    const inputs = renderInputs(bundleRef, bundle, variables, await this.o.config.facts(rec.nodeId), extraNames);
    const kind = commandKindFor(job.kind, job.dryRun);
    return {
      command: {
        ...base, kind,
        // The bundle as stored (sources inlined); the agent validates and renders it with
        // `variables` and its own facts.
        bundleJson: JSON.stringify(bundle),
        variables,
        timeoutMs: this.o.timings.commandTimeoutMs,
        // For what writes (apply) or plans to: the agent checks the rendered units against them
        // again (a leader is not trusted blindly). Verify only reads, and decommission removes
        // what an earlier version placed, possibly before the group had the list.
        allowedPaths: kind === 'COMMAND_KIND_APPLY' || kind === 'COMMAND_KIND_PLAN' ? await this.allowedPaths(group) : [],
      },
      inputs,
    };
  }

  /** `known`: the node record as last read or written here (a stale one costs one CAS retry). */
  private async finishNode(id: string, rec: JobNodeRecord, r: CommandOutcome, bundleRef: string | undefined, inputs: RenderInputs | undefined, known: VersionedNode | undefined): Promise<void> {
    const job = this.job;
    const d = decideNodeOutcome(job, r, this.cancel.signal.aborted);
    const finished = finishedJobNode(this.nodes.get(id) ?? rec, d, r, this.o.clock.iso());
    await this.writeNode(finished);
    const seconds = secondsBetween(finished.startedAt, finished.finishedAt);
    if (seconds !== undefined) this.o.observer?.nodeFinished(job.kind, finished.state, seconds);
    this.checkHalted();
    await this.o.nodes.mutate(id, (cur) => finishedNodeChange(job, d, r, bundleRef, cur, inputs), known ? { known } : {});
    this.log.info('node finished', { nodeId: id, outcome: r.outcome, error: d.error });
  }

  private dispatch(nodeId: string, command: Command, rec: JobNodeRecord): Promise<CommandOutcome> {
    const c: DispatchContext = {
      streams: this.o.streams, router: this.o.router, clock: this.o.clock, log: this.log, timings: this.o.timings,
      cancel: this.cancel.signal, halted: this.halted.signal,
      remember: (r) => this.nodes.set(r.nodeId, r),
      write: (r) => this.writeNode(r),
    };
    const observer = this.o.observer;
    if (!observer) return dispatchCommand(c, nodeId, command, rec);
    observer.commandStarted();
    return dispatchCommand(c, nodeId, command, rec).finally(() => observer.commandSettled());
  }
}
