/**
 * The leader's job runner. Level-triggered: a pass lists jobs/ and runs every claimed
 * Pending/Running/Cancelling job this replica is not already running; passes run at start
 * (every leadership gain), on watch events under jobs/ and on a timer. Everything it needs to
 * resume is in etcd, so a new leader picks up where the old one stopped:
 *
 * - nodes recorded succeeded/failed/cancelled/skipped are not run again;
 * - a node recorded running gets its command re-sent with the SAME command id: the agent
 *   answers from its result memory, or ignores the duplicate while it is still running it;
 * - every write (job record, node record, per-node progress) is fenced by the election, so a
 *   deposed leader's late write is refused by etcd.
 *
 * Per batch: each node moves to its *-ing state (checked, one txn + event), gets its command
 * through AgentStreams, reports per-unit progress (recorded, bounded), and ends succeeded →
 * Commissioned/Upgraded/Decommissioned (verify/repair keep the state) or failed → Failed with
 * lastError. A node's claim is released in the same transaction as its final transition; the
 * nodes the job never ran are released when it ends.
 */
import type { Etcd3, Watcher } from 'etcd3';
import {
  errorMessage, FailedPreconditionError, NotLeaderError, type Clock, type Keyspace, type LifecycleState, type Logger, type NodeRecord,
} from '../../shared';
import { inlineSources, type Bundle } from '../../shared/bundle';
import type { Command } from '../../generated/cluster/v1/Command';
import type { CommandKind } from '../../generated/cluster/v1/CommandKind';
import type { CommandProgress__Output } from '../../generated/cluster/v1/CommandProgress';
import type { CommandResult__Output } from '../../generated/cluster/v1/CommandResult';
import type { AgentStream, AgentStreams } from '../agent-streams';
import type { NodeStore } from '../node-store';
import { thresholdExceeded } from './batch-plan';
import { parseBundleRef, type ConfigReader } from './config-records';
import {
  batchOf, boundOutput, checkJobTransition, commandIdFor, isActive, isNodeDone, pendingNode,
  type JobKind, type JobNodeRecord, type JobRecord, type JobState,
} from './job-record';
import { WORKING_STATE } from './job-starter';
import type { JobStore, VersionedJob } from './job-store';

/** Lifecycle state after a successful job (verify/repair: unchanged). */
const DONE_STATE: Readonly<Record<JobKind, LifecycleState | undefined>> = {
  commission: 'Commissioned',
  upgrade: 'Upgraded',
  decommission: 'Decommissioned',
  verify: undefined,
  repair: undefined,
  exec: undefined,
};

export const CANCELLED_BY_OPERATOR = 'cancelled by operator';

export function commandKindFor(kind: JobKind, dryRun: boolean): CommandKind {
  if (dryRun) return 'COMMAND_KIND_PLAN';
  switch (kind) {
    case 'commission': case 'upgrade': case 'repair': return 'COMMAND_KIND_APPLY';
    case 'decommission': return 'COMMAND_KIND_REMOVE';
    case 'verify': return 'COMMAND_KIND_VERIFY';
    case 'exec': return 'COMMAND_KIND_EXEC';
  }
}

export interface JobRunnerOptions {
  client: Etcd3;
  keyspace: Keyspace;
  /** Fenced by the election. */
  store: JobStore;
  /** Fenced by the election. */
  nodes: NodeStore;
  streams: AgentStreams;
  config: ConfigReader;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  /** How long a node's agent may be without a stream (before or during its command) before the node fails (default 60 s). */
  connectTimeoutMs?: number;
  /** Whole-command deadline sent to the agent (default 1 h). */
  commandTimeoutMs?: number;
  /** After a cancel, how long the agent gets to confirm before the node is marked cancelled anyway (default 15 s). */
  cancelGraceMs?: number;
  /** Per-unit progress is written at most this often per node (default 250 ms). */
  progressFlushMs?: number;
  /** Timer pass (default 10 s). */
  resyncIntervalMs?: number;
}

/** Raised inside a run when leadership is lost or the runner stops: stop without writing. */
class Halted extends Error {}

type Outcome = Pick<CommandResult__Output, 'outcome' | 'error' | 'reportJson' | 'appliedDigest' | 'output'> & { exitCode?: number };

