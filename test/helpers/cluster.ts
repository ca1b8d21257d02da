/**
 * A whole cluster of real processes for end-to-end tests and benchmarks: coordinators and
 * agents as child processes (the built main.js of each) against an EtcdServer, each test with its own
 * temp dir holding every process's log and every agent's state dir. `logTails()` is what a
 * failing test prints; `destroy()` kills every process it started and removes the dir.
 */
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { PKI_FILES } from '../../coordinator/pki/pki-dir';
import { testPki } from './pki';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { DEFAULT_PREFIX, Keyspace } from '../../shared/keyspace';
/** What the cluster needs of its etcd: where processes dial it (an EtcdServer, or an EtcdCluster's members). */
export interface EtcdEndpoint {
  /** HOST:PORT[,HOST:PORT...], the form every --etcd flag takes. */
  readonly endpoint: string;
}
import { freePort } from './ports';
import { BIN, clusterctl, ManagedProcess, spawnNode, type RunResult } from './processes';
import { waitFor } from './wait';

/** A node as `clusterctl nodes -o json` prints it (the fields the tests read). */
export interface CtlNode {
  id: string;
  state: string;
  reachable: boolean;
  unreachableSince?: string;
  labels?: Record<string, string>;
  hostname?: string;
  bootId?: string;
  facts?: { cpuModel?: string; memoryBytes?: string; hostname?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface AgentStartOptions {
  /** Membership lease TTL in seconds (etcd's practical minimum is 2). */
  leaseTtlSec?: number;
  hostname?: string;
  extraArgs?: readonly string[];
  /** Arguments of node itself, before the script (bench/agent-cost.ts: the packaged launcher's V8 flags). */
  nodeArgs?: readonly string[];
  /** The agent program (default this tree's dist/agent/main.js; bench/agent-cost.ts: the packaged bundle, or another build's). */
  script?: string;
  env?: NodeJS.ProcessEnv;
  /** Wait for the "registered" log line (default true). */
  waitRegistered?: boolean;
  /** Join with the cluster's first token (--join-token-file <pki>/join-token). Default true; false for a test that gives its own. */
  joinWithClusterToken?: boolean;
}

export interface CoordinatorStartOptions {
  /** Keep a port across restarts (agents and clusterctl dial the same address). */
  port?: number;
  extraArgs?: readonly string[];
  /** Arguments of node itself (bench/fanout.ts --cpu-prof). */
  nodeArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for "became leader" (default true; false only waits for "listening"). */
  waitLeader?: boolean;
  /** The etcd endpoint this replica dials (default the cluster's etcd): e.g. a TcpProxy that partitions it. */
  etcd?: string;
  /** Run under `prlimit --nofile=N:N` (a lower open-files limit; lowering needs no privilege). */
  openFilesLimit?: number;
}

const READY_TIMEOUT_MS = 30_000;

const METRICS_LINE = /"msg":"metrics listening"[^\n]*"address":"([^"]+)"/;

async function metricsAddressOf(proc: ManagedProcess, timeoutMs: number): Promise<string> {
  await proc.waitForLog(METRICS_LINE, timeoutMs);
  const m = METRICS_LINE.exec(proc.logs);
  if (!m) throw new Error(`${proc.name}: no metrics address in its log`);
  return m[1];
}

/** One agent process, restartable with the same node id and state dir. */
export class AgentHandle {
  proc: ManagedProcess;
  private starts = 0;

  constructor(private readonly cluster: TestCluster, readonly nodeId: string, readonly stateDir: string, readonly options: AgentStartOptions) {
    this.proc = this.spawn();
  }

  private spawn(): ManagedProcess {
    this.starts++;
    const o = this.options;
    const args = [
      '--etcd', this.cluster.etcd.endpoint,
      '--node-id', this.nodeId,
      '--state-dir', this.stateDir,
      '--lease-ttl', String(o.leaseTtlSec ?? this.cluster.leaseTtlSec),
      '--hostname', o.hostname ?? `host-${this.nodeId}`,
      ...(o.joinWithClusterToken ?? true ? ['--join-token-file', this.cluster.joinTokenFile] : []),
      // Many agents (and other engineers' tests) on one host: never the fixed default port.
      ...(o.extraArgs?.includes('--metrics-listen') ? [] : ['--metrics-listen', '127.0.0.1:0']),
      ...this.cluster.joinAddressArgs(),
      ...(o.extraArgs ?? []),
    ];
    return spawnNode(`agent ${this.nodeId}#${this.starts}`, o.script ?? BIN.agent, args, {
      nodeArgs: o.nodeArgs,
      env: { ...this.cluster.childEnv, ...o.env },
      logFile: join(this.cluster.logDir, `agent-${this.nodeId}.log`),
    });
  }

