/**
 * Fan-out benchmark: one coordinator, N simulated agents (bench/sim-fleet.ts; one sim-fleet
 * process per 5,000 agents unless --fleet-processes says otherwise), N = 1,000 / 5,000 /
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
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { ConfigServiceClient } from '../generated/cluster/v1/ConfigService';
import type { JobServiceClient } from '../generated/cluster/v1/JobService';
import type { Job__Output } from '../generated/cluster/v1/Job';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { loadProto } from '../shared/proto';
import { clientCredentials, parseCredentials } from '../shared/pki';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { decodeNode } from '../shared/records';
import { topFrames, type Frame } from './cpu-profile';
import { PhaseCpu } from './proc-cpu';
import { RssSampler, SimFleet, machine, rssMiB, stats, type ProgressEvent, type Stats } from './sim-fleet';

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
  fleetProcesses: {
    kind: 'int', default: 0, min: 0, placeholder: 'K',
    description: 'sim-fleet processes the N agents are split over (0 = one per 5,000 agents: one event loop runs out at about that many)',
  },
  connections: { kind: 'string', default: 'per-agent', choices: ['per-agent', 'shared'], description: 'agent streams: one TCP connection each, or all on one' },
  sizeTimeout: { kind: 'int', default: 300, min: 30, placeholder: 'SECONDS', description: 'give up on one size after this long (prints what it has)' },
  cpuProf: { kind: 'boolean', description: 'run the coordinator under node --cpu-prof and print the top 10 frames of each size\'s profile (self time)' },
  jobCpuProf: { kind: 'int', min: 1, placeholder: 'SECONDS', description: 'profile the coordinator for SECONDS from the StartJob call (coordinator --cpu-profile start-job) and print the job phase\'s top 10 frames; keeps the logs' },
  json: { kind: 'boolean', description: 'print the results as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dirs (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/fanout.js [--sizes 1000,5000,10000] [--start-window K] [--fleet-processes K] [--size-timeout S] [--cpu-prof | --job-cpu-prof SECONDS] [--json]';

const BUNDLE_YAML = `name: bench-fanout
version: "1"
units:
  - id: marker
    kind: file
    path: /etc/bench-fanout.conf
    content: |
      node {{ facts.hostname }} commissioned by the fan-out benchmark
    mode: "0644"
`;

const FINAL_NODE_STATES = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);

/** etcd's own RSS: the process whose command line names this server's data dir. */
function etcdPid(dataDir: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dataDir)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return -1;
}

function unary<Req, Res>(fn: (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error('empty response'));
      else resolve(res);
    });
  });
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
  registerAllMs?: number;
  attachAllMs?: number;
  discoveredAllMs?: number;
  rssIdleMiB?: { coordinator: number; simFleet: number; etcd: number };
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
    etcd?: { revisions: number; coordinatorTxns: number; coordinatorTxnSeconds: number };
  };
  /** With --cpu-prof: the coordinator's top frames over the whole size (start, attach, job). */
  cpuProfile?: { file: string; totalMs: number; frames: Frame[] };
  /** With --job-cpu-prof: the coordinator's top frames from StartJob on. */
  jobCpuProfile?: { file: string; seconds: number; totalMs: number; frames: Frame[] };
}

function withDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`gave up waiting for ${what} (size timeout)`)), Math.max(0, deadline - Date.now())); }),
  ]);
}

/** Agents per sim-fleet process when --fleet-processes is 0. */
const AGENTS_PER_FLEET = 5000;