/** What one waiting command wants to hear from AgentStreams. */
export interface CommandListener {
  nodeId: string;
  onResult(r: CommandResult__Output): void;
  onProgress(p: CommandProgress__Output): void;
  onConnected(): void;
  onDisconnected(): void;
}

export class JobRunner {
  private readonly log: Logger;
  private readonly runs = new Map<string, JobRun>();
  /**
   * One set of AgentStreams listeners for the runner, routing by command id and node id: a
   * listener per waiting command would make every message O(commands) with thousands of nodes.
   */
  private readonly byCommand = new Map<string, CommandListener>();
  private readonly byNode = new Map<string, Set<CommandListener>>();
  private readonly onResult = (nodeId: string, r: CommandResult__Output): void => {
    const l = this.byCommand.get(r.commandId);
    if (l?.nodeId === nodeId) l.onResult(r);
  };
  private readonly onProgress = (nodeId: string, p: CommandProgress__Output): void => {
    const l = this.byCommand.get(p.commandId);
    if (l?.nodeId === nodeId) l.onProgress(p);
  };
  private readonly onConnected = (s: AgentStream): void => {
    for (const l of [...(this.byNode.get(s.nodeId) ?? [])]) l.onConnected();
  };
  private readonly onDisconnected = (s: AgentStream): void => {
    for (const l of [...(this.byNode.get(s.nodeId) ?? [])]) l.onDisconnected();
  };

  listen(commandId: string, l: CommandListener): () => void {
    this.byCommand.set(commandId, l);
    let set = this.byNode.get(l.nodeId);
    if (!set) this.byNode.set(l.nodeId, (set = new Set()));
    set.add(l);
    return () => {
      if (this.byCommand.get(commandId) === l) this.byCommand.delete(commandId);
      set.delete(l);
      if (set.size === 0) this.byNode.delete(l.nodeId);
    };
  }
  private watcher?: Watcher;
  private timer?: NodeJS.Timeout;
  private passing?: Promise<void>;
  private again = false;
  private running = false;

  constructor(readonly o: JobRunnerOptions) {
    this.log = o.logger.child({ component: 'job-runner' });
  }

  /** Starts on leadership gain: a pass at once (resume), then on watch events and on a timer. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const streams = this.o.streams;
    streams.on('result', this.onResult);
    streams.on('progress', this.onProgress);
    streams.on('connected', this.onConnected);
    streams.on('disconnected', this.onDisconnected);
    try {
      const w = await this.o.client.watch().prefix(this.o.keyspace.jobsPrefix()).create();
      w.on('put', (kv) => {
        const parsed = this.o.keyspace.parseJobKey(kv.key.toString());
        if (parsed && parsed.nodeId === undefined) this.passSoon();
      });
      w.on('error', (err) => this.log.warn('jobs watch error', { err: errorMessage(err) }));
      if (!this.running) { await w.cancel(); return; }
      this.watcher = w;
    } catch (err) {
      this.log.warn('cannot watch jobs; relying on the timer', { err: errorMessage(err) });
    }
    this.timer = setInterval(() => this.passSoon(), this.o.resyncIntervalMs ?? 10_000);
    this.timer.unref();
    this.passSoon();
  }

  /** Stops on leadership loss or shutdown: running jobs halt without writing; the next leader resumes them. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    this.timer = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    await w?.cancel().catch(() => undefined);
    const runs = [...this.runs.values()];
    for (const r of runs) r.halt();
    await Promise.all(runs.map((r) => r.done));
    await this.passing?.catch(() => undefined);
    const streams = this.o.streams;
    streams.off('result', this.onResult);
    streams.off('progress', this.onProgress);
    streams.off('connected', this.onConnected);
    streams.off('disconnected', this.onDisconnected);
  }

  /** Resolves when no job is running here (tests). */
  async idle(): Promise<void> {
    while (this.runs.size > 0) await Promise.all([...this.runs.values()].map((r) => r.done));
  }

  activeJobIds(): string[] {
    return [...this.runs.keys()];
  }

  passSoon(): void {
    if (!this.running) return;
    if (this.passing) { this.again = true; return; }
    this.passing = this.pass()
      .catch((err: unknown) => this.log.warn('job pass failed', { err: errorMessage(err) }))
      .finally(() => {
        this.passing = undefined;
        if (this.again) { this.again = false; this.passSoon(); }
      });
  }

