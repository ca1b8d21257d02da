/**
 * No hardware inventory in the hot path (issue 12 §6): what a no-op `verify` costs across a
 * fleet of REAL agents. Before: 2.6–3.2 s per verify across 20 agents, each agent collecting
 * all hardware facts per command (with facts cached: 0.63–1.38 s); the agents' CPU per no-op
 * step 4.7–5.9 s (cached: 0.2–0.55 s); the leader moving the nodes into their working state
 * one etcd write at a time (0.23–1.4 s for 20 nodes).
 *
 * Real processes, as in test/e2e (test/helpers' TestCluster): a real etcd (TLS, auth), one
 * coordinator and N `cluster-agent` processes, each with its own sandbox root (`--root`, file
 * and directory units, no systemd) — not bench/sim-fleet.ts, whose agents share one process
 * and one facts object and so cannot show what a real agent spends per command. A bundle of
 * `--units` units is commissioned once on every node (one all-at-once job), then K no-op
 * verify jobs run one after the other, each over all N nodes, all-at-once. Per verify:
 *   - wall time: StartJob sent → the job record written in a finished state (etcd watch);
 *   - the agents' CPU: utime + stime of every agent process and its waited-for children
 *     (/proc/<pid>/stat) over that window, summed;
 *   - claims: StartJob sent → every node record naming the job (`currentJob`), and in how
 *     many etcd transactions (distinct revisions of those writes). For the commission the
 *     same for the move into the working state (Commissioning).
 *
 *   npm run build && node dist/bench/verify-fleet.js [--agents 20] [--units 20] [--verifies 5] [--json]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Job__Output } from '../generated/cluster/v1/Job';
import { decodeJob, type JobRecord } from '../coordinator/jobs/job-record';
import { isActive, isJobState } from '../shared/job-states';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { decodeNode } from '../shared/records';
import { DEFAULT_LEASE_TTL_SECONDS } from '../agent/lease-membership';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster } from '../test/helpers/cluster';
import { adminClients, unary, type AdminClients } from './admin-client';
import { cpuSeconds, machine, stats, type Stats } from './sim-fleet';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  agents: { kind: 'int', default: 20, min: 1, placeholder: 'N', description: 'agent processes (each with its own sandbox root)' },
  units: { kind: 'int', default: 20, min: 2, placeholder: 'U', description: 'units of the bundle (half directories, half files in them)' },
  verifies: { kind: 'int', default: 5, min: 1, placeholder: 'K', description: 'no-op verify jobs to measure' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dir (logs, sandbox roots) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/verify-fleet.js [--agents N] [--units U] [--verifies K] [--json] [--keep]';
const START_AT_ONCE = 4;
const JOB_TIMEOUT_MS = 300_000;

/** `units` units: directories /opt/bench/dN and a rendered file in each (the facts are used, as a real bundle does). */
export function benchBundle(units: number): string {
  const lines = ['name: bench-verify', 'version: "1"', 'variables:', '  greeting: hello', 'units:'];
  for (let i = 0; i < units; i++) {
    const d = Math.floor(i / 2);
    if (i % 2 === 0) {
      lines.push(`  - id: dir-${d}`, '    kind: directory', `    path: /opt/bench/d${d}`, '    mode: "0755"');
    } else {
      lines.push(`  - id: conf-${d}`, '    kind: file', `    path: /opt/bench/d${d}/app.conf`, '    content: |',
        `      # unit ${i} on {{ facts.hostname }}`, '      greeting={{ vars.greeting }}', '    mode: "0644"');
    }
  }
  return `${lines.join('\n')}\n`;
}

interface Mark { at: number; revision: string }

/** Everything one watch over nodes/ and jobs/ saw, keyed by job id (a job's writes may precede StartJob's answer). */
class JobWatch {
  private readonly watchers: Watcher[] = [];
  /** job id → node id → the first node record naming the job (currentJob). */
  readonly claims = new Map<string, Map<string, Mark>>();
  /** job id → node id → the first node record in `state` while naming the job. */
  readonly working = new Map<string, Map<string, Mark & { state: string }>>();
  private readonly finished = new Map<string, { at: number; job: JobRecord }>();
  private readonly waiters = new Map<string, (f: { at: number; job: JobRecord }) => void>();

  constructor(private readonly client: Etcd3, private readonly ks: Keyspace) {}