async function runSize(n: number, o: { leaseTtl: number; electionTtl: number; startRate: number; startWindow: number; fleetProcesses: number; connections: 'per-agent' | 'shared'; sizeTimeoutMs: number; keep: boolean; cpuProf: boolean; jobCpuProfSeconds?: number }, say: (s: string) => void): Promise<SizeResult> {
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
  let jobClient: JobServiceClient | undefined;
  let configClient: ConfigServiceClient | undefined;
  const jobProfileFile = join(cluster.logDir, 'job.cpuprofile');
  try {
    // Ping every 10 s (the default): with N streams that is N/10 pings a second on the leader.
    const profDir = join(cluster.logDir, 'cpu-prof');
    const coord = await cluster.startCoordinator({
      extraArgs: ['--replica-id', 'c1', '--log-level', 'info', '--election-ttl', String(o.electionTtl), ...(o.jobCpuProfSeconds ? ['--cpu-profile', `start-job:${o.jobCpuProfSeconds}:${jobProfileFile}`] : [])],
      ...(o.cpuProf ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
    });
    const ePid = etcdPid(etcd.dataDir);
    const pacing = [o.startWindow > 0 ? `window ${o.startWindow}` : '', o.startRate > 0 ? `${o.startRate}/s` : ''].filter(Boolean).join(', ') || 'all at once';
    say(`N=${n}: etcd + coordinator up; starting ${k} sim-fleet process(es) (${pacing}); logs in ${cluster.logDir}`);
    const t0 = Date.now();
    for (let j = 0; j < k; j++) {
      // Agents split evenly; one fleet keeps the ids sim-00001..., several get sim1-00001, sim2-...
      const agents = Math.floor(n / k) + (j < n % k ? 1 : 0);
      fleets.push(new SimFleet({
        etcd: etcd.endpoint, clusterSecretFile: join(cluster.pkiDir, 'cluster-secret'), agents, idPrefix: k === 1 ? 'sim-' : `sim${j + 1}-`,
        leaseTtlSec: o.leaseTtl, connections: o.connections, startRate: o.startRate, startWindow: o.startWindow, sandbox: join(sandbox, String(j + 1)),
        etcdClients: Math.max(1, Math.min(8, Math.ceil(agents / 1000))), logFile: join(cluster.logDir, k === 1 ? 'sim-fleet.log' : `sim-fleet-${j + 1}.log`),
        nodeArgs: ['--max-old-space-size=8192'],
      }));
    }
    const regs = await withDeadline(Promise.all(fleets.map((f) => f.registered(o.sizeTimeoutMs))), deadline, 'registration');
    result.registerAllMs = Math.max(...regs.map((r) => r.at)) - t0;
    say(`N=${n}: all registered after ${result.registerAllMs} ms`);
    const atts = await withDeadline(Promise.all(fleets.map((f) => f.attached('c1', o.sizeTimeoutMs))), deadline, 'attach');
    result.attachAllMs = Math.max(...atts.flatMap((a) => a.times)) - t0;
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

    // --- the fan-out job --------------------------------------------------------------------
    const { api } = loadProto();
    // The operator's side over mutual TLS with the admin credentials the coordinator wrote.
    const admin = parseCredentials(readFileSync(cluster.adminCredentials, 'utf8'), cluster.adminCredentials);
    const adminTls = clientCredentials({ caPem: admin.ca, certPem: admin.certificate, keyPem: admin.key });
    jobClient = new api.cluster.v1.JobService(coord.address, adminTls, { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    configClient = new api.cluster.v1.ConfigService(coord.address, adminTls);
    const cc = configClient;
    const jc = jobClient;
    try {
      await unary(cc.PushBundle.bind(cc), { yaml: BUNDLE_YAML }, 30_000);
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
    const etcdUse = { revisions: revisionAfter - revisionBefore, coordinatorTxns: txnsAfter.count - txnsBefore.count, coordinatorTxnSeconds: Math.round((txnsAfter.sum - txnsBefore.sum) * 100) / 100 };
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
      rssMiB: { coordinator: rssMiB(cluster.coordinators[0]?.proc.pid ?? -1), simFleet: fleets.reduce((a, fl) => a + rssMiB(fl.pid), 0), etcd: rssMiB(etcdPid(etcd.dataDir)) },
    };
    say(`N=${n}: ${result.problem}`);
    say(cluster.logTails(8));
    return result;
  } finally {
    for (const s of samplers) s.stop();
    jobClient?.close();
    configClient?.close();
    await jobs.stop().catch(() => undefined);
    if (fleets.length > 0) {
      result.rssIdleMiB ??= { coordinator: NaN, simFleet: fleets.reduce((a, fl) => a + rssMiB(fl.pid), 0), etcd: NaN };
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
  return `etcd: ${e.revisions} revisions (write transactions, the agents' included); coordinator: ${e.coordinatorTxns} etcd transactions, ${e.coordinatorTxnSeconds} s summed latency`;
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
  const started = Date.now();
  const results: SizeResult[] = [];
  for (const n of sizes) {
    results.push(await runSize(n, {
      leaseTtl: v.leaseTtl, electionTtl: v.electionTtl, startRate: v.startRate, startWindow: v.startWindow, fleetProcesses: v.fleetProcesses, connections: v.connections === 'shared' ? 'shared' : 'per-agent',
      sizeTimeoutMs: v.sizeTimeout * 1000, keep: v.keep === true || v.cpuProf === true || v.jobCpuProf !== undefined, cpuProf: v.cpuProf === true,
      ...(v.jobCpuProf !== undefined ? { jobCpuProfSeconds: v.jobCpuProf } : {}),
    }, say));
  }
  const out = {
    date: new Date().toISOString(), ...machine(), loadavg1: Number(loadavg()[0].toFixed(2)),
    agentLeaseTtlSeconds: v.leaseTtl, electionTtlSeconds: v.electionTtl, startRate: v.startRate, startWindow: v.startWindow, connections: v.connections, results,
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (v.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return results.every((r) => r.completed) ? 0 : 1;
  }
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : String(x));
  const lines = [
    `command fan-out: ${out.date}`,
    `machine: ${out.cores} cores (${out.cpuModel}), load ${out.loadavg1}; agent lease TTL ${v.leaseTtl} s; election TTL ${v.electionTtl} s; start window ${v.startWindow > 0 ? v.startWindow : 'none'}, rate ${v.startRate > 0 ? `${v.startRate}/s` : 'no limit'} (per sim-fleet process); ${v.connections} connections; wall ${out.wallSeconds} s`,
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
    if (j && !j.available && j.note) lines.push(`       ${j.note}`);
    if (r.problem) lines.push(`       incomplete: ${r.problem}`);
    if (r.atGiveUp) {
      const g = r.atGiveUp;
      lines.push(`       at give-up: ${g.registered} registered, ${g.attached} attached; RSS coordinator ${g.rssMiB.coordinator} MiB, sim-fleet ${g.rssMiB.simFleet} MiB, etcd ${g.rssMiB.etcd} MiB`);
    }
    if (j?.cpu) lines.push(`       ${cpuLine(j.cpu)}`);
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
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`fanout: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
