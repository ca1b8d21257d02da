/**
 * Fan-out benchmark: one coordinator, N simulated agents (bench/sim-fleet.ts; one sim-fleet
 * process per 1,250 agents unless --fleet-processes says otherwise), N = 1,000 / 5,000 /
 * 10,000, each size on a fresh etcd and coordinator:
 *
 *   1. time until all N are registered (member keys) and attached (Welcome on their stream),
 *      and until the coordinator has recorded every node as Discovered. Agents start in a
 *      window of joins in flight (--start-window), not at a fixed rate: see sim-fleet.ts;
 *   2. coordinator RSS at idle with N attached (and the sim-fleet's and etcd's);
 *   3. a job across all N nodes, all at once: a bundle of one file unit (PushBundle), a group
 *      (SetGroup), StartJob kind "commission" naming the N node ids; each agent really runs
 *      the APPLY with the CommandExecutor into its tmpfs sandbox. Measured from the StartJob
 *      call to each node's final per-node record in etcd (jobs/<id>/nodes/<node>, seen
 *      through a watch): p50 / p99 per node and the total; coordinator RSS peak (sampled every
 *      200 ms from /proc/<pid>/status) during the fan-out.
 *
 * Each size gives up after --size-timeout and prints what it measured up to then. When the
 * coordinator does not serve JobService / ConfigService yet, step 3 says so and is skipped.
 *
 *   npm run build && node dist/bench/fanout.js [--sizes 1000,5000,10000] [--json]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Job__Output } from '../generated/cluster/v1/Job';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { decodeNode } from '../shared/records';
import { DEFAULT_SETTINGS } from '../coordinator/options';
import { openFilesLimit } from '../coordinator/fd-headroom';
import { adminClients, unary, type AdminClients } from './admin-client';
import { topFrames, type Frame } from './cpu-profile';
import { PhaseCpu, cpuMs, etcdPid, machineBusyMs } from './proc-cpu';
import { RssSampler, SimFleet, machine, rssMiB, stats, type ProgressEvent, type Stats } from './sim-fleet';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  sizes: { kind: 'list', default: ['1000', '5000', '10000'], placeholder: 'N[,N...]', description: 'fleet sizes, each run separately' },
  leaseTtl: { kind: 'int', default: 45, min: 2, placeholder: 'SECONDS', description: 'agents\' membership lease TTL' },
  electionTtl: {
    kind: 'int', default: 10, min: 2, placeholder: 'SECONDS',
    description: 'the coordinator\'s election TTL: this measures a fan-out, not a failover, and at the 2 s default a loaded 2-core box lost the leader (and every stream) in the join storm',
  },
  startWindow: {
    kind: 'int', default: 200, min: 0, placeholder: 'K',
    description: 'joins in flight per sim-fleet process: an agent starts when one of the K before it has registered and attached (0 = no window)',
  },
  startRate: { kind: 'int', default: 0, min: 0, placeholder: 'PER_SECOND', description: 'agents started per second at most, per sim-fleet process (0 = no rate limit)' },
  joinMaxLagMs: {
    kind: 'int', default: 0, min: 0, placeholder: 'MS',
    description: 'each sim-fleet starts no agent while its event loop is later than MS: the attached agents\' PING answers come first (0 = off)',
  },
  fleetProcesses: {
    kind: 'int', default: 0, min: 0, placeholder: 'K',
    description: 'sim-fleet processes the N agents are split over (0 = one per 1,250 agents: one loop answers the keepalive PINGs of all its agents)',
  },
  grpcKeepalive: {
    kind: 'duration', unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'the coordinator\'s --grpc-keepalive (PING period on every agent connection) [default: the coordinator\'s, 30 s]; a value other than the default is printed with the results',
  },
  grpcKeepaliveTimeout: {
    kind: 'duration', unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'the coordinator\'s --grpc-keepalive-timeout [default: the coordinator\'s, 10 s]',
  },
  tcpLiveness: {
    kind: 'duration', unit: 's', min: 0, placeholder: 'SECONDS',
    description: 'the coordinator\'s --tcp-liveness (the kernel closes a connection silent this long; 0 = off) [default: the coordinator\'s, 3 s]',
  },
  sizeTimeout: { kind: 'int', default: 300, min: 30, placeholder: 'SECONDS', description: 'give up on one size after this long (prints what it has)' },
  cpuProf: { kind: 'boolean', description: 'run the coordinator under node --cpu-prof and print the top 10 frames of each size\'s profile (self time)' },
  jobCpuProf: { kind: 'int', min: 1, placeholder: 'SECONDS', description: 'profile the coordinator for SECONDS from the StartJob call (coordinator --cpu-profile start-job) and print the job phase\'s top 10 frames; keeps the logs' },
  units: { kind: 'int', default: 1, min: 1, placeholder: 'K', description: 'file units in the commissioned bundle (each agent writes K files; the leader handles their progress)' },
  attachOnly: { kind: 'boolean', description: 'stop each size after the idle figures (RSS, CPU): no job' },
  json: { kind: 'boolean', description: 'print the results as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dirs (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/fanout.js [--sizes 1000,5000,10000] [--start-window K] [--fleet-processes K] [--join-max-lag-ms MS] [--size-timeout S] [--units K] [--attach-only] [--grpc-keepalive S] [--tcp-liveness S] [--cpu-prof | --job-cpu-prof SECONDS] [--json]';

/**
 * The commissioned bundle: `units` file units, each rendered with the node's hostname (one
 * unit by default; more show what a bundle's size costs the leader: per-unit progress).
 */
function bundleYaml(units: number): string {
  const unit = (i: number): string => `  - id: marker${units === 1 ? '' : `-${i}`}
    kind: file
    path: /etc/bench-fanout${units === 1 ? '' : `-${i}`}.conf
    content: |
      node {{ facts.hostname }} commissioned by the fan-out benchmark
    mode: "0644"
`;
  return `name: bench-fanout
version: "1"
units:
${Array.from({ length: units }, (_, i) => unit(i + 1)).join('')}`;
}

