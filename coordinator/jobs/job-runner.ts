/**
 * The leader's job runner. Level-triggered, on the shared ReconcileLoop: a pass lists jobs/ and
 * starts every claimed Pending/Running/Pausing/Cancelling job this replica is not already running
 * (one JobProgress each, job-progress.ts), and hands a Cancelling job's cancel to its run. A
 * Paused job has no run: its resume (→ Running) or cancel (→ Cancelling) starts one. Passes
 * run at start (every leadership gain), on changes to job records and on a timer.
 */
import type { Etcd3 } from 'etcd3';
import { ReconcileLoop, watchPrefixes, type Clock, type PrefixWatch, type Keyspace, type Logger } from '../../shared';
import type { AgentStreams } from '../agent-streams';
import type { NodeStore } from '../node-store';
import { CommandRouter, type DispatchTimings } from './command-dispatch';
import type { ConfigReader } from './config-records';
import { JobProgress } from './job-progress';
import { isRunnable } from './job-record';
import type { JobStore } from './job-store';
import type { JobObserver } from './job-observer';

/** The runner's timings: every one has a default, and coordinator options may override it. */
export interface JobRunnerTimings {
  /**
   * How long a node's agent may be without a stream (before or during its command) before the
   * node fails.
   * @default 60000 (60 s)
   */
  connectTimeoutMs?: number;
  /**
   * Whole-command deadline sent to the agent.
   * @default 3600000 (1 h)
   */
  commandTimeoutMs?: number;
  /**
   * How long past a command's deadline the runner waits for the agent's result before it
   * records the node timed out (the agent enforces the deadline; this covers one it cannot report).
   * @default 30000 (30 s)
   */
  resultGraceMs?: number;
  /**
   * After a cancel, how long the agent gets to confirm before the node is marked cancelled anyway.
   * @default 15000 (15 s)
   */
  cancelGraceMs?: number;
  /**
   * Per-unit progress is written at most this often per node.
   * @default 250
   */
  progressFlushMs?: number;
  /**
   * Progress writes a second of all the commands in flight together (DispatchTimings).
   * @default 200
   */
  progressWritesPerSecond?: number;
  /**
   * Period of the timer pass (a safety net for a missed watch event).
   * @default 10000 (10 s)
   */
  resyncIntervalMs?: number;
}

export const JOB_RUNNER_DEFAULTS: Readonly<Required<JobRunnerTimings>> = {
  connectTimeoutMs: 60_000,
  commandTimeoutMs: 3_600_000,
  resultGraceMs: 30_000,
  cancelGraceMs: 15_000,
  progressFlushMs: 250,
  progressWritesPerSecond: 200,
  resyncIntervalMs: 10_000,
};

export interface JobRunnerOptions extends JobRunnerTimings {
  client: Etcd3;
  keyspace: Keyspace;
  /** Fenced by the election. */
  store: JobStore;
  /** Fenced by the election. */
  nodes: NodeStore;
  streams: AgentStreams;
  config: ConfigReader;
  isLeader: () => boolean;
  /** Time, the loop's timers and every command timer. */
  clock: Clock;
  logger: Logger;
  /** Told of finished jobs and nodes and of commands in flight (metrics). */
  observer?: JobObserver;
}

export class JobRunner {
  private readonly log: Logger;
  private readonly runs = new Map<string, JobProgress>();
  private readonly router: CommandRouter;
  private readonly loop: ReconcileLoop;
  private readonly timings: DispatchTimings;
  private watcher?: PrefixWatch;
  private running = false;
  private stopping?: Promise<void>;

  constructor(readonly o: JobRunnerOptions) {
    this.log = o.logger.child({ component: 'job-runner' });
    this.router = new CommandRouter(o.streams);
    const d = JOB_RUNNER_DEFAULTS;
    this.timings = {
      connectTimeoutMs: o.connectTimeoutMs ?? d.connectTimeoutMs,
      commandTimeoutMs: o.commandTimeoutMs ?? d.commandTimeoutMs,
      resultGraceMs: o.resultGraceMs ?? d.resultGraceMs,
      cancelGraceMs: o.cancelGraceMs ?? d.cancelGraceMs,
      progressFlushMs: o.progressFlushMs ?? d.progressFlushMs,
      progressWritesPerSecond: o.progressWritesPerSecond ?? d.progressWritesPerSecond,
    };
    this.loop = new ReconcileLoop({
      name: 'job runner', pass: () => this.pass(), clock: o.clock, logger: this.log,
      intervalMs: o.resyncIntervalMs ?? d.resyncIntervalMs, when: o.isLeader,
    });
  }

  /** Starts on leadership gain: a pass at once (resume), then on job changes and on a timer. */
  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.running = true;
    this.router.attach();
    this.watcher = this.watchJobs();
    void this.loop.start();
    return Promise.resolve();
  }

  /**
   * Stops on leadership loss or shutdown: running jobs halt without writing; the next leader
   * resumes them. Every caller (leadership loss and shutdown may both call) waits for the end.
   */
  stop(): Promise<void> {
    if (this.running) {
      this.running = false;
      this.stopping = this.halt();
    }
    return this.stopping ?? Promise.resolve();
  }

  private async halt(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    await Promise.all([this.loop.stop(), w?.stop()]);
    const runs = [...this.runs.values()];
    for (const r of runs) r.halt();
    await Promise.all(runs.map((r) => r.done));
    // A start() while this stop ran keeps the routes it needs.
    if (!this.running) this.router.detach();
  }

  /** Resolves when no job is running here (tests). */
  async idle(): Promise<void> {
    while (this.runs.size > 0) await Promise.all([...this.runs.values()].map((r) => r.done));
  }

  activeJobIds(): string[] {
    return [...this.runs.keys()];
  }

  /**
   * A pass on every put or delete of a job record and on every (re)connect of the watch; not
   * on the per-node records under jobs/<id>/nodes/, which change with every progress flush —
   * each would make a pass that lists all jobs.
   */
  private watchJobs(): PrefixWatch {
    const ks = this.o.keyspace;
    return watchPrefixes(this.o.client, [ks.jobsPrefix()], () => this.loop.trigger(), this.log, {
      keyFilter: (key) => { const parsed = ks.parseJobKey(key); return parsed !== undefined && parsed.nodeId === undefined; },
    });
  }

  private async pass(): Promise<void> {
    const jobs = await this.o.store.list();
    for (const { record } of jobs) {
      const run = this.runs.get(record.id);
      if (run) {
        if (record.state === 'Cancelling') run.requestCancel();
        continue;
      }
      if (!record.claimed || !isRunnable(record.state) || !this.running) continue;
      const r = new JobProgress({ ...this.o, router: this.router, timings: this.timings }, record.id);
      this.runs.set(record.id, r);
      r.start(); // sets r.done
      r.done.finally(() => {
        if (this.runs.get(record.id) === r) this.runs.delete(record.id);
        // A resume written while this run was ending (it just paused) found the run still here.
        if (r.paused) this.loop.trigger();
      }).catch(() => undefined);
    }
  }
}