  /** HOST:PORT of this start's Prometheus endpoint (from its "metrics listening" log line). */
  async metricsAddress(timeoutMs = READY_TIMEOUT_MS): Promise<string> {
    return metricsAddressOf(this.proc, timeoutMs);
  }

  /** Resolves when this start of the agent logged "registered". */
  async registered(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await this.proc.waitForLog(/"msg":"registered"/, timeoutMs);
  }

  /** SIGKILL: no lease revoke, no goodbye — as if the machine lost power. */
  async kill(): Promise<void> {
    await this.proc.kill('SIGKILL');
  }

  async restart(wait = true): Promise<void> {
    if (this.proc.alive) await this.proc.kill('SIGKILL');
    this.proc = this.spawn();
    if (wait) await this.registered();
  }
}

/** One coordinator replica on a fixed loopback port. */
export class CoordinatorHandle {
  proc: ManagedProcess;
  private starts = 0;

  constructor(private readonly cluster: TestCluster, readonly replica: string, readonly port: number, readonly options: CoordinatorStartOptions) {
    this.proc = this.spawn();
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private spawn(): ManagedProcess {
    this.starts++;
    const extra = this.options.extraArgs ?? [];
    const args = [
      '--etcd', this.options.etcd ?? this.cluster.etcd.endpoint, '--listen', this.address, '--pki-dir', this.cluster.pkiDir,
      ...(extra.includes('--metrics-listen') ? [] : ['--metrics-listen', '127.0.0.1:0']),
      ...extra,
    ];
    const spawnOptions = { env: { ...this.cluster.childEnv, ...this.options.env }, logFile: join(this.cluster.logDir, `coordinator-${this.replica}.log`) };
    const limit = this.options.openFilesLimit;
    // prlimit execs node in its own place: the pid killed is the coordinator's.
    if (limit !== undefined) return new ManagedProcess(`coordinator ${this.replica}#${this.starts}`, 'prlimit', [`--nofile=${limit}:${limit}`, '--', process.execPath, ...(this.options.nodeArgs ?? []), BIN.coordinator, ...args], spawnOptions);
    return spawnNode(`coordinator ${this.replica}#${this.starts}`, BIN.coordinator, args, { ...spawnOptions, nodeArgs: this.options.nodeArgs });
  }

  /** HOST:PORT of this start's Prometheus endpoint (from its "metrics listening" log line). */
  async metricsAddress(timeoutMs = READY_TIMEOUT_MS): Promise<string> {
    return metricsAddressOf(this.proc, timeoutMs);
  }

  async ready(waitLeader = this.options.waitLeader ?? true, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await this.proc.waitForLog(waitLeader ? /"msg":"became leader"/ : /"msg":"listening"/, timeoutMs);
  }

  async kill(): Promise<void> {
    await this.proc.kill('SIGKILL');
  }

  async restart(wait = true): Promise<void> {
    if (this.proc.alive) await this.proc.kill('SIGKILL');
    this.proc = this.spawn();
    if (wait) await this.ready();
  }
}

export interface TestClusterOptions {
  /** Default membership lease TTL of agents, seconds. */
  leaseTtlSec?: number;
  /** Names the temp dir (e.g. the test's title). */
  name?: string;
  /** Keep the temp dir after destroy() (also with KEEP_TEST_DIRS=1). */
  keepDir?: boolean;
}

export class TestCluster {
  readonly baseDir: string;
  readonly logDir: string;
  /** Every coordinator's --pki-dir: ca.crt, admin.yaml, join-token, cluster-secret. */
  readonly pkiDir: string;
  readonly leaseTtlSec: number;
  readonly agents = new Map<string, AgentHandle>();
  readonly coordinators: CoordinatorHandle[] = [];
  /**
   * Environment of every child: a private HOME/XDG dirs so no operator config file
   * (~/.config/clusterctl/config.yaml, /etc/cluster/agent.yaml is absent here) leaks into a test,
   * and no CLUSTER_* variable of the shell running the tests either.
   */
  readonly childEnv: NodeJS.ProcessEnv;
  private readonly keepDir: boolean;

