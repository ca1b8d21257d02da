/**
 * A simulated fleet: N real `Agent`s in ONE child process, for the failover and fan-out
 * benchmarks. Everything an agent does on the wire is real — its own etcd lease and member
 * key, its own gRPC stream to the elected leader on its own TCP connection with its own client
 * certificate, and commands run by the real CommandExecutor (file/directory/command
 * units) under a per-agent sandbox root in a tmpfs. What is shared, because a real fleet
 * would have one of each per machine and we have one machine: a small pool of etcd clients,
 * one leader source (one election watch instead of N), and ONE hardware collection at start
 * (systeminformation shells out; 10,000 collections would measure dmidecode). Each agent gets
 * its own copy of it (with its own hostname) as its facts provider, and commands render from
 * that agent's cached facts (`Agent.facts()`), which is exactly the per-command path of a
 * real agent: no collection per command.
 *
 * Trust as in production: every agent holds its own certificate and key (`agent <node id>`),
 * so every stream is its own mutual-TLS handshake. They are issued here from the cluster CA
 * directly (read from etcd with the cluster secret, `--cluster-secret-file`) instead of through
 * N joins: a join is one unary call per agent, not what these benchmarks measure.
 *
 *   node dist/bench/sim-fleet.js --etcd HOST:PORT --cluster-secret-file FILE --agents N [--prefix P] [--lease-ttl S] ...
 *
 * It reports on stdout, one JSON object per line:
 *   {"event":"started", pid, agents, ...}
 *   {"event":"registered", at, count, startedAt, times:[...]}   every agent's member key written
 *   {"event":"attached", at, leaderId, createRevision, leaderSeenAt, count, times:[...]}
 *       every agent is attached (Welcome received) to the leader of that term; times are the
 *       wall-clock ms of each agent's first attach to it (so a parent that killed the previous
 *       leader at T computes re-attach latencies as times[i] - T)
 *   {"event":"progress", at, registered, attached, leaderId, commands:{received, finished, failed}}
 *   {"event":"stopped", at}
 *
 * The parent side of this (spawn, read events, RSS) is `SimFleet` below; the benchmarks use it.
 */
import { PKI_FILES, readEtcdTls } from '../coordinator/pki/pki-dir';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Etcd3 } from 'etcd3';
import { Agent } from '../agent/agent';
import { StaticCredentials } from '../agent/node-certificate';
import { loadOrCreateCa } from '../coordinator/pki';
import { CommandExecutor } from '../agent/command-executor';
import { MemoryAppliedStore, appliedState } from '../agent/applied-store';
import { EtcdLeaderSource, type LeaderInfo } from '../agent/leader-discovery';
import { systemFactsProvider, type FactsProvider } from '../agent/facts-collector';
import { membershipTimings } from '../agent/lease-membership';
import { createUnitContext } from '../agent/unit-context';
import { createHandlerRegistry } from '../agent/units/handlers';
import { createEtcdClient } from '../shared/etcd';
import { errorMessage } from '../shared/errors';
import { Keyspace, DEFAULT_PREFIX } from '../shared/keyspace';
import { createLogger, isLogLevel, type LogFields, type Logger } from '../shared/logger';
import { formatHelp, parseOptions, type OptionSpecs, type ParseResult } from '../shared/options';
import { ManagedProcess, DIST } from '../test/helpers/processes';
import { percentile } from './failure-detection';

// --- shared figures helpers (used by failover.ts and fanout.ts) ---------------------------

export interface Stats { count: number; min: number; p50: number; p90: number; p99: number; max: number; mean: number }

export function stats(values: readonly number[]): Stats {
  const s = [...values].sort((a, b) => a - b);
  return {
    count: s.length, min: s[0] ?? NaN, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN,
    mean: s.length ? Math.round(s.reduce((a, b) => a + b, 0) / s.length) : NaN,
  };
}

/** VmRSS of a process in MiB (NaN when it is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds (user + system) of a process so far; with `children`, also of its children it
 * has waited for (cutime + cstime: an agent's exec'd probes and package tools).
 */