  async start(): Promise<void> {
    const nodes = await this.client.watch().prefix(this.ks.nodesPrefix()).create();
    nodes.on('put', (kv: IKeyValue) => {
      const at = Date.now();
      const key = kv.key.toString();
      const id = this.ks.parseNode(key);
      if (!id) return;
      const rec = decodeNode(key, kv.value.toString());
      if (!rec.currentJob) return;
      const mark = { at, revision: kv.mod_revision };
      const claims = this.claims.get(rec.currentJob) ?? new Map<string, Mark>();
      this.claims.set(rec.currentJob, claims);
      if (!claims.has(id)) claims.set(id, mark);
      const working = this.working.get(rec.currentJob) ?? new Map<string, Mark & { state: string }>();
      this.working.set(rec.currentJob, working);
      if (!working.has(id) && rec.state.endsWith('ing')) working.set(id, { ...mark, state: rec.state });
    });
    const jobs = await this.client.watch().prefix(this.ks.jobsPrefix()).create();
    jobs.on('put', (kv: IKeyValue) => {
      const at = Date.now();
      const key = kv.key.toString();
      const parsed = this.ks.parseJobKey(key);
      if (!parsed || parsed.nodeId) return;
      const job = decodeJob(key, kv.value.toString());
      if (!isJobState(job.state) || isActive(job.state) || this.finished.has(job.id)) return;
      this.finished.set(job.id, { at, job });
      this.waiters.get(job.id)?.({ at, job });
    });
    this.watchers.push(nodes, jobs);
  }

  /** When the job's record was first written in a finished state (register right after StartJob answered). */
  finishedJob(jobId: string, timeoutMs: number): Promise<{ at: number; job: JobRecord }> {
    const seen = this.finished.get(jobId);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${jobId} not finished within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(jobId, (f) => { clearTimeout(timer); resolve(f); });
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.cancel()));
  }
}

export interface JobFigures {
  jobId: string;
  state: string;
  /** StartJob sent → job record finished (etcd watch). */
  wallMs: number;
  /** The job record's own createdAt → finishedAt (the leader's clock). */
  recordMs: number;
  /** Agents' CPU (user + system, with waited-for children) over the job, summed. */
  agentCpuSeconds: number;
  /** StartJob sent → the last node record naming the job; etcd transactions those writes took. */
  claimAllMs: number;
  claimTransactions: number;
  /** Commission: StartJob sent → the last node in its working state; its transactions. */
  workingAllMs?: number;
  workingTransactions?: number;
}