  private async pass(): Promise<void> {
    if (!this.o.isLeader()) return;
    const jobs = await this.o.store.list();
    for (const { record } of jobs) {
      const run = this.runs.get(record.id);
      if (run) {
        if (record.state === 'Cancelling') run.requestCancel();
        continue;
      }
      if (!record.claimed || !isActive(record.state) || !this.running) continue;
      const r = new JobRun(this, record.id);
      this.runs.set(record.id, r);
      r.start(); // sets r.done
      r.done.finally(() => {
        if (this.runs.get(record.id) === r) this.runs.delete(record.id);
      }).catch(() => undefined);
    }
  }
}

/** One job being run by this leader. */
class JobRun {
  done: Promise<void> = Promise.resolve();
  private readonly cancel = new AbortController();
  private readonly halted = new AbortController();
  private readonly log: Logger;
  private readonly o: JobRunnerOptions;
  private job!: JobRecord;
  private rev = '0';
  private nodes = new Map<string, JobNodeRecord>();
  private readonly bundles = new Map<string, Promise<Bundle>>();
  /** Per node: the chain of its record writes (progress and final), in order. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly runner: JobRunner, readonly jobId: string) {
    this.o = runner.o;
    this.log = runner.o.logger.child({ component: 'job-runner', jobId });
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
      await Promise.all(this.job.batches[b].map((id) => this.runNode(id)));
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
      await Promise.all(running.map((id) => this.runNode(id)));
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
    for (const id of this.job.nodeIds) {
      const rec = this.nodes.get(id) ?? pendingNode(id, batchOf(this.job, id));
      if (isNodeDone(rec.state)) continue;
      await this.writeNode({ ...rec, state: 'skipped', finishedAt: this.o.clock.iso(), error: cancelled ? CANCELLED_BY_OPERATOR : stopReason ?? 'not run' });
    }
    for (const id of this.job.nodeIds) await this.releaseClaim(id);
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
    await this.updateJob((j) => {
      const to: JobState = j.state === 'Cancelling' || cancelled ? 'Cancelled' : state;
      if (j.state === 'Pending' && to !== 'Cancelled') return { next: { ...j, state: 'Failed', finishedAt: this.o.clock.iso(), message }, type: 'job.failed', message };
      return { next: { ...j, state: to, finishedAt: this.o.clock.iso(), message: to === 'Cancelled' && !cancelled ? CANCELLED_BY_OPERATOR : message }, type: `job.${to.toLowerCase()}`, message };
    });
    this.log.info('job finished', { state: this.job.state, message: this.job.message });
  }

  /** Clears currentJob on a node still claimed by this job (one txn + event). */
  private async releaseClaim(id: string): Promise<void> {
    this.checkHalted();
    await this.o.nodes.mutate(id, (cur) => {
      if (!cur || cur.currentJob !== this.jobId) return undefined;
      const { currentJob: _c, ...rest } = cur;
      return { next: rest, event: { type: 'job.released', jobId: this.jobId, message: `released by job ${this.jobId}` } };
    });
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

  private bundleFor(ref: string): Promise<Bundle> {
    let p = this.bundles.get(ref);
    if (!p) {
      p = (async () => {
        const { name, version } = parseBundleRef(ref);
        const b = await this.o.config.bundle(name, version);
        const files = new Map<string, string>();
        for (const u of b.units) {
          if (u.kind === 'file' && u.source !== undefined && !files.has(u.source)) {
            const content = await this.o.config.file(u.source);
            if (content !== undefined) files.set(u.source, content);
          }
        }
        return inlineSources(b, (n) => files.get(n), 'push it with `clusterctl file push`');
      })();
      p.catch(() => this.bundles.delete(ref));
      this.bundles.set(ref, p);
    }
    return p;
  }

  private async runNode(id: string): Promise<void> {
    let rec = this.nodes.get(id) ?? pendingNode(id, batchOf(this.job, id));
    if (isNodeDone(rec.state)) return;
    if (this.cancel.signal.aborted && rec.state === 'pending') return;
    this.checkHalted();
    const job = this.job;
    const node = (await this.o.nodes.get(id))?.record;
    const bundleRef = (job.kind === 'decommission' || job.kind === 'verify' ? node?.appliedConfig : undefined) ?? job.bundle;
    if (rec.state === 'pending') {
      const attempt = rec.attempt + 1;
      rec = { ...rec, state: 'running', attempt, commandId: commandIdFor(this.jobId, id, attempt), startedAt: this.o.clock.iso(), units: [], ...(bundleRef ? { bundle: bundleRef } : {}) };
      await this.writeNode(rec);
    }
    const working = job.dryRun ? undefined : WORKING_STATE[job.kind];
    let outcome: Outcome;
    try {
      if (!node) throw new FailedPreconditionError(`node ${id} no longer exists`);
      if (working) {
        await this.o.nodes.mutate(id, (cur) => {
          if (!cur) throw new FailedPreconditionError(`node ${id} no longer exists`);
          if (cur.state === working) return undefined;
          return { next: { ...cur, state: working, currentJob: this.jobId }, event: { type: 'node.state', jobId: this.jobId, message: `${job.kind} started by job ${this.jobId}` } };
        });
      }
      if (job.kind === 'exec') {
        // One argv, no bundle: the agent runs it under its root and kills it at the timeout.
        const exec = job.exec ?? { argv: [], timeoutMs: 0 };
        outcome = await this.dispatch(id, { id: rec.commandId, jobId: this.jobId, kind: 'COMMAND_KIND_EXEC', argv: exec.argv, timeoutMs: exec.timeoutMs }, rec);
        this.checkHalted();
        await this.finishNode(id, rec, outcome, undefined, undefined);
        return;
      }
      if (!bundleRef) throw new FailedPreconditionError(`node ${id} has no bundle to ${job.kind}`);
      const bundle = await this.bundleFor(bundleRef);
      const command: Command = {
        id: rec.commandId, jobId: this.jobId, kind: commandKindFor(job.kind, job.dryRun),
        // Variables merged for this node; facts templates are rendered by the agent with its own facts.
        bundleJson: JSON.stringify({ ...bundle, variables: { ...bundle.variables, ...job.variables } }),
        variables: job.variables,
        timeoutMs: this.o.commandTimeoutMs ?? 3_600_000,
      };
      outcome = await this.dispatch(id, command, rec);
    } catch (err) {
      if (err instanceof Halted || err instanceof NotLeaderError) throw err;
      outcome = { outcome: 'failed', error: errorMessage(err), reportJson: '', appliedDigest: '', output: '' };
    }
    this.checkHalted();
    await this.finishNode(id, rec, outcome, bundleRef, working);
  }

  private async finishNode(id: string, rec: JobNodeRecord, r: Outcome, bundleRef: string | undefined, working: LifecycleState | undefined): Promise<void> {
    const job = this.job;
    const cancelled = r.outcome === 'cancelled' && this.cancel.signal.aborted;
    const verification = job.kind === 'verify' && !job.dryRun ? completedVerification(r.reportJson) : undefined;
    // A verification that ran is a success whatever it found: drift is its result, recorded in
    // driftJson (and turned into exit code 2 by clusterctl), not a failure that would count
    // against --max-failures. Only a check that could not run fails the node.
    const ok = r.outcome === 'succeeded' || verification !== undefined;
    const error = ok ? undefined : cancelled ? CANCELLED_BY_OPERATOR : r.error || `command ${r.outcome}`;
    const current = this.nodes.get(id) ?? rec;
    const output = r.output ? boundOutput(r.output) : current.output;
    await this.writeNode({
      ...current,
      state: ok ? 'succeeded' : cancelled ? 'cancelled' : 'failed',
      finishedAt: this.o.clock.iso(),
      ...(error ? { error } : {}),
      ...(output ? { output } : {}),
      ...(job.dryRun && r.reportJson ? { planJson: r.reportJson } : {}),
      ...(verification?.drifted ? { driftJson: r.reportJson } : {}),
      ...(job.kind === 'exec' && r.exitCode !== undefined && r.outcome !== 'timed_out' && r.outcome !== 'cancelled' ? { exitCode: r.exitCode } : {}),
    });
    this.checkHalted();
    const done = DONE_STATE[job.kind];
    await this.o.nodes.mutate(id, (cur) => {
      if (!cur) return undefined;
      const { currentJob: _c, ...rest } = cur;
      const next: NodeRecord = { ...rest };
      if (cur.currentJob !== undefined && cur.currentJob !== this.jobId) next.currentJob = cur.currentJob;
      if (job.kind === 'exec') {
        // exec moves no lifecycle state and leaves lastError alone: its result is the job's.
        if (cur.currentJob !== this.jobId) return undefined;
        return { next, event: { type: 'job.node', jobId: this.jobId, message: `exec ${ok ? 'succeeded' : `failed: ${error ?? ''}`}` } };
      }
      let message: string;
      if (job.dryRun) {
        message = `dry run ${ok ? 'planned' : `failed: ${error ?? ''}`}`;
      } else if (ok) {
        if (working && done && cur.state === working) next.state = done;
        if (job.kind === 'commission' && job.group) next.group = job.group;
        if (job.kind === 'decommission') {
          delete next.appliedConfig; delete next.appliedDigest; delete next.desiredConfig;
        } else if (job.kind !== 'verify' && bundleRef) {
          next.appliedConfig = bundleRef;
          next.desiredConfig = bundleRef;
          if (r.appliedDigest) next.appliedDigest = r.appliedDigest;
        }
        delete next.lastError;
        message = `${job.kind} succeeded`;
      } else {
        if (working && cur.state === working) next.state = 'Failed';
        // A failed commission may have applied part of the group's bundle: keep the group so
        // the node can still be decommissioned (or upgraded) with that bundle (no dead end).
        if (job.kind === 'commission' && job.group && !job.dryRun && !next.group) next.group = job.group;
        next.lastError = cancelled ? CANCELLED_BY_OPERATOR : `${job.kind} failed (job ${this.jobId}): ${error ?? ''}`;
        message = next.lastError;
      }
      return { next, event: { type: next.state !== cur.state ? 'node.state' : 'job.node', jobId: this.jobId, message } };
    });
    this.log.info('node finished', { nodeId: id, outcome: r.outcome, error });
  }

  /**
   * Sends the command and waits for its result, through reconnects: the same command id is
   * re-sent on every new stream of the node (the agent dedups by id). Fails the node when the
   * agent has no stream for connectTimeoutMs; on cancel sends CancelCommand and waits for the
   * agent's confirmation (bounded).
   */
  private dispatch(nodeId: string, command: Command, rec: JobNodeRecord): Promise<Outcome> {
    const { streams } = this.o;
    const connectTimeoutMs = this.o.connectTimeoutMs ?? 60_000;
    const flushMs = this.o.progressFlushMs ?? 250;
    const commandId = command.id ?? '';
    let live = { ...rec };
    let outputText = rec.output ?? '';
    return new Promise<Outcome>((resolve, reject) => {
      let settled = false;
      let waitTimer: NodeJS.Timeout | undefined;
      let cancelTimer: NodeJS.Timeout | undefined;
      let flushTimer: NodeJS.Timeout | undefined;
      let everSent = false;
      const deadline = setTimeout(() => {
        trySend({ cancel: { commandId, reason: 'command deadline passed' } });
        settle({ outcome: 'timed_out', error: `no result within ${command.timeoutMs ?? 0} ms`, reportJson: '', appliedDigest: '', output: outputText });
      }, (command.timeoutMs ?? 3_600_000) + 30_000);

      let unlisten = (): void => undefined;
      const cleanup = (): void => {
        clearTimeout(waitTimer); clearTimeout(cancelTimer); clearTimeout(flushTimer); clearTimeout(deadline);
        unlisten();
        this.cancel.signal.removeEventListener('abort', onCancel);
        this.halted.signal.removeEventListener('abort', onHalt);
      };
      const settle = (r: Outcome): void => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve(r);
      };
      const trySend = (msg: Parameters<AgentStreams['send']>[1]): boolean => {
        try { streams.send(nodeId, msg); return true; } catch { return false; }
      };
      const waitForAgent = (why: string): void => {
        if (waitTimer || settled) return;
        waitTimer = setTimeout(() => {
          settle({ outcome: 'failed', error: `agent of node ${nodeId} ${why} and did not reconnect within ${Math.round(connectTimeoutMs / 1000)} s`, reportJson: '', appliedDigest: '', output: outputText });
        }, connectTimeoutMs);
      };
      const send = (): void => {
        if (settled) return;
        if (this.cancel.signal.aborted) {
          // Cancelled while the agent was away: ask it to stop whatever it still runs.
          trySend({ cancel: { commandId, reason: CANCELLED_BY_OPERATOR } });
          return;
        }
        const boot = streams.get(nodeId)?.bootId ?? '';
        if (live.bootId && boot && boot !== live.bootId) {
          // The agent rebooted while the command ran (or before a resumed leader re-sent it):
          // the machine is not in the state the command started from, and the agent no longer
          // knows the command, so sending it again would run it twice. Fail the node instead.
          settle({ outcome: 'failed', error: `agent of node ${nodeId} rebooted while the command ran (boot id ${live.bootId} → ${boot}); not re-sent`, reportJson: '', appliedDigest: '', output: outputText });
          return;
        }
        if (trySend({ command })) {
          everSent = true;
          if (!live.bootId && boot) {
            live = { ...live, bootId: boot };
            this.nodes.set(nodeId, live);
            this.writeNode(live).catch((err: unknown) => this.log.debug('boot id write failed', { nodeId, err: errorMessage(err) }));
          }
          clearTimeout(waitTimer);
          waitTimer = undefined;
        } else {
          waitForAgent(everSent ? 'went unreachable mid-command' : 'is not connected');
        }
      };
      const onProgress = (p: CommandProgress__Output): void => {
        const units = live.units.filter((u) => u.unitId !== p.unitId);
        const idx = live.units.findIndex((u) => u.unitId === p.unitId);
        const entry = { unitId: p.unitId, status: p.status, message: p.message };
        if (idx >= 0) units.splice(idx, 0, entry); else units.push(entry);
        if (p.output) outputText = boundOutput(outputText + p.output);
        live = { ...live, units, ...(outputText ? { output: outputText } : {}) };
        if (!flushTimer) {
          flushTimer = setTimeout(() => {
            flushTimer = undefined;
            if (!settled) this.writeNode(live).catch((err: unknown) => this.log.debug('progress write failed', { nodeId, err: errorMessage(err) }));
          }, flushMs);
        }
        this.nodes.set(nodeId, live);
      };

      const onCancel = (): void => {
        const reachable = trySend({ cancel: { commandId, reason: CANCELLED_BY_OPERATOR } });
        if (!reachable) {
          settle({ outcome: 'cancelled', error: `${CANCELLED_BY_OPERATOR} (agent not connected)`, reportJson: '', appliedDigest: '', output: outputText });
          return;
        }
        cancelTimer = setTimeout(() => settle({ outcome: 'cancelled', error: `${CANCELLED_BY_OPERATOR} (the agent did not confirm within ${this.o.cancelGraceMs ?? 15_000} ms)`, reportJson: '', appliedDigest: '', output: outputText }), this.o.cancelGraceMs ?? 15_000);
      };
      const onHalt = (): void => {
        if (settled) return;
        settled = true;
        cleanup();
        reject(new Halted('leadership lost or runner stopped'));
      };
      unlisten = this.runner.listen(commandId, {
        nodeId,
        onResult: (r) => settle(r),
        onProgress,
        onConnected: () => send(),
        onDisconnected: () => { if (!streams.isConnected(nodeId)) waitForAgent('went unreachable mid-command'); },
      });
      this.halted.signal.addEventListener('abort', onHalt, { once: true });
      if (this.cancel.signal.aborted) onCancel();
      else {
        this.cancel.signal.addEventListener('abort', onCancel, { once: true });
        send();
      }
    });
  }
}

/**
 * A VERIFY report (agent/command-executor.ts summariseReport) of a verification that ran to the
 * end: `{mode: 'verify', drift: [...], probes: [...]}` with no `failure`. Undefined for anything
 * else (no report, unreadable, or a unit whose check itself failed).
 */
export function completedVerification(reportJson: string): { drifted: boolean } | undefined {
  if (!reportJson) return undefined;
  let r: unknown;
  try {
    r = JSON.parse(reportJson);
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as { mode?: unknown; drift?: unknown; probes?: unknown; failure?: unknown };
  if (o.mode !== 'verify' || o.failure !== undefined || !Array.isArray(o.drift) || !Array.isArray(o.probes)) return undefined;
  return { drifted: o.drift.length > 0 || o.probes.length > 0 };
}