export function cpuSeconds(pid: number, children = false): number {
  // Fields after the command (which may contain spaces) start after the last ')'.
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  let ticks = Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
  if (children) ticks += Number(rest[13]) + Number(rest[14]); // cutime, cstime (16, 17)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/**
 * Samples a process's RSS (or the sum over several processes: a fleet split over sim-fleet
 * processes) every `intervalMs`; `peak` is the largest since the last `reset()`.
 */
export class RssSampler {
  peak = 0;
  last = NaN;
  private timer?: NodeJS.Timeout;
  constructor(private readonly pid: () => number | readonly number[], private readonly intervalMs = 200) {}
  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }
  sample(): number {
    const pids = this.pid();
    this.last = typeof pids === 'number' ? rssMiB(pids) : Math.round(pids.reduce((sum, p) => sum + rssMiB(p), 0) * 10) / 10;
    if (this.last > this.peak) this.peak = this.last;
    return this.last;
  }
  reset(): void { this.peak = this.sample(); }
  stop(): void { clearInterval(this.timer); }
}

export function machine(): { cores: number; cpuModel: string } {
  return { cores: cpus().length, cpuModel: cpus()[0]?.model ?? '' };
}

/** The node id of the i-th (0-based) simulated agent: sim-00001, sim-00002, ... */
export function simNodeId(i: number, idPrefix = 'sim-'): string {
  return `${idPrefix}${String(i + 1).padStart(5, '0')}`;
}

// --- the wire format of the child's report -------------------------------------------------

export interface StartedEvent { event: 'started'; at: number; pid: number; agents: number; etcdClients: number }
export interface RegisteredEvent { event: 'registered'; at: number; startedAt: number; count: number; times: number[] }
export interface AttachedEvent {
  event: 'attached'; at: number; leaderId: string; createRevision: string; leaderSeenAt: number; count: number; times: number[];
}
export interface ProgressEvent {
  event: 'progress'; at: number; registered: number; attached: number; leaderId: string;
  commands: { received: number; finished: number; failed: number };
  /**
   * This process over the progress period: event-loop delay (monitorEventLoopDelay, ms past
   * its 10 ms resolution), CPU used (% of one core, user + system, all threads), GC pauses,
   * and since the start: streams that ended ("disconnected from coordinator" / "coordinator
   * unreachable"), joins held back because the loop lagged.
   */
  loop: { p50Ms: number; p99Ms: number; maxMs: number };
  cpuPct: number;
  gc: { count: number; totalMs: number; maxMs: number };
  heapMiB: number;
  disconnects: number;
  joinsHeldMs: number;
}
export interface StoppedEvent { event: 'stopped'; at: number }
export type FleetEvent = StartedEvent | RegisteredEvent | AttachedEvent | ProgressEvent | StoppedEvent;

// --- the child program ---------------------------------------------------------------------