export interface VerifyFleetResult {
  date: string;
  cores: number;
  cpuModel: string;
  loadavg1: number;
  agents: number;
  units: number;
  commission: JobFigures;
  verifies: JobFigures[];
  /** Over the verifies. */
  wallMs: Stats;
  agentCpuSeconds: Stats;
  claimAllMs: Stats;
  wallSeconds: number;
}

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`verify-fleet: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const { agents: n, units, verifies: k, json, keep } = parsed.values;
  const say = (s: string): void => { process.stderr.write(`${s}\n`); };

  const started = Date.now();
  const etcd = await EtcdServer.start('bench-verify');
  const cluster = new TestCluster(etcd, { name: 'bench-verify-fleet', leaseTtlSec: DEFAULT_LEASE_TTL_SECONDS, keepDir: keep });
  const ks = new Keyspace();
  const client = etcd.client();
  const watch = new JobWatch(client, ks);
  const ids = Array.from({ length: n }, (_, i) => `verify-${String(i + 1).padStart(3, '0')}`);
  let admin: AdminClients | undefined;
  let commission: JobFigures | undefined;
  const verifies: JobFigures[] = [];
  try {
    say(`verify-fleet: etcd, a coordinator and ${n} agents with sandbox roots; a ${units}-unit bundle; ${k} no-op verifies; logs in ${cluster.logDir}`);
    const coord = await cluster.startCoordinator();
    for (let i = 0; i < n; i += START_AT_ONCE) {
      await Promise.all(ids.slice(i, i + START_AT_ONCE).map((id) => {
        const root = join(cluster.baseDir, 'roots', id);
        mkdirSync(root, { recursive: true });
        return cluster.startAgent(id, { extraArgs: ['--root', root] });
      }));
    }
    const t0 = Date.now();
    for (;;) {
      const all = await client.getAll().prefix(ks.nodesPrefix()).strings();
      const ready = Object.entries(all).filter(([key, v]) => { const r = decodeNode(key, v); return r.state === 'Discovered' && r.reachable && r.connected; }).length;
      if (ready === n) break;
      if (Date.now() - t0 > 120_000) throw new Error(`only ${ready}/${n} nodes Discovered and connected after 120 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    say(`verify-fleet: ${n} nodes Discovered and connected after ${Math.round((Date.now() - started) / 1000)} s`);
    await watch.start();
    admin = adminClients(cluster, coord.address);
    const cc = admin.config;
    const jc = admin.jobs;
    await unary(cc.PushBundle.bind(cc), { yaml: benchBundle(units) }, 30_000);
    await unary(cc.SetGroup.bind(cc), { group: { name: 'bench', bundle: 'bench-verify', version: '1' } }, 30_000);
    const pids = ids.map((id) => cluster.agent(id).proc.pid);
    const agentCpu = (): number => pids.reduce((a, pid) => a + cpuSeconds(pid, true), 0);

    const runJob = async (kind: 'commission' | 'verify'): Promise<JobFigures> => {
      const cpu0 = agentCpu();
      const startAt = Date.now();
      const job = await unary<object, Job__Output>(jc.StartJob.bind(jc), {
        kind, nodeIds: ids, strategy: 'all-at-once', maxFailures: n, requestedBy: 'bench/verify-fleet', ...(kind === 'commission' ? { group: 'bench' } : {}),
      }, 60_000);
      const { at, job: rec } = await watch.finishedJob(job.id, JOB_TIMEOUT_MS);
      const cpu1 = agentCpu();
      const claims = [...(watch.claims.get(job.id)?.values() ?? [])];
      const working = [...(watch.working.get(job.id)?.values() ?? [])];
      if (claims.length !== n) throw new Error(`${kind} job ${job.id}: ${claims.length}/${n} node records named it`);
      if (rec.state !== 'Succeeded') throw new Error(`${kind} job ${job.id} ended ${rec.state}: ${rec.message}`);
      const f: JobFigures = {
        jobId: job.id, state: rec.state, wallMs: at - startAt,
        recordMs: Date.parse(rec.finishedAt ?? '') - Date.parse(rec.createdAt),
        agentCpuSeconds: Math.round((cpu1 - cpu0) * 100) / 100,
        claimAllMs: Math.max(...claims.map((c) => c.at)) - startAt,
        claimTransactions: new Set(claims.map((c) => c.revision)).size,
        ...(working.length ? { workingAllMs: Math.max(...working.map((c) => c.at)) - startAt, workingTransactions: new Set(working.map((c) => c.revision)).size } : {}),
      };
      say(`${kind} ${job.id}: ${rec.state} in ${f.wallMs} ms (record ${f.recordMs} ms); agents' CPU ${f.agentCpuSeconds} s; ` +
        `all ${n} claimed after ${f.claimAllMs} ms in ${f.claimTransactions} transaction(s)` +
        `${f.workingAllMs !== undefined ? `; all in ${working[0]?.state} after ${f.workingAllMs} ms in ${f.workingTransactions}` : ''}`);
      return f;
    };

    commission = await runJob('commission');
    // What the agents really did: every sandbox root holds the bundle's last file.
    const last = join('opt', 'bench', `d${Math.floor((units - 1) / 2)}`);
    const missing = ids.filter((id) => !existsSync(join(cluster.baseDir, 'roots', id, last)));
    if (missing.length) throw new Error(`after the commission ${missing.length} sandbox roots lack /${last}: ${missing.join(', ')}`);
    for (let i = 0; i < k; i++) {
      await new Promise((r) => setTimeout(r, 2000)); // the last job's result writes settled
      verifies.push(await runJob('verify'));
    }
  } catch (err) {
    process.stderr.write(`verify-fleet: ${errorMessage(err)}\n${cluster.logTails(20)}\n`);
    return 1;
  } finally {
    admin?.close();
    await watch.stop().catch(() => undefined);
    await cluster.destroy();
    await etcd.destroy();
  }

  const result: VerifyFleetResult = {
    date: new Date().toISOString(), ...machine(), loadavg1: Number(loadavg()[0].toFixed(2)), agents: n, units,
    commission, verifies,
    wallMs: stats(verifies.map((v) => v.wallMs)), agentCpuSeconds: stats(verifies.map((v) => v.agentCpuSeconds)), claimAllMs: stats(verifies.map((v) => v.claimAllMs)),
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const line = (name: string, f: JobFigures): string =>
    `${name.padEnd(12)}${String(f.wallMs).padStart(8)}${String(f.recordMs).padStart(8)}${f.agentCpuSeconds.toFixed(2).padStart(9)}` +
    `${String(f.claimAllMs).padStart(9)}${String(f.claimTransactions).padStart(5)}${f.workingAllMs !== undefined ? `${String(f.workingAllMs).padStart(9)}${String(f.workingTransactions).padStart(5)}` : ''}`;
  process.stdout.write([
    `verify fleet: ${result.date}`,
    `machine: ${result.cores} cores (${result.cpuModel}), load ${result.loadavg1}`,
    `${n} real agents, ${units}-unit bundle, ${k} no-op verifies, wall ${result.wallSeconds} s`,
    `${'job'.padEnd(12)}${'wall'.padStart(8)}${'record'.padStart(8)}${'agentCPU'.padStart(9)}${'claimed'.padStart(9)}${'txns'.padStart(5)}${'working'.padStart(9)}${'txns'.padStart(5)}   (ms; CPU s)`,
    line('commission', commission),
    ...verifies.map((v, i) => line(`verify ${i + 1}`, v)),
    `verify medians: wall ${result.wallMs.p50} ms, agents' CPU ${result.agentCpuSeconds.p50} s, all claimed ${result.claimAllMs.p50} ms`,
    '',
  ].join('\n'));
  return 0;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`verify-fleet: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