const FINAL_NODE_STATES = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);

/** CPU % of one core used by `pids` (summed) over `ms`. */
async function cpuPctOver(pids: readonly number[], ms: number): Promise<number> {
  const sum = (): number => pids.reduce((a, p) => a + cpuMs(p), 0);
  const before = sum();
  const t = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  return Math.round(((sum() - before) / (Date.now() - t)) * 1000) / 10;
}

/** "agent connected" / "agent disconnected" lines of a coordinator log, the latter by reason. */
function streamCounts(logFile: string): { connected: number; disconnected: number; why: Record<string, number> } {
  const out = { connected: 0, disconnected: 0, why: {} as Record<string, number> };
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (line.includes('"msg":"agent connected"')) out.connected++;
    else if (line.includes('"msg":"agent disconnected"')) {
      out.disconnected++;
      let why = '?';
      try {
        const w = (JSON.parse(line) as { why?: unknown }).why;
        if (typeof w === 'string') why = w.slice(0, 80);
      } catch {
        // a torn last line
      }
      out.why[why] = (out.why[why] ?? 0) + 1;
    }
  }
  return out;
}

/** Per-node final records of one job, from a watch over jobs/. */
class JobWatch {
  private watcher?: Watcher;
  readonly finished = new Map<string, { at: number; state: string }>();
  jobId?: string;
  jobState?: string;
  private waiter?: { n: number; resolve: () => void };

  constructor(private readonly client: Etcd3, private readonly ks: Keyspace) {}

  async start(): Promise<void> {
    this.watcher = await this.client.watch().prefix(this.ks.jobsPrefix()).create();
    this.watcher.on('put', (kv: IKeyValue) => {
      const at = Date.now();
      const parsed = this.ks.parseJobKey(kv.key.toString());
      if (!parsed || (this.jobId && parsed.jobId !== this.jobId)) return;
      let v: { state?: string };
      try {
        v = JSON.parse(kv.value.toString()) as { state?: string };
      } catch {
        return;
      }
      if (!parsed.nodeId) {
        this.jobState = v.state;
        if (v.state && ['Succeeded', 'Failed', 'Cancelled', 'RolledBack'].includes(v.state)) this.check(true);
        return;
      }
      if (v.state && FINAL_NODE_STATES.has(v.state) && !this.finished.has(parsed.nodeId)) {
        this.finished.set(parsed.nodeId, { at, state: v.state });
        this.check(false);
      }
    });
  }

  /** Resolves when `n` nodes are final or the job itself ended. */
  done(n: number): Promise<void> {
    return new Promise((resolve) => { this.waiter = { n, resolve }; this.check(false); });
  }

  private check(jobEnded: boolean): void {
    if (this.waiter && (jobEnded || this.finished.size >= this.waiter.n)) this.waiter.resolve();
  }

  async stop(): Promise<void> {
    await this.watcher?.cancel();
  }
}

interface SizeResult {
  agents: number;
  /** sim-fleet processes the agents were split over. */
  fleetProcesses: number;
  completed: boolean;
  problem?: string;
  /** The coordinator's open-files limit (soft) during the size: one descriptor per agent connection. */
  coordinatorFdLimit?: number;
  registerAllMs?: number;
  attachAllMs?: number;
  discoveredAllMs?: number;
  rssIdleMiB?: { coordinator: number; simFleet: number; etcd: number };
  /**
   * CPU (% of one core, all threads; /proc/<pid>/stat) over 10 s at idle with all N attached:
   * the coordinator's was mostly its gRPC keepalive PINGs (one per agent connection every 2 s,
   * before the kernel's TCP liveness replaced them: now every 30 s) and their answers; the
   * sim-fleet's is N agents' lease keepalives (and the PING answers).
   */
  cpuIdlePct?: { coordinator: number; simFleet: number; etcd: number; machine: number; softirq: number };
  /** The sim-fleet processes from start to all attached: their worst loop delay, CPU, GC, and streams that ended. */
  fleetUntilAttached?: { loopMaxMs: number; loopP99MaxMs: number; cpuPctMean: number; cpuPctMax: number; gcMaxMs: number; disconnects: number; joinsHeldMs: number };
  /** The coordinator's log over the size: streams welcomed ("agent connected") and ended ("agent disconnected"), by reason. */
  coordinatorStreams?: { connected: number; disconnected: number; why: Record<string, number> };
  /** When a size gave up: what the fleet reported last, and the RSS at that moment. */
  atGiveUp?: { registered: number; attached: number; rssMiB: { coordinator: number; simFleet: number; etcd: number } };
  job?: {
    available: boolean;
    note?: string;
    startJobCallMs?: number;
    totalMs?: number;
    perNode?: Stats;
    succeeded?: number;
    failed?: number;
    jobState?: string;
    rssPeakMiB?: { coordinator: number; simFleet: number; etcd: number };
    /**
     * CPU ms (utime + stime from /proc/<pid>/stat) of each process from the StartJob call to the
     * last node result (`wallMs`): which one is the bottleneck. `bench` is this process (the watch).
     */
    cpu?: { wallMs: number; cpuMs: { coordinator: number; simFleet: number; etcd: number; bench: number } };
    /**
     * Over the same phase: etcd revisions (one per write transaction that changed something: the
     * leader's group commits and the agents' own writes) and the coordinator's etcd transactions
     * (reads and writes, its cluster_etcd_txn_duration_seconds count) with their summed latency.
     */
    etcd?: {
      revisions: number; coordinatorTxns: number; coordinatorTxnSeconds: number;
      /**
       * etcd's own watch figures (its /metrics): watchers open at StartJob (every client's: the
       * coordinator's, one per sim agent, the bench's) and watch events sent over the phase, one
       * per event per watcher it matches (`etcd_debugging_mvcc_events_total`).
       */
      watchers: number; watchEventsSent: number;
    };
    /** `cpu` split into the idle fleet's background and the job's own work (`jobSplit`). */
    split?: JobSplit;
  };
  /** With --cpu-prof: the coordinator's top frames over the whole size (start, attach, job). */
  cpuProfile?: { file: string; totalMs: number; frames: Frame[] };
  /** With --job-cpu-prof: the coordinator's top frames from StartJob on. */
  jobCpuProfile?: { file: string; seconds: number; totalMs: number; frames: Frame[] };
}