const OPTIONS = {
  etcd: { kind: 'list', required: true, placeholder: 'HOST:PORT', description: 'etcd endpoints' },
  agents: { kind: 'int', default: 100, min: 1, placeholder: 'N', description: 'simulated agents in this process' },
  prefix: { kind: 'string', default: DEFAULT_PREFIX, placeholder: '/PATH/', description: 'etcd key prefix' },
  idPrefix: { kind: 'string', default: 'sim-', placeholder: 'TEXT', description: 'node ids are <id-prefix>00001...' },
  leaseTtl: { kind: 'int', default: 45, min: 2, placeholder: 'SECONDS', description: 'membership lease TTL of every agent' },
  etcdClients: { kind: 'int', default: 4, min: 1, placeholder: 'K', description: 'etcd clients shared round robin by the agents' },
  clusterSecretFile: { kind: 'string', required: true, placeholder: 'FILE', description: 'the coordinators\' cluster secret: decrypts the CA in etcd that issues each agent its certificate' },
  etcdPkiDir: {
    kind: 'string', placeholder: 'DIR',
    description: 'pki dir whose ca.crt and etcd-coordinator.crt/.key the shared etcd clients present (a harness shortcut: real agents each use their own certificate; bench/etcd-auth-scale measures that) [default: the cluster secret file\'s dir]',
  },
  startRate: { kind: 'int', default: 0, min: 0, placeholder: 'PER_SECOND', description: 'agents started per second at most (0 = no rate limit)' },
  startWindow: {
    kind: 'int', default: 0, min: 0, placeholder: 'K',
    description: 'at most K agents joining at once (started, not yet registered and attached); the next starts as one finishes; the window starts at 16 and adapts below K (0 = no window)',
  },
  joinMaxLagMs: {
    kind: 'int', default: 0, min: 0, placeholder: 'MS',
    description: 'start no agent while this process\'s event loop is more than MS late (measured every 100 ms): joins are the work that can wait, PING answers of attached agents cannot (0 = off)',
  },
  joinStallMs: { kind: 'int', default: 30_000, min: 1000, placeholder: 'MS', description: 'a join still unfinished after this long stops holding a place in the window (it keeps retrying on its own)' },
  sandbox: { kind: 'string', placeholder: 'DIR', description: 'per-agent node roots go under DIR/<node id> [default: /dev/shm/sim-fleet-<pid>]' },
  progressMs: { kind: 'int', default: 2000, min: 100, placeholder: 'MS', description: 'progress line period' },
  logLevel: { kind: 'string', default: 'warn', choices: ['debug', 'info', 'warn', 'error', 'silent'], description: 'agents\' own log level (stderr)' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/sim-fleet.js --etcd HOST:PORT --agents N [options]';

function emit(e: FleetEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

/**
 * A Logger that taps the agents' own log lines for the few events the report is built from
 * ("connected to coordinator", commands), without serialising anything that is not printed.
 */
class TapLogger implements Logger {
  constructor(private readonly out: Logger, private readonly fields: LogFields, private readonly tap: (msg: string, fields: LogFields) => void) {}
  debug(msg: string, f?: LogFields): void { this.out.debug(msg, { ...this.fields, ...f }); }
  info(msg: string, f?: LogFields): void { this.tap(msg, { ...this.fields, ...f }); this.out.info(msg, { ...this.fields, ...f }); }
  warn(msg: string, f?: LogFields): void { this.tap(msg, { ...this.fields, ...f }); this.out.warn(msg, { ...this.fields, ...f }); }
  error(msg: string, f?: LogFields): void { this.out.error(msg, { ...this.fields, ...f }); }
  child(f: LogFields): Logger { return new TapLogger(this.out, { ...this.fields, ...f }, this.tap); }
}

/** The attachments of one leadership term (one leader id + create revision). */
interface Term { leader: LeaderInfo; seenAt: number; times: Map<string, number>; reported: boolean }

async function childMain(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`sim-fleet: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const o = parsed.values;
  const level = isLogLevel(o.logLevel) ? o.logLevel : 'warn';
  const out = createLogger({ level, fields: { service: 'sim-fleet' } });
  const keyspace = new Keyspace(o.prefix);
  const n = o.agents;
  const ids = Array.from({ length: n }, (_, i) => simNodeId(i, o.idPrefix));
  const sandbox = o.sandbox ?? `/dev/shm/sim-fleet-${process.pid}`;
  const ownsSandbox = o.sandbox === undefined;
  const bootId = randomUUID();

  const pkiDir = o.etcdPkiDir ?? dirname(o.clusterSecretFile);
  const tls = await readEtcdTls({ caFile: join(pkiDir, PKI_FILES.caCert), certFile: join(pkiDir, PKI_FILES.etcdCoordinatorCert), keyFile: join(pkiDir, PKI_FILES.etcdCoordinatorKey) });
  const clients: Etcd3[] = Array.from({ length: o.etcdClients }, () => createEtcdClient({ endpoints: o.etcd, tls }));
  const leaderSource = new EtcdLeaderSource({ etcd: clients[0], keyspace, logger: out, callTimeoutMs: membershipTimings(o.leaseTtl * 1000).callTimeoutMs });

  // Collected once for the machine (see the file comment); each agent reports its own copy.
  const machineFacts = await systemFactsProvider({ hostname: 'sim-fleet', logger: out })();
  const handlers = createHandlerRegistry();

  // What the report is made of.
  const registeredAt = new Map<string, number>();
  /** Agents that have attached to some coordinator at least once (for the start window). */
  const everAttached = new Set<string>();
  /** Joins in flight: node id → when it started, until registered and attached. */
  const joining = new Map<string, number>();
  /** Wakes the start loop when a place in the window may have freed. */
  let joined: () => void = () => undefined;
  /**
   * The window itself adapts (additive increase, multiplicative decrease, as TCP's congestion
   * window): it starts small, grows by one per finished join up to --start-window, and halves
   * (at most once a second) when a joining agent misses a deadline (etcd or its Welcome),
   * which is the sign that this process or the cluster is behind.
   */
  let window = Math.min(o.startWindow, 16);
  let lastCut = 0;
  const joinStep = (nodeId: string): void => {
    if (joining.has(nodeId) && registeredAt.has(nodeId) && everAttached.has(nodeId)) {
      joining.delete(nodeId);
      window = Math.min(o.startWindow, window + 1);
      joined();
    }
  };
  const joinMissed = (nodeId: string): void => {
    if (!joining.has(nodeId) || Date.now() - lastCut < 1000) return;
    lastCut = Date.now();
    window = Math.max(1, Math.floor(window / 2));
  };
  const attachedTo = new Map<string, string>(); // node id → coordinator id it is attached to now
  const commands = { received: 0, finished: 0, failed: 0 };
  let disconnects = 0;
  let joinsHeldMs = 0;
  let term: Term | undefined;
  const startedAt = Date.now();

  const maybeReportTerm = (): void => {
    if (!term || term.reported || term.times.size < n) return;
    term.reported = true;
    const times = ids.map((id) => term?.times.get(id) ?? NaN);
    emit({ event: 'attached', at: Date.now(), leaderId: term.leader.id, createRevision: term.leader.createRevision, leaderSeenAt: term.seenAt, count: n, times });
  };
  const onLeader = (leader: LeaderInfo | undefined): void => {
    if (!leader || (term && term.leader.id === leader.id && term.leader.createRevision === leader.createRevision)) return;
    term = { leader, seenAt: Date.now(), times: new Map(), reported: false };
  };
  leaderSource.subscribe(onLeader);

  const tap = (msg: string, f: LogFields): void => {
    const nodeId = typeof f.nodeId === 'string' ? f.nodeId : '';
    if (!nodeId) return;
    switch (msg) {
      case 'connected to coordinator': {
        const coordinatorId = typeof f.coordinatorId === 'string' ? f.coordinatorId : '';
        attachedTo.set(nodeId, coordinatorId);
        if (!everAttached.has(nodeId)) { everAttached.add(nodeId); joinStep(nodeId); }
        if (term && coordinatorId === term.leader.id && !term.times.has(nodeId)) {
          term.times.set(nodeId, Date.now());
          maybeReportTerm();
        }
        return;
      }
      case 'disconnected from coordinator':
      case 'coordinator unreachable':
        if (attachedTo.delete(nodeId)) disconnects++;
        joinMissed(nodeId);
        return;
      case 'etcd unreachable':
        joinMissed(nodeId);
        return;
      case 'command received': commands.received++; return;
      case 'command finished': commands.finished++; if (f.outcome !== 'succeeded') commands.failed++; return;
      default:
    }
  };
  const agentLogger = new TapLogger(out, {}, tap);

  // Each agent its own connection, as on real machines (grpc-js's global pool would otherwise
  // put agents with equal channel settings on one; their per-agent certificates keep them apart
  // anyway, so this says it rather than relying on it).
  const channelOptions = { 'grpc.use_local_subchannel_pool': 1 };
  // One certificate per agent, from the cluster CA the coordinators created.
  const { ca } = await loadOrCreateCa({ etcd: clients[0], keyspace, clusterSecretFile: o.clusterSecretFile });
  // Issued before any agent starts (a set-up phase), 32 at a time: key generation and signing
  // run on libuv's thread pool, so the chunks overlap them.
  const credentials: StaticCredentials[] = [];
  for (let i = 0; i < n; i += 32) {
    const chunk = await Promise.all(ids.slice(i, i + 32).map((nodeId) => ca.issueKeyAndCertificate({ role: 'agent', name: nodeId })));
    for (const issued of chunk) credentials.push(new StaticCredentials({ caPem: ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem }));
  }
  const agents: Agent[] = [];
  const contexts: { close(): void }[] = [];
  mkdirSync(sandbox, { recursive: true });
  for (let i = 0; i < n; i++) {
    const nodeId = ids[i];
    const root = join(sandbox, nodeId);
    mkdirSync(root, { recursive: true });
    const log = agentLogger.child({ nodeId });
    const store = new MemoryAppliedStore();
    const context = createUnitContext({ root, logger: log, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    contexts.push(context);
    const executor = new CommandExecutor({
      handlers, context, applied: store, logger: log, facts: () => agent.facts(),
      // As a real agent does: the member record carries the applied digest. (Called only after
      // a command ran, so `agent` below is initialised by then.)
      onAppliedChanged: () => { agent.appliedChanged(); },
    });
    const factsProvider: FactsProvider = () => Promise.resolve({ ...structuredClone(machineFacts), hostname: nodeId });
    const agent: Agent = new Agent(
      { nodeId, bootId, hostname: nodeId, leaseTtlMs: o.leaseTtl * 1000, prefix: o.prefix, factsIntervalMs: 0, hardwareCheckIntervalMs: 0 },
      {
        etcd: clients[i % clients.length], logger: agentLogger, credentials: credentials[i], factsProvider, commandHandler: executor,
        applied: () => appliedState(store), leaderSource, channelOptions,
      },
    );
    agents.push(agent);
  }

  emit({ event: 'started', at: Date.now(), pid: process.pid, agents: n, etcdClients: o.etcdClients });
  await leaderSource.start();
  onLeader(leaderSource.current());

  // What this process's own loop and CPU do (the PINGs of every attached stream are answered
  // by this one loop: a late loop is a dropped connection at the coordinator's 2 s timeout).
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  const late = (ns: number): number => Math.max(0, Math.round(ns / 1e6 - 10));
  const gc = { count: 0, totalMs: 0, maxMs: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let cpuBefore = process.cpuUsage();
  let cpuAt = Date.now();
  const progress = setInterval(() => {
    const counts = new Map<string, number>();
    for (const c of attachedTo.values()) counts.set(c, (counts.get(c) ?? 0) + 1);
    const leaderId = term?.leader.id ?? '';
    const cpu = process.cpuUsage(cpuBefore);
    const now = Date.now();
    const cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / Math.max(1, now - cpuAt)) * 1000) / 10;
    cpuBefore = process.cpuUsage();
    cpuAt = now;
    emit({
      event: 'progress', at: now, registered: registeredAt.size, attached: counts.get(leaderId) ?? 0, leaderId, commands: { ...commands },
      loop: { p50Ms: late(eld.percentile(50)), p99Ms: late(eld.percentile(99)), maxMs: late(eld.max) }, cpuPct,
      gc: { count: gc.count, totalMs: Math.round(gc.totalMs), maxMs: Math.round(gc.maxMs) },
      heapMiB: Math.round(process.memoryUsage().heapUsed / 1048576), disconnects, joinsHeldMs,
    });
    eld.reset();
    gc.count = 0; gc.totalMs = 0; gc.maxMs = 0;
  }, o.progressMs);
  // The loop's lateness now, for holding joins back (--join-max-lag-ms).
  let lagMs = 0;
  let lagExpected = Date.now() + 100;
  const lagTimer = setInterval(() => {
    const now = Date.now();
    lagMs = Math.max(0, now - lagExpected);
    lagExpected = now + 100;
  }, 100);

  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });

  // Start, paced by what has joined: a fixed start rate overran the single event loop at 5,000
  // (every join is a lease grant, two puts and a mutual-TLS handshake; their deadlines expired
  // while the loop was busy, and the retries kept it busy: congestion collapse). With a window
  // only K joins are in flight at once, so the rate follows what this process and the cluster
  // manage (and the window adapts: see `window`). A join stalled past --join-stall-ms stops
  // holding its place (it retries on its own).
  const pace = o.startRate > 0 ? 1000 / o.startRate : 0;
  const windowFull = (): boolean => {
    if (o.startWindow === 0 || joining.size < window) return false;
    const stalledBefore = Date.now() - o.joinStallMs;
    for (const [id, at] of joining) if (at < stalledBefore) joining.delete(id);
    return joining.size >= window;
  };
  void (async () => {
    for (let i = 0; i < n && !stopping; i++) {
      while (windowFull() && !stopping) {
        // Woken by the next join to finish; the timeout re-checks for stalled joins.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1000);
          joined = () => { clearTimeout(t); resolve(); };
        });
        joined = () => undefined;
      }
      if (o.joinMaxLagMs > 0 && lagMs > o.joinMaxLagMs) {
        const heldFrom = Date.now();
        while (lagMs > o.joinMaxLagMs && !stopping) await new Promise((r) => setTimeout(r, 100));
        joinsHeldMs += Date.now() - heldFrom;
      }
      const a = agents[i];
      const nodeId = a.identity.nodeId;
      joining.set(nodeId, Date.now());
      await a.start();
      void a.whenRegistered().then(() => {
        if (registeredAt.has(nodeId)) return;
        registeredAt.set(nodeId, Date.now());
        joinStep(nodeId);
        if (registeredAt.size === n) emit({ event: 'registered', at: Date.now(), startedAt, count: n, times: ids.map((id) => registeredAt.get(id) ?? NaN) });
      });
      if (pace > 0) {
        const due = startedAt + (i + 1) * pace;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      } else if (i % 200 === 199) {
        // Yield now and then so 10,000 synchronous starts do not starve the event loop.
        await new Promise((r) => setImmediate(r));
      }
    }
  })();

  await stopped;
  stopping = true;
  clearInterval(progress);
  clearInterval(lagTimer);
  eld.disable();
  gcObserver.disconnect();
  // Revoke every lease (so the nodes go away at once), bounded: a stuck etcd must not hang us.
  const force = setTimeout(() => process.exit(1), 20_000);
  force.unref();
  await Promise.all(agents.map((a) => a.stop(1000).catch(() => undefined)));
  await leaderSource.close();
  for (const c of contexts) c.close();
  for (const c of clients) c.close();
  if (ownsSandbox) rmSync(sandbox, { recursive: true, force: true });
  emit({ event: 'stopped', at: Date.now() });
  return 0;
}

// --- the parent's handle -------------------------------------------------------------------

export interface SimFleetOptions {
  etcd: string;
  /** The coordinators' cluster secret file (TestCluster: <pkiDir>/cluster-secret). */
  clusterSecretFile: string;
  agents: number;
  prefix?: string;
  /** Node ids <idPrefix>00001...: several sim-fleets (processes) against one cluster need distinct ones. */
  idPrefix?: string;
  leaseTtlSec?: number;
  etcdClients?: number;
  startRate?: number;
  /** At most this many joins in flight (0: no window). */
  startWindow?: number;
  /** Hold joins while the child's loop is later than this (0: off). */
  joinMaxLagMs?: number;
  sandbox?: string;
  logFile?: string;
  logLevel?: string;
  /** Extra node flags, e.g. --max-old-space-size=4096 for 10,000 agents. */
  nodeArgs?: string[];
}

/** The sim-fleet child process as the benchmarks drive it: spawn, wait for events, RSS, stop. */
export class SimFleet {
  readonly proc: ManagedProcess;
  readonly events: FleetEvent[] = [];
  private readonly waiters: { match: (e: FleetEvent) => boolean; resolve: (e: FleetEvent) => void }[] = [];
  lastProgress?: ProgressEvent;
  /** Progress events not yet taken by `takeProgress()` (a parent's periodic summary). */
  private progressSince: ProgressEvent[] = [];
  /** The node ids of this fleet's agents, in start order. */
  readonly nodeIds: string[];

  constructor(o: SimFleetOptions) {
    this.nodeIds = Array.from({ length: o.agents }, (_, i) => simNodeId(i, o.idPrefix));
    const script = join(DIST, 'bench', 'sim-fleet.js');
    const args = [
      ...(o.nodeArgs ?? []), script,
      '--etcd', o.etcd, '--cluster-secret-file', o.clusterSecretFile, '--agents', String(o.agents),
      ...(o.prefix ? ['--prefix', o.prefix] : []),
      ...(o.idPrefix ? ['--id-prefix', o.idPrefix] : []),
      ...(o.leaseTtlSec ? ['--lease-ttl', String(o.leaseTtlSec)] : []),
      ...(o.etcdClients ? ['--etcd-clients', String(o.etcdClients)] : []),
      ...(o.startRate !== undefined ? ['--start-rate', String(o.startRate)] : []),
      ...(o.startWindow !== undefined ? ['--start-window', String(o.startWindow)] : []),
      ...(o.joinMaxLagMs !== undefined ? ['--join-max-lag-ms', String(o.joinMaxLagMs)] : []),
      ...(o.sandbox ? ['--sandbox', o.sandbox] : []),
      ...(o.logLevel ? ['--log-level', o.logLevel] : []),
    ];
    this.proc = new ManagedProcess(`sim-fleet(${o.agents})`, process.execPath, args, { logFile: o.logFile });
    const stdout = this.proc.proc.stdout;
    if (!stdout) throw new Error('sim-fleet has no stdout');
    createInterface({ input: stdout }).on('line', (line) => {
      if (!line.startsWith('{"event"')) return;
      let e: FleetEvent;
      try {
        e = JSON.parse(line) as FleetEvent;
      } catch {
        return;
      }
      if (e.event === 'progress') {
        this.lastProgress = e;
        this.progressSince.push(e);
      } else this.events.push(e);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].match(e)) this.waiters.splice(i, 1)[0].resolve(e);
      }
    });
  }

  get pid(): number { return this.proc.pid; }

  /** The progress events since the last call. */
  takeProgress(): ProgressEvent[] {
    const taken = this.progressSince;
    this.progressSince = [];
    return taken;
  }

  /** The next event (or one already seen) matching `match`; rejects after `timeoutMs` or when the child dies. */
  waitFor<E extends FleetEvent>(what: string, match: (e: FleetEvent) => e is E, timeoutMs: number, includeSeen = true): Promise<E> {
    if (includeSeen) {
      const seen = this.events.find(match);
      if (seen) return Promise.resolve(seen);
    }
    return new Promise<E>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.lastProgress;
        reject(new Error(`sim-fleet: no ${what} within ${timeoutMs} ms` + (p ? ` (last progress: ${p.registered} registered, ${p.attached} attached to ${p.leaderId || 'no leader'})` : '')));
      }, timeoutMs);
      void this.proc.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`sim-fleet exited (${code ?? signal ?? '?'}) while waiting for ${what}: ${this.proc.logs.slice(-1500)}`));
      });
      this.waiters.push({ match, resolve: (e) => { clearTimeout(timer); resolve(e as E); } });
    });
  }

  registered(timeoutMs: number): Promise<RegisteredEvent> {
    return this.waitFor('registration of every agent', (e): e is RegisteredEvent => e.event === 'registered', timeoutMs);
  }

  /** Every agent attached to the leader `leaderId` (in a term newer than `afterRevision`, if given). */
  attached(leaderId: string | undefined, timeoutMs: number, afterRevision?: string): Promise<AttachedEvent> {
    return this.waitFor(`every agent attached to ${leaderId ?? 'the leader'}`, (e): e is AttachedEvent =>
      e.event === 'attached' && (leaderId === undefined || e.leaderId === leaderId) &&
      (afterRevision === undefined || BigInt(e.createRevision) > BigInt(afterRevision)), timeoutMs);
  }

  /** SIGTERM (agents revoke their leases), SIGKILL after `graceMs`. */
  async stop(graceMs = 25_000): Promise<void> {
    await this.proc.stop(graceMs);
  }
}

if (require.main === module) {
  childMain().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`sim-fleet: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