  constructor(readonly etcd: EtcdEndpoint, options: TestClusterOptions = {}) {
    const slug = (options.name ?? 'cluster').replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40);
    this.baseDir = mkdtempSync(join(tmpdir(), `e2e-${slug}-`));
    this.logDir = join(this.baseDir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
    mkdirSync(join(this.baseDir, 'home'), { recursive: true });
    this.pkiDir = join(this.baseDir, 'pki');
    this.leaseTtlSec = options.leaseTtlSec ?? 3;
    this.keepDir = options.keepDir === true || process.env.KEEP_TEST_DIRS === '1';
    // ManagedProcess merges over process.env, so CLUSTER_* variables are blanked (options
    // ignore an empty variable) rather than left out.
    const env: NodeJS.ProcessEnv = { HOME: join(this.baseDir, 'home'), XDG_CONFIG_HOME: join(this.baseDir, 'home', '.config') };
    for (const k of Object.keys(process.env)) if (/^(CLUSTER_|CLUSTERCTL_)/.test(k)) env[k] = '';
    env.CLUSTERCTL_CREDENTIALS = this.adminCredentials;
    this.childEnv = env;
  }

  /** The first token the first coordinator wrote (agents join with it). */
  get joinTokenFile(): string {
    return join(this.pkiDir, 'join-token');
  }

  /** The admin credentials file clusterctl uses. */
  get adminCredentials(): string {
    return join(this.pkiDir, 'admin.yaml');
  }

  /** The join token text (after the first coordinator started). */
  joinToken(): string {
    return readFileSync(this.joinTokenFile, 'utf8').trim();
  }

  /** The first coordinator's address: where clusterctl dials. */
  get coordinatorAddress(): string {
    const c = this.coordinators[0];
    if (!c) throw new Error('no coordinator started');
    return c.address;
  }

  /**
   * `--join-address` of the first coordinator: etcd admits only agents with a certificate, so an
   * agent joins through a coordinator before it reads the election there.
   */
  joinAddressArgs(): string[] {
    const c = this.coordinators[0];
    return c ? ['--join-address', c.address] : [];
  }

  async startCoordinator(options: CoordinatorStartOptions = {}): Promise<CoordinatorHandle> {
    // The test etcd trusts the process's test CA: the coordinators store that one
    // (as after cluster-coordinator init) and reach etcd as its user `coordinator`.
    if (!existsSync(join(this.pkiDir, PKI_FILES.caKey))) await (await testPki()).writePkiDir(this.pkiDir);
    const port = options.port ?? (await freePort());
    const c = new CoordinatorHandle(this, `c${this.coordinators.length + 1}`, port, options);
    this.coordinators.push(c);
    await c.ready();
    return c;
  }

  /** Starts one agent per id, each on its own sandbox root `<baseDir>/roots/<id>` (`--root`); returns id → root. */
  async startRootedAgents(ids: readonly string[]): Promise<Record<string, string>> {
    const roots: Record<string, string> = {};
    for (const id of ids) {
      roots[id] = join(this.baseDir, 'roots', id);
      mkdirSync(roots[id], { recursive: true });
      await this.startAgent(id, { extraArgs: ['--root', roots[id]] });
    }
    return roots;
  }

  async startAgent(nodeId: string, options: AgentStartOptions = {}): Promise<AgentHandle> {
    if (this.agents.has(nodeId)) throw new Error(`agent ${nodeId} already started`);
    const stateDir = join(this.baseDir, 'agents', nodeId);
    mkdirSync(stateDir, { recursive: true });
    const a = new AgentHandle(this, nodeId, stateDir, options);
    this.agents.set(nodeId, a);
    if (options.waitRegistered ?? true) await a.registered();
    return a;
  }

  agent(nodeId: string): AgentHandle {
    const a = this.agents.get(nodeId);
    if (!a) throw new Error(`no agent ${nodeId}`);
    return a;
  }