/**
 * The job phase's CPU in two parts: what the attached fleet costs anyway (each process's CPU at
 * idle with all N attached, `cpuIdlePct`, for as long as the job ran: lease keepalives, PINGs,
 * the leader's loops) and the rest, the job's own work (commands, applies, results, etcd
 * writes and watch events). On a real fleet the sim-fleet's share of both runs on the N
 * machines; here every process shares this box's cores. A process's background is at most
 * the CPU it used in the phase (its work is then 0), so the two parts add up to the phase's CPU.
 */
export interface JobSplit {
  backgroundCpuMs: { coordinator: number; simFleet: number; etcd: number };
  workCpuMs: { coordinator: number; simFleet: number; etcd: number; bench: number };
  /**
   * Σ work / cores: the least wall time the job's own work takes on this box's cores, every core
   * busy with it (a lower bound: the processes' work does not spread perfectly over the cores).
   */
  workOnCoresWallMs: number;
}

export function jobSplit(cpu: { wallMs: number; cpuMs: { coordinator: number; simFleet: number; etcd: number; bench: number } }, idlePct: { coordinator: number; simFleet: number; etcd: number }, cores: number): JobSplit {
  const bg = (pct: number, used: number): number => Math.min(used, Math.round((pct / 100) * cpu.wallMs));
  const c = cpu.cpuMs;
  const backgroundCpuMs = { coordinator: bg(idlePct.coordinator, c.coordinator), simFleet: bg(idlePct.simFleet, c.simFleet), etcd: bg(idlePct.etcd, c.etcd) };
  const workCpuMs = {
    coordinator: c.coordinator - backgroundCpuMs.coordinator,
    simFleet: c.simFleet - backgroundCpuMs.simFleet,
    etcd: c.etcd - backgroundCpuMs.etcd,
    bench: c.bench,
  };
  const work = workCpuMs.coordinator + workCpuMs.simFleet + workCpuMs.etcd + workCpuMs.bench;
  return { backgroundCpuMs, workCpuMs, workOnCoresWallMs: Math.round(work / Math.max(1, cores)) };
}

function splitLine(s: JobSplit): string {
  const b = s.backgroundCpuMs;
  const w = s.workCpuMs;
  const sec = (ms: number): string => (ms / 1000).toFixed(1);
  return `of which the idle fleet's background (each process's idle rate × the job's wall): ${sec(b.coordinator + b.simFleet + b.etcd)} CPU-s (coordinator ${sec(b.coordinator)}, sim-fleet ${sec(b.simFleet)}, etcd ${sec(b.etcd)}); ` +
    `the job's own work: ${sec(w.coordinator + w.simFleet + w.etcd + w.bench)} CPU-s (coordinator ${sec(w.coordinator)}, sim-fleet ${sec(w.simFleet)}, etcd ${sec(w.etcd)}, bench ${sec(w.bench)}), at least ${sec(s.workOnCoresWallMs)} s of wall time on this box's cores`;
}

function withDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`gave up waiting for ${what} (size timeout)`)), Math.max(0, deadline - Date.now())); }),
  ]);
}

/**
 * Agents per sim-fleet process when --fleet-processes is 0. Every attached agent's connection
 * gets a keepalive PING each second from the coordinator, dropped when unanswered for 2 s (its
 * defaults), and one process's loop answers all of its agents' PINGs: at 5,000 in one process
 * the loop went 3.7 s late as the last agents joined and every stream was dropped (4,939 ended,
 * none re-attached in 240 s); split over 4 processes (1,250 each) on the same 2 cores the worst
 * loop delay was 1.8 s and all 5,000 attached (bench/README.md "fanout").
 */
const AGENTS_PER_FLEET = 1250;

/**
 * The soft open-files limit of `pid` (/proc/<pid>/limits, read as the coordinator reads its own),
 * or undefined. (Linux never reports it "unlimited": RLIMIT_NOFILE is capped by fs.nr_open.)
 */