  /** clusterctl against the first coordinator (unless the args name one). */
  async ctl(args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
    const withAddress = args.includes('--coordinator') ? args : ['--coordinator', this.coordinatorAddress, ...args];
    return clusterctl(withAddress, { env: this.childEnv, timeoutMs });
  }

  /** `clusterctl nodes -o json`, parsed; throws with clusterctl's stderr when it fails. */
  async nodes(extra: readonly string[] = []): Promise<CtlNode[]> {
    const r = await this.ctl(['nodes', '-o', 'json', ...extra]);
    if (r.code !== 0) throw new Error(`clusterctl nodes exited ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as CtlNode[];
  }

  async node(id: string): Promise<CtlNode | undefined> {
    return (await this.nodes()).find((n) => n.id === id);
  }

  /** Polls clusterctl until `predicate` holds for the node list, returning that list. */
  async waitForNodes(what: string, predicate: (nodes: CtlNode[]) => boolean, timeoutMs = 30_000, intervalMs = 250): Promise<CtlNode[]> {
    return waitFor(what, async () => {
      const ns = await this.nodes();
      return predicate(ns) ? ns : undefined;
    }, { timeoutMs, intervalMs });
  }

  /** Every process this cluster started, alive or not. */
  processes(): ManagedProcess[] {
    return [...this.coordinators.map((c) => c.proc), ...[...this.agents.values()].map((a) => a.proc)];
  }

  /** The last `lines` lines of every log file of this cluster, for a failing test's report. */
  logTails(lines = 30): string {
    const parts: string[] = [];
    let files: string[] = [];
    try {
      files = readdirSync(this.logDir).sort();
    } catch {
      return '';
    }
    for (const f of files) {
      const text = readFileSync(join(this.logDir, f), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      parts.push(`----- ${join(this.logDir, f)} (last ${lines} lines) -----\n${text}`);
    }
    return parts.join('\n');
  }

  /** Kills (SIGKILL) every process, then removes the temp dir unless asked to keep it. */
  async destroy(): Promise<void> {
    await Promise.all(this.processes().map((p) => p.kill('SIGKILL')));
    if (!this.keepDir) rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/** Every key and value under `prefix` (default: the whole keyspace), sorted by key. */
export async function etcdSnapshot(client: Etcd3, prefix = ''): Promise<Record<string, string>> {
  const all = prefix ? await client.getAll().prefix(prefix).strings() : await client.getAll().strings();
  const out: Record<string, string> = {};
  for (const k of Object.keys(all).sort()) out[k] = all[k];
  return out;
}

/**
 * What differs between two etcdSnapshot()s, one line per key (`-` gone, `+` new, `~` changed;
 * values cut to 160 characters): compared with [] so that a failure names the keys (a deep
 * comparison of two whole keyspaces printed no diff when a refused job once changed one).
 * `ignorePrefixes`: keys left out, e.g. the agents' member keys (AGENT_OWN_KEYS).
 */
export function snapshotDiff(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>, options: { ignorePrefixes?: readonly string[] } = {}): string[] {
  const cut = (v: string): string => (v.length > 160 ? `${v.slice(0, 160)}…` : v);
  const ignored = (k: string): boolean => (options.ignorePrefixes ?? []).some((p) => k.startsWith(p));
  const out: string[] = [];
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (ignored(k)) continue;
    if (!(k in after)) out.push(`- ${k}: ${cut(before[k])}`);
    else if (!(k in before)) out.push(`+ ${k}: ${cut(after[k])}`);
    else if (before[k] !== after[k]) out.push(`~ ${k}: ${cut(before[k])} → ${cut(after[k])}`);
  }
  return out.sort();
}

/**
 * What an agent writes on its own schedule, not on any request: its member key, rewritten a
 * minute or two after an apply to carry the new applied digest (agent/lease-membership.ts
 * APPLIED_REFRESH_DELAY_MS). A check that a refused request changed nothing leaves these out.
 */
export const AGENT_OWN_KEYS: readonly string[] = [new Keyspace(DEFAULT_PREFIX).membersPrefix()];

/** Deletes every key (between tests sharing one etcd). Leases left behind simply expire. */
export async function wipeEtcd(client: Etcd3): Promise<void> {
  await client.delete().all();
}