function fdLimit(pid: number): number | undefined {
  try {
    return openFilesLimit(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The coordinator holds one descriptor per agent connection: below N + 2,048 the connections
 * past the limit fail with EMFILE (and so does its own redial to etcd: seen at 20,000 on a box
 * whose hard limit was 20,000). Raises it with prlimit(1) when it can (root, as the packaged
 * unit's LimitNOFILE=65536 would), and says so either way; returns the limit in force.
 */
function ensureFdLimit(pid: number, n: number, say: (s: string) => void): number | undefined {
  const before = fdLimit(pid);
  const need = n + 2048;
  if (before === undefined || before >= need) return before;
  const want = Math.max(65_536, need);
  const r = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${want}:${want}`], { encoding: 'utf8' });
  const after = fdLimit(pid);
  if (after !== undefined && after >= need) say(`N=${n}: coordinator open-files limit raised from ${before} to ${after} (prlimit; the packaged unit sets LimitNOFILE=65536)`);
  else say(`N=${n}: coordinator open-files limit ${after ?? before} is below ${need} and could not be raised (${(r.stderr || r.error?.message || 'prlimit failed').trim()}): connections past it fail with EMFILE`);
  return after ?? before;
}

async function runSize(n: number, o: { units: number; attachOnly: boolean; leaseTtl: number; electionTtl: number; grpcKeepaliveMs?: number; grpcKeepaliveTimeoutMs?: number; tcpLivenessMs?: number; startRate: number; startWindow: number; joinMaxLagMs: number; fleetProcesses: number; sizeTimeoutMs: number; keep: boolean; cpuProf: boolean; jobCpuProfSeconds?: number }, say: (s: string) => void): Promise<SizeResult> {
  const deadline = Date.now() + o.sizeTimeoutMs;
  const k = Math.min(n, o.fleetProcesses > 0 ? o.fleetProcesses : Math.ceil(n / AGENTS_PER_FLEET));
  const result: SizeResult = { agents: n, fleetProcesses: k, completed: false };
  const etcd = await EtcdServer.start('bench-fanout');
  const cluster = new TestCluster(etcd, { name: `bench-fanout-${n}`, keepDir: o.keep });
  const client = etcd.client();
  const ks = new Keyspace();
  const sandbox = mkdtempSync('/dev/shm/bench-fanout-');
  const jobs = new JobWatch(client, ks);
  const fleets: SimFleet[] = [];
  const samplers: RssSampler[] = [];
  let admin: AdminClients | undefined;
  const jobProfileFile = join(cluster.logDir, 'job.cpuprofile');
  let summaryTimer: NodeJS.Timeout | undefined;
  // The sim-fleets from start to all attached (filled by the 10 s summary below).
  const untilAttached = { loopMaxMs: 0, loopP99MaxMs: 0, cpuPcts: [] as number[], gcMaxMs: 0 };
  let attachedAll = false;
  const fleetSummary = (): void => {
    const last = fleets.map((f) => f.lastProgress);
    result.fleetUntilAttached = {
      loopMaxMs: untilAttached.loopMaxMs, loopP99MaxMs: untilAttached.loopP99MaxMs, gcMaxMs: untilAttached.gcMaxMs,
      cpuPctMean: untilAttached.cpuPcts.length ? Math.round(untilAttached.cpuPcts.reduce((a, b) => a + b, 0) / untilAttached.cpuPcts.length) : NaN,
      cpuPctMax: untilAttached.cpuPcts.length ? Math.max(...untilAttached.cpuPcts) : NaN,
      disconnects: last.reduce((a, p) => a + (p?.disconnects ?? 0), 0), joinsHeldMs: Math.max(0, ...last.map((p) => p?.joinsHeldMs ?? 0)),
    };
  };
  try {
    // The coordinator's defaults: an application ping on every stream every 30 s, and a gRPC
    // keepalive PING on every connection every 2 s answered within 2 s (N/2 PINGs a second).
    const profDir = join(cluster.logDir, 'cpu-prof');
    const coord = await cluster.startCoordinator({
      extraArgs: ['--replica-id', 'c1', '--log-level', 'info', '--election-ttl', String(o.electionTtl),
        ...(o.grpcKeepaliveMs !== undefined ? ['--grpc-keepalive', String(o.grpcKeepaliveMs / 1000)] : []),
        ...(o.grpcKeepaliveTimeoutMs !== undefined ? ['--grpc-keepalive-timeout', String(o.grpcKeepaliveTimeoutMs / 1000)] : []),
        ...(o.tcpLivenessMs !== undefined ? ['--tcp-liveness', String(o.tcpLivenessMs / 1000)] : []),
        ...(o.jobCpuProfSeconds ? ['--cpu-profile', `start-job:${o.jobCpuProfSeconds}:${jobProfileFile}`] : [])],
      ...(o.cpuProf ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
    });
    const ePid = etcdPid(etcd.dataDir);
    result.coordinatorFdLimit = ensureFdLimit(coord.proc.pid, n, say);
    const pacing = [o.startWindow > 0 ? `window ${o.startWindow}` : '', o.startRate > 0 ? `${o.startRate}/s` : '', o.joinMaxLagMs > 0 ? `joins held while a fleet's loop is > ${o.joinMaxLagMs} ms late` : ''].filter(Boolean).join(', ') || 'all at once';
    say(`N=${n}: etcd + coordinator up; starting ${k} sim-fleet process(es) (${pacing}); logs in ${cluster.logDir}`);
    const t0 = Date.now();
    for (let j = 0; j < k; j++) {
      // Agents split evenly; one fleet keeps the ids sim-00001..., several get sim1-00001, sim2-...
      const agents = Math.floor(n / k) + (j < n % k ? 1 : 0);
      fleets.push(new SimFleet({
        etcd: etcd.endpoint, clusterSecretFile: join(cluster.pkiDir, 'cluster-secret'), agents, idPrefix: k === 1 ? 'sim-' : `sim${j + 1}-`,
        leaseTtlSec: o.leaseTtl, startRate: o.startRate, startWindow: o.startWindow, joinMaxLagMs: o.joinMaxLagMs, sandbox: join(sandbox, String(j + 1)),
        etcdClients: Math.max(1, Math.min(8, Math.ceil(agents / 1000))), logFile: join(cluster.logDir, k === 1 ? 'sim-fleet.log' : `sim-fleet-${j + 1}.log`),
        nodeArgs: ['--max-old-space-size=8192'],
      }));
    }
    // Every 10 s until the job starts: what each fleet's loop and CPU did, and the coordinator's CPU.
    let coordCpuBefore = cpuMs(coord.proc.pid);
    let summaryAt = Date.now();
    summaryTimer = setInterval(() => {
      const now = Date.now();
      const coordCpu = cpuMs(coord.proc.pid);
      const coordPct = Math.round(((coordCpu - coordCpuBefore) / (now - summaryAt)) * 1000) / 10;
      coordCpuBefore = coordCpu;
      summaryAt = now;
      const parts = fleets.map((f, j) => {
        const ps = f.takeProgress();
        const last = ps[ps.length - 1];
        if (!last) return `fleet${j + 1}: no progress line`;
        const loopMax = Math.max(...ps.map((p) => p.loop.maxMs));
        const loopP99 = Math.max(...ps.map((p) => p.loop.p99Ms));
        const cpu = Math.round(ps.reduce((a, p) => a + p.cpuPct, 0) / ps.length);
        const gcMax = Math.max(...ps.map((p) => p.gc.maxMs));
        if (!attachedAll) {
          untilAttached.loopMaxMs = Math.max(untilAttached.loopMaxMs, loopMax);
          untilAttached.loopP99MaxMs = Math.max(untilAttached.loopP99MaxMs, loopP99);
          untilAttached.gcMaxMs = Math.max(untilAttached.gcMaxMs, gcMax);
          untilAttached.cpuPcts.push(...ps.map((p) => p.cpuPct));
        }
        return `fleet${j + 1}: ${last.registered} reg ${last.attached} att, loop max ${loopMax} p99 ${loopP99} ms, cpu ${cpu}%, gc max ${gcMax} ms (${ps.reduce((a, p) => a + p.gc.totalMs, 0)} ms), heap ${last.heapMiB} MiB, ended streams ${last.disconnects}, joins held ${Math.round(last.joinsHeldMs / 1000)} s`;
      });
      say(`N=${n} +${Math.round((now - t0) / 1000)} s (load ${loadavg()[0].toFixed(1)}): coordinator cpu ${coordPct}%; ${parts.join('; ')}`);
    }, 10_000);
    const regs = await withDeadline(Promise.all(fleets.map((f) => f.registered(o.sizeTimeoutMs))), deadline, 'registration');
    result.registerAllMs = Math.max(...regs.map((r) => r.at)) - t0;
    say(`N=${n}: all registered after ${result.registerAllMs} ms`);
    const atts = await withDeadline(Promise.all(fleets.map((f) => f.attached('c1', o.sizeTimeoutMs))), deadline, 'attach');
    result.attachAllMs = Math.max(...atts.flatMap((a) => a.times)) - t0;
    attachedAll = true;
    fleetSummary();
    say(`N=${n}: all attached after ${result.attachAllMs} ms`);
    const nodeIds = fleets.flatMap((f) => f.nodeIds);

    // The coordinator records Discovered once facts are in; commission needs it.
    while (Date.now() < deadline) {
      const recs = await client.getAll().prefix(ks.nodesPrefix()).strings();
      const discovered = Object.entries(recs).filter(([k, v]) => {
        try {
          return decodeNode(k, v).state === 'Discovered';
        } catch {
          return false;
        }
      }).length;
      if (discovered >= n) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    result.discoveredAllMs = Date.now() - t0;
    say(`N=${n}: all Discovered after ≤ ${result.discoveredAllMs} ms`);

    await new Promise((r) => setTimeout(r, 5000)); // settle: idle means no registration traffic
    const cs = new RssSampler(() => coord.proc.pid).start();
    const fs = new RssSampler(() => fleets.map((f) => f.pid)).start();
    const es = new RssSampler(() => ePid).start();
    samplers.push(cs, fs, es);
    result.rssIdleMiB = { coordinator: cs.sample(), simFleet: fs.sample(), etcd: es.sample() };
    say(`N=${n}: idle RSS coordinator ${result.rssIdleMiB.coordinator} MiB, sim-fleet ${result.rssIdleMiB.simFleet} MiB, etcd ${result.rssIdleMiB.etcd} MiB`);
    const machineBefore = machineBusyMs();
    const machineAt = Date.now();
    const [cCpu, fCpu, eCpu] = await Promise.all([cpuPctOver([coord.proc.pid], 10_000), cpuPctOver(fleets.map((f) => f.pid), 10_000), cpuPctOver([ePid], 10_000)]);
    const machineAfter = machineBusyMs();
    const machineWall = Date.now() - machineAt;
    const pct = (ms: number): number => Math.round((ms / machineWall) * 1000) / 10;
    result.cpuIdlePct = { coordinator: cCpu, simFleet: fCpu, etcd: eCpu, machine: pct(machineAfter.busyMs - machineBefore.busyMs), softirq: pct(machineAfter.softirqMs - machineBefore.softirqMs) };
    say(`N=${n}: idle CPU over 10 s (% of one core) coordinator ${cCpu}%, sim-fleet ${fCpu}%, etcd ${eCpu}%; the whole machine ${result.cpuIdlePct.machine}% (softirq ${result.cpuIdlePct.softirq}%); load ${loadavg()[0].toFixed(1)}`);
    if (o.attachOnly) {
      result.completed = true;
      return result;
    }

    // --- the fan-out job --------------------------------------------------------------------
    // The operator's side over mutual TLS with the admin credentials the coordinator wrote.
    admin = adminClients(cluster, coord.address);
    const cc = admin.config;
    const jc = admin.jobs;
    try {
      await unary(cc.PushBundle.bind(cc), { yaml: bundleYaml(o.units) }, 30_000);
      await unary(cc.SetGroup.bind(cc), { group: { name: 'bench', bundle: 'bench-fanout', version: '1' } }, 30_000);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.UNIMPLEMENTED) {
        result.job = { available: false, note: `ConfigService is not served by this coordinator yet (${e.details || e.message}); the job path was not measured` };
        say(`N=${n}: ${result.job.note}`);
        result.completed = true;
        return result;
      }
      throw err;
    }
    await jobs.start();
    cs.reset(); fs.reset(); es.reset();
    const metricsAt = await coord.metricsAddress();
    const txnsBefore = await coordinatorTxns(metricsAt);
    const revisionBefore = await etcdRevision(client, ks);
    const watchers = await etcd.metric('etcd_debugging_mvcc_watcher_total');
    const eventsBefore = await etcd.metric('etcd_debugging_mvcc_events_total');
    const cpu = new PhaseCpu({ coordinator: () => [coord.proc.pid], simFleet: () => fleets.map((f) => f.pid), etcd: () => [ePid], bench: () => [process.pid] }).start();
    const startAt = Date.now();
    let job: Job__Output;
    try {
      job = await unary(jc.StartJob.bind(jc), {
        kind: 'commission', nodeIds, group: 'bench', strategy: 'all-at-once',
        maxFailures: n, requestedBy: 'bench/fanout',
      }, 120_000);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.UNIMPLEMENTED) {
        result.job = { available: false, note: `JobService is not served by this coordinator yet (${e.details || e.message}); the job path was not measured` };
        say(`N=${n}: ${result.job.note}`);
        result.completed = true;
        return result;
      }
      throw err;
    }
    jobs.jobId = job.id;
    const startJobCallMs = Date.now() - startAt;
    say(`N=${n}: StartJob ${job.id} answered in ${startJobCallMs} ms (${job.state}); waiting for ${n} node results`);
    result.job = { available: true, startJobCallMs };
    let problem: string | undefined;
    try {
      await withDeadline(jobs.done(n), deadline, `${n} node results`);
    } catch (err) {
      problem = errorMessage(err);
    }
    const cpuUsed = cpu.stop();
    const revisionAfter = await etcdRevision(client, ks);
    const txnsAfter = await coordinatorTxns(metricsAt);
    const eventsAfter = await etcd.metric('etcd_debugging_mvcc_events_total');
    const etcdUse = {
      revisions: revisionAfter - revisionBefore, coordinatorTxns: txnsAfter.count - txnsBefore.count, coordinatorTxnSeconds: Math.round((txnsAfter.sum - txnsBefore.sum) * 100) / 100,
      watchers, watchEventsSent: eventsAfter - eventsBefore,
    };
    const lat = [...jobs.finished.values()].map((v) => v.at - startAt);
    result.job = {
      ...result.job,
      totalMs: lat.length ? Math.max(...lat) : undefined,
      perNode: stats(lat),
      succeeded: [...jobs.finished.values()].filter((v) => v.state === 'succeeded').length,
      failed: [...jobs.finished.values()].filter((v) => v.state !== 'succeeded').length,
      jobState: jobs.jobState,
      rssPeakMiB: { coordinator: cs.peak, simFleet: fs.peak, etcd: es.peak },
      cpu: cpuUsed,
      etcd: etcdUse,
      // A process that vanished reads NaN (cpuMs): then no split rather than a wrong one.
      ...(result.cpuIdlePct && Object.values(cpuUsed.cpuMs).every(Number.isFinite) && Object.values(result.cpuIdlePct).every(Number.isFinite) ? { split: jobSplit(cpuUsed, result.cpuIdlePct, cpus().length) } : {}),
    };
    if (problem) {
      result.problem = `${problem}: ${jobs.finished.size}/${n} node results recorded`;
    } else {
      result.completed = true;
    }
    say(`N=${n}: ${jobs.finished.size} results (${result.job.succeeded} succeeded) in ${result.job.totalMs} ms; per node p50 ${result.job.perNode?.p50} ms, p99 ${result.job.perNode?.p99} ms; peak RSS coordinator ${cs.peak} MiB`);
    say(`N=${n}: ${cpuLine(cpuUsed)}; ${etcdLine(etcdUse)}`);
    return result;
  } catch (err) {
    result.problem = errorMessage(err);
    const sum = (f: (p: ProgressEvent | undefined) => number): number => fleets.reduce((a, fl) => a + f(fl.lastProgress), 0);
    result.atGiveUp = {
      registered: sum((p) => p?.registered ?? 0), attached: sum((p) => p?.attached ?? 0),
      rssMiB: { coordinator: rssMiB(cluster.coordinators[0]?.proc.pid ?? -1), simFleet: Math.round(fleets.reduce((a, fl) => a + rssMiB(fl.pid), 0) * 10) / 10, etcd: rssMiB(etcdPid(etcd.dataDir)) },
    };
    if (!result.fleetUntilAttached) fleetSummary(); // gave up before all attached: what the fleets did until then
    say(`N=${n}: ${result.problem}`);
    say(cluster.logTails(8));
    return result;
  } finally {
    clearInterval(summaryTimer);
    result.coordinatorStreams = streamCounts(join(cluster.logDir, 'coordinator-c1.log'));
    for (const s of samplers) s.stop();
    admin?.close();
    await jobs.stop().catch(() => undefined);
    if (fleets.length > 0) {
      result.rssIdleMiB ??= { coordinator: NaN, simFleet: Math.round(fleets.reduce((a, fl) => a + rssMiB(fl.pid), 0) * 10) / 10, etcd: NaN };
      await Promise.all(fleets.map((fl) => fl.stop().catch(() => undefined)));
    }
    if (o.jobCpuProfSeconds && result.job?.available === true) {
      // Written by the coordinator itself SECONDS after StartJob.
      const until = Date.now() + (o.jobCpuProfSeconds + 30) * 1000;
      while (!existsSync(jobProfileFile) && Date.now() < until) await new Promise((res) => setTimeout(res, 500));
      if (existsSync(jobProfileFile)) result.jobCpuProfile = { file: jobProfileFile, seconds: o.jobCpuProfSeconds, ...topFrames(jobProfileFile) };
    }
    if (o.cpuProf) {
      // A profile is written at a clean exit only: SIGTERM the coordinator before the teardown's SIGKILL.
      await cluster.coordinators[0]?.proc.stop(15_000).catch(() => undefined);
      const dir = join(cluster.logDir, 'cpu-prof');
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (file) result.cpuProfile = { file: join(dir, file), ...topFrames(join(dir, file)) };
    }
    await cluster.destroy();
    await etcd.destroy();
    rmSync(sandbox, { recursive: true, force: true });
  }
}

/** etcd's current revision (the header of a one-key read). */
async function etcdRevision(client: Etcd3, ks: Keyspace): Promise<number> {
  return Number((await client.get(ks.eventSeq()).exec()).header.revision);
}

/** The coordinator's etcd transactions so far: count and summed seconds, from its /metrics. */
async function coordinatorTxns(address: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { count: value('cluster_etcd_txn_duration_seconds_count'), sum: value('cluster_etcd_txn_duration_seconds_sum') };
}

function etcdLine(e: NonNullable<NonNullable<SizeResult['job']>['etcd']>): string {
  return `etcd: ${e.revisions} revisions (write transactions, the agents' included), ${e.watchEventsSent} watch events sent to ${e.watchers} watchers (the agents' and the bench's included); coordinator: ${e.coordinatorTxns} etcd transactions, ${e.coordinatorTxnSeconds} s summed latency`;
}

/** "job phase 2140 ms wall, CPU ms: coordinator 1650 (0.77 core), ..." */
function cpuLine(c: NonNullable<NonNullable<SizeResult['job']>['cpu']>): string {
  const part = (name: string, ms: number): string => `${name} ${ms} (${(ms / Math.max(1, c.wallMs)).toFixed(2)} core)`;
  return `job phase ${c.wallMs} ms wall, CPU ms: ${part('coordinator', c.cpuMs.coordinator)}, ${part('sim-fleet', c.cpuMs.simFleet)}, ${part('etcd', c.cpuMs.etcd)}, ${part('bench watch', c.cpuMs.bench)}`;
}

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`fanout: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const v = parsed.values;
  const sizes = v.sizes.map((s) => Number(s));
  const bad = v.sizes.find((s) => !/^\d+$/.test(s) || Number(s) < 1);
  if (bad !== undefined) {
    process.stderr.write(`fanout: --sizes ${v.sizes.join(',')}: ${JSON.stringify(bad)} is not a positive whole number (e.g. --sizes 1000,5000)\n`);
    return 2;
  }
  const say = (s: string): void => { if (!v.json) process.stderr.write(`${s}\n`); };
  const KA = DEFAULT_SETTINGS.grpcKeepaliveTimeMs;
  const KAT = DEFAULT_SETTINGS.grpcKeepaliveTimeoutMs;
  const TL = DEFAULT_SETTINGS.tcpLivenessMs;
  const started = Date.now();
  const results: SizeResult[] = [];
  for (const n of sizes) {
    results.push(await runSize(n, {
      units: v.units, attachOnly: v.attachOnly === true,
      leaseTtl: v.leaseTtl, electionTtl: v.electionTtl,
      ...(v.grpcKeepalive !== undefined ? { grpcKeepaliveMs: v.grpcKeepalive } : {}), ...(v.grpcKeepaliveTimeout !== undefined ? { grpcKeepaliveTimeoutMs: v.grpcKeepaliveTimeout } : {}),
      ...(v.tcpLiveness !== undefined ? { tcpLivenessMs: v.tcpLiveness } : {}),
      startRate: v.startRate, startWindow: v.startWindow, joinMaxLagMs: v.joinMaxLagMs, fleetProcesses: v.fleetProcesses,
      sizeTimeoutMs: v.sizeTimeout * 1000, keep: v.keep === true || v.cpuProf === true || v.jobCpuProf !== undefined, cpuProf: v.cpuProf === true,
      ...(v.jobCpuProf !== undefined ? { jobCpuProfSeconds: v.jobCpuProf } : {}),
    }, say));
  }
  const out = {
    date: new Date().toISOString(), ...machine(), loadavg1: Number(loadavg()[0].toFixed(2)),
    bundleUnits: v.units, agentLeaseTtlSeconds: v.leaseTtl, electionTtlSeconds: v.electionTtl, grpcKeepaliveMs: v.grpcKeepalive ?? KA, grpcKeepaliveTimeoutMs: v.grpcKeepaliveTimeout ?? KAT, tcpLivenessMs: v.tcpLiveness ?? TL, startRate: v.startRate, startWindow: v.startWindow, joinMaxLagMs: v.joinMaxLagMs, results,
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (v.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return results.every((r) => r.completed) ? 0 : 1;
  }
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : String(x));
  const lines = [
    `command fan-out: ${out.date}`,
    `machine: ${out.cores} cores (${out.cpuModel}), load ${out.loadavg1}; agent lease TTL ${v.leaseTtl} s; election TTL ${v.electionTtl} s; start window ${v.startWindow > 0 ? v.startWindow : 'none'}, rate ${v.startRate > 0 ? `${v.startRate}/s` : 'no limit'} (per sim-fleet process)${v.joinMaxLagMs > 0 ? `, joins held while a sim-fleet's loop is > ${v.joinMaxLagMs} ms late` : ''}; one connection per agent; bundle of ${v.units} file unit(s); wall ${out.wallSeconds} s`,
    `coordinator: gRPC keepalive PING on every agent connection every ${(v.grpcKeepalive ?? KA) / 1000} s${v.grpcKeepalive !== undefined && v.grpcKeepalive !== KA ? ` (NOT the default ${KA / 1000} s)` : ' (default)'}, ` +
      `connection dropped when unanswered for ${(v.grpcKeepaliveTimeout ?? KAT) / 1000} s${v.grpcKeepaliveTimeout !== undefined && v.grpcKeepaliveTimeout !== KAT ? ` (NOT the default ${KAT / 1000} s)` : ' (default)'}; TCP liveness ${(v.tcpLiveness ?? TL) / 1000} s${v.tcpLiveness !== undefined && v.tcpLiveness !== TL ? ` (NOT the default ${TL / 1000} s)` : ' (default)'}; stream ping ${DEFAULT_SETTINGS.pingIntervalMs / 1000} s (default); election TTL ${v.electionTtl} s${v.electionTtl * 1000 !== DEFAULT_SETTINGS.electionTtlMs ? ` (not the default ${DEFAULT_SETTINGS.electionTtlMs / 1000} s)` : ''}`,
    `${'N'.padStart(6)} ${'register'.padStart(9)} ${'attach'.padStart(8)} ${'discovr'.padStart(8)} ${'idleRSS'.padStart(8)} ${'StartJob'.padStart(9)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'total'.padStart(7)} ${'ok/N'.padStart(11)} ${'peakRSS'.padStart(8)} ${'simRSS'.padStart(7)} ${'etcdRSS'.padStart(8)}`,
    `${''.padStart(6)} ${'ms'.padStart(9)} ${'ms'.padStart(8)} ${'ms'.padStart(8)} ${'MiB'.padStart(8)} ${'ms'.padStart(9)} ${'ms'.padStart(7)} ${'ms'.padStart(7)} ${'ms'.padStart(7)} ${''.padStart(11)} ${'MiB'.padStart(8)} ${'MiB'.padStart(7)} ${'MiB'.padStart(8)}`,
  ];
  for (const r of results) {
    const j = r.job;
    lines.push([
      f(r.agents).padStart(6), f(r.registerAllMs).padStart(9), f(r.attachAllMs).padStart(8), f(r.discoveredAllMs).padStart(8), f(r.rssIdleMiB?.coordinator).padStart(8),
      f(j?.startJobCallMs).padStart(9), f(j?.perNode?.p50).padStart(7), f(j?.perNode?.p99).padStart(7), f(j?.totalMs).padStart(7),
      (j?.available ? `${f(j.succeeded)}/${r.agents}` : '-').padStart(11), f(j?.rssPeakMiB?.coordinator).padStart(8),
      f(j?.rssPeakMiB?.simFleet ?? r.rssIdleMiB?.simFleet).padStart(7), f(j?.rssPeakMiB?.etcd ?? r.rssIdleMiB?.etcd).padStart(8),
    ].join(' '));
    if (r.fleetProcesses > 1) lines.push(`       agents simulated in ${r.fleetProcesses} sim-fleet processes`);
    if (r.coordinatorFdLimit !== undefined && r.coordinatorFdLimit < r.agents + 2048) lines.push(`       coordinator open-files limit ${r.coordinatorFdLimit}: below the ${r.agents} agents' connections + 2,048`);
    if (r.cpuIdlePct) lines.push(`       idle CPU over 10 s with all attached (% of one core): coordinator ${r.cpuIdlePct.coordinator}%, sim-fleet ${r.cpuIdlePct.simFleet}%, etcd ${r.cpuIdlePct.etcd}%; the whole machine ${r.cpuIdlePct.machine}% (softirq ${r.cpuIdlePct.softirq}%)`);
    if (r.fleetUntilAttached) {
      const u = r.fleetUntilAttached;
      lines.push(`       sim-fleet until ${r.attachAllMs !== undefined ? 'all attached' : 'give-up'}: loop delay max ${f(u.loopMaxMs)} ms (worst 2 s p99 ${f(u.loopP99MaxMs)} ms), CPU mean ${f(u.cpuPctMean)}% max ${f(u.cpuPctMax)}% per process, GC pause max ${f(u.gcMaxMs)} ms, streams ended ${u.disconnects}, joins held ${Math.round(u.joinsHeldMs / 1000)} s`);
    }
    if (r.coordinatorStreams) {
      const c = r.coordinatorStreams;
      const why = Object.entries(c.why).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w, k]) => `${k}× ${JSON.stringify(w)}`).join(', ');
      lines.push(`       coordinator log: ${c.connected} "agent connected", ${c.disconnected} "agent disconnected"${why ? ` (${why})` : ''}`);
    }
    if (j && !j.available && j.note) lines.push(`       ${j.note}`);
    if (r.problem) lines.push(`       incomplete: ${r.problem}`);
    if (r.atGiveUp) {
      const g = r.atGiveUp;
      lines.push(`       at give-up: ${g.registered} registered, ${g.attached} attached; RSS coordinator ${g.rssMiB.coordinator} MiB, sim-fleet ${g.rssMiB.simFleet} MiB, etcd ${g.rssMiB.etcd} MiB`);
    }
    if (j?.cpu) lines.push(`       ${cpuLine(j.cpu)}`);
    if (j?.split) lines.push(`       ${splitLine(j.split)}`);
    if (j?.etcd) lines.push(`       ${etcdLine(j.etcd)}`);
    if (r.cpuProfile) {
      lines.push(`       coordinator CPU profile (${r.cpuProfile.totalMs} ms sampled; ${r.cpuProfile.file}), top frames by self time:`);
      for (const fr of r.cpuProfile.frames) lines.push(`         ${String(fr.selfMs).padStart(7)} ms ${fr.pct.toFixed(1).padStart(5)}%  ${fr.frame}`);
    }
    if (r.jobCpuProfile) {
      lines.push(`       coordinator CPU profile of ${r.jobCpuProfile.seconds} s from StartJob (${r.jobCpuProfile.totalMs} ms sampled; ${r.jobCpuProfile.file}), top frames by self time:`);
      for (const fr of r.jobCpuProfile.frames) lines.push(`         ${String(fr.selfMs).padStart(7)} ms ${fr.pct.toFixed(1).padStart(5)}%  ${fr.frame}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return results.every((r) => r.completed) ? 0 : 1;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`fanout: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
