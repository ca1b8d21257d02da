/**
 * Leader-failover benchmark: how long after the leader coordinator dies is the fleet served
 * by the new one?
 *
 * Starts a real etcd, two `cluster-coordinator` processes (replica ids c1, c2; the DEFAULT
 * election TTL, 2 s) and a sim-fleet child with N in-process agents (bench/sim-fleet.ts: real
 * leases, real gRPC streams; 1,000 by default). Then K rounds:
 *
 *   1. SIGKILL the leader process (no resign: its election key stays until its lease expires);
 *      or, with `--mode partition`, cut the leader from etcd (each replica dials etcd through
 *      its own test/helpers/tcp-proxy.ts: silence, no FIN) while it keeps running and holding
 *      its agents' streams;
 *   2. (a) kill → new leader acting: the time of the survivor's "became leader" log line (its
 *      own `ts`), and the first leader-only write after the kill (a put under nodes/ or
 *      events/, seen through an etcd watch; only the leader writes there, fenced);
 *   3. (b) kill → every agent re-attached (Welcome from the new leader): per-agent latency
 *      (p50 / p99) and the last one;
 *   4. restart the killed coordinator (same replica id) as the new follower, wait until it is
 *      campaigning, and go on. In partition mode: print the timeline (old leader stops acting,
 *      by its own log; etcd expires its key; the new leader acts), heal the cut (the bytes the
 *      old leader sent meanwhile now reach etcd), and count the events the old leader got into
 *      etcd after the new leader's first one: split brain, which fencing must keep at 0.
 *
 *   npm run build && node dist/bench/failover.js [--agents N] [--rounds K] [--mode kill|partition] [--election-ttl S]
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { parseOptions, formatHelp, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { EtcdServer } from '../test/helpers/etcd-server';
import { TestCluster, type CoordinatorHandle } from '../test/helpers/cluster';
import { TcpProxy } from '../test/helpers/tcp-proxy';
import { DEFAULT_SETTINGS } from '../coordinator/options';
import { decodeEvent } from '../shared/records';
import { SimFleet, machine, rssMiB, stats, type Stats } from './sim-fleet';
import { adminClients, unary } from './admin-client';
import { topFrames, type Frame } from './cpu-profile';
import { exitOnSignals } from '../test/helpers/children';

const OPTIONS = {
  agents: { kind: 'int', default: 1000, min: 1, placeholder: 'N', description: 'simulated agents (one sim-fleet process)' },
  rounds: { kind: 'int', default: 5, min: 1, placeholder: 'K', description: 'leader kills (or partitions) to measure' },
  mode: { kind: 'string', default: 'kill', choices: ['kill', 'partition'], description: 'SIGKILL the leader, or cut it from etcd (no FIN) and heal afterwards' },
  electionTtl: { kind: 'int', default: DEFAULT_SETTINGS.electionTtlMs / 1000, min: 2, placeholder: 'SECONDS', description: 'coordinators\' election lease TTL (the coordinator\'s default)' },
  leaseTtl: { kind: 'int', default: 45, min: 2, placeholder: 'SECONDS', description: 'agents\' membership lease TTL' },
  roundTimeout: { kind: 'int', default: 180, min: 10, placeholder: 'SECONDS', description: 'give up on a round after this long' },
  cpuProf: { kind: 'boolean', description: 'profile the new leader of round 1 for 15 s from its becoming leader (coordinator --cpu-profile), and the sim-fleet over its life (node --cpu-prof); print the top 10 frames of each; keeps the logs' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dir (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/failover.js [--agents N] [--rounds K] [--mode kill|partition] [--election-ttl S] [--cpu-prof] [--json]';

/** How long --cpu-prof profiles the new leader: the re-attach of 1,000 agents and its writes. */
const PROFILE_SECONDS = 15;

/** "ts" of the last line of `logs` whose msg is `msg`, as epoch ms. */
function lastLogTime(logs: string, msg: string): number | undefined {
  const needle = `"msg":"${msg}"`;
  const lines = logs.split('\n').filter((l) => l.includes(needle));
  const last = lines[lines.length - 1];
  if (!last) return undefined;
  try {
    const ts = (JSON.parse(last) as { ts?: string }).ts;
    return ts ? Date.parse(ts) : undefined;
  } catch {
    return undefined;
  }
}

/** An event of a coordinator as the bench's watch saw it: wall time seen, etcd revision, and the event's own type, `at` and message. */
interface SeenEvent { at: number; rev: bigint; type: string; eventAt: string; message: string }

/** Whether a coordinator's log says it leads now: its last "became leader" is after its last "lost leadership". */
function leadsByItsLog(logs: string): boolean {
  const became = lastLogTime(logs, 'became leader');
  const lost = lastLogTime(logs, 'lost leadership');
  return became !== undefined && (lost === undefined || became > lost);
}

/** The fields of every log line of `logs` whose msg is `msg`. */
function logRecords(logs: string, msg: string): Record<string, unknown>[] {
  const needle = `"msg":"${msg}"`;
  const out: Record<string, unknown>[] = [];
  for (const line of logs.split('\n')) {
    if (!line.includes(needle)) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the capture: skip it
    }
  }
  return out;
}

/** The new leader's main-loop blocks (coordinator/loop-delay.ts windows) and leadership losses in a stretch of its log. */
function loopHealth(logs: string): { loopDelayMaxMs: number; loopDelayP99Ms: number; leadershipLosses: number } {
  const windows = logRecords(logs, 'event loop delay');
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return {
    loopDelayMaxMs: Math.max(0, ...windows.map((w) => num(w.maxMs))),
    loopDelayP99Ms: Math.max(0, ...windows.map((w) => num(w.p99Ms))),
    leadershipLosses: logRecords(logs, 'lost leadership').length,
  };
}

/**
 * First put under nodes/ or events/ after a given time: the new leader's first fenced write.
 * Also keeps, per coordinator, when each of its events landed (the event's actor), and when
 * each election key was deleted: the partition timeline.
 */
class LeaderWrites {
  private watchers: Watcher[] = [];
  private after = Infinity;
  private first?: number;
  private resolve?: (at: number) => void;
  /** Coordinator id → its events as they landed. */
  readonly eventsBy = new Map<string, SeenEvent[]>();
  /** Each replica's candidate key deletions: wall time seen and etcd revision (a replica may campaign again and lose its key again). */
  readonly keyDeleted = new Map<string, { at: number; rev: bigint }[]>();

  constructor(private readonly client: Etcd3, private readonly ks: Keyspace) {}

  async start(): Promise<void> {
    for (const prefix of [this.ks.nodesPrefix(), this.ks.eventsPrefix()]) {
      const w = await this.client.watch().prefix(prefix).create();
      w.on('put', (kv: IKeyValue) => {
        const at = Date.now();
        const key = kv.key.toString();
        if (this.ks.parseEvent(key) === undefined) {
          this.seen(at);
          return;
        }
        try {
          const ev = decodeEvent(key, kv.value.toString());
          const actor = ev.actor;
          // An operator's event (the probe's SetGlobals, which any replica serves) is not the
          // leader's write; the leader's own events carry coordinator/<id>.
          if (!actor.startsWith('coordinator/')) return;
          this.seen(at);
          const id = actor.slice('coordinator/'.length);
          this.eventsBy.set(id, [...(this.eventsBy.get(id) ?? []), { at, rev: BigInt(kv.mod_revision), type: ev.type, eventAt: ev.at, message: ev.message ?? '' }]);
        } catch {
          this.seen(at); // not an event record: nothing to attribute
        }
      });
      this.watchers.push(w);
    }
    const election = await this.client.watch().prefix(this.ks.electionPrefix()).create();
    election.on('delete', (kv: IKeyValue) => {
      const id = this.ks.parseElectionCandidate(kv.key.toString());
      if (id) {
        this.keyDeleted.set(id, [...(this.keyDeleted.get(id) ?? []), { at: Date.now(), rev: BigInt(kv.mod_revision) }]);
      }
    });
    this.watchers.push(election);
  }

  /** The first deletion of replica `id`'s candidate key after wall time `t` (its lease expiring after a cut). */
  keyDeletedAfter(id: string, t: number): number | undefined {
    return (this.keyDeleted.get(id) ?? []).find((d) => d.at > t)?.at;
  }

  /** Events of coordinator `id` seen after wall time `t`. */
  eventsAfter(id: string, t: number): SeenEvent[] {
    return (this.eventsBy.get(id) ?? []).filter((e) => e.at > t);
  }

  /**
   * Events of coordinator `id` that etcd committed after the first deletion of its candidate
   * key seen after wall time `t`: writes accepted once it was no longer the leader (split
   * brain). By revision, not by arrival: an event committed before the key went but delivered
   * late by a busy watch is not one.
   */
  eventsCommittedAfterKeyLoss(id: string, t: number): SeenEvent[] | undefined {
    const rev = (this.keyDeleted.get(id) ?? []).find((d) => d.at > t)?.rev;
    if (rev === undefined) return undefined;
    return (this.eventsBy.get(id) ?? []).filter((e) => e.rev > rev);
  }

  /** Arms for the next write after `t`. */
  arm(t: number): Promise<number> {
    this.after = t;
    this.first = undefined;
    return new Promise((resolve) => { this.resolve = resolve; });
  }

  private seen(at: number): void {
    if (at < this.after || this.first !== undefined) return;
    this.first = at;
    this.resolve?.(at);
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.cancel()));
  }
}

interface Round {
  killed: string;
  /** Partition mode: ms after the cut (old leader's own log ts; etcd watch; etc.). */
  timeline?: { oldStoppedMs: number; keyExpiredMs: number; newActingMs: number; splitBrainEvents: number; splitBrainTypes?: string[] };
  newLeader: string;
  becameLeaderMs: number;
  firstWriteMs: number;
  /** Kill → the first operator config write (SetGlobals) the survivor answered OK (any replica serves it). */
  operatorWriteMs: number;
  reattach: Stats;
  lastReattachMs: number;
  leaderSeenBySimMs: number;
  /** From the kill until every agent re-attached, in the new leader's log: its longest event-loop block, the worst window p99, and how often it lost leadership (flapping). */
  newLeaderLoop: { loopDelayMaxMs: number; loopDelayP99Ms: number; leadershipLosses: number };
}

/**
 * Kill → the first operator write the survivor answers OK: an admin's SetGlobals (a config
 * write with its event), sent every 50 ms with a 1 s deadline from the kill on. Any replica
 * serves configuration writes (only jobs and the fleet's records are the leader's), so this is
 * how long the API refuses an operator's change across a failover, not the leader acting.
 */
async function firstOperatorWrite(cluster: TestCluster, address: string, round: number, timeoutMs: number): Promise<number> {
  const admin = adminClients(cluster, address);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        await unary(admin.config.setGlobals.bind(admin.config), { variablesJson: JSON.stringify({ failover_probe: round }) }, 1000);
        return Date.now();
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`no operator write answered within ${timeoutMs} ms: ${errorMessage(err)}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  } finally {
    admin.close();
  }
}

/** Resolves once `proc` logged a line with msg `msg` after character `from` of its log. */
async function logAfter(proc: { readonly logs: string }, from: number, msg: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!proc.logs.slice(from).includes(`"msg":"${msg}"`)) {
    if (Date.now() > deadline) throw new Error(`no "${msg}" within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); }),
  ]);
}

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`failover: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const { agents: n, rounds: k, electionTtl, leaseTtl, json, roundTimeout } = parsed.values;
  const cpuProf = parsed.values.cpuProf === true;
  const keep = parsed.values.keep === true || cpuProf;
  const partition = parsed.values.mode === 'partition';
  const say = (s: string): void => { if (!json) process.stderr.write(`${s}\n`); };
  const started = Date.now();

  const etcd = await EtcdServer.start('bench-failover');
  const cluster = new TestCluster(etcd, { name: 'bench-failover', keepDir: keep });
  const client = etcd.client();
  const ks = new Keyspace();
  const writes = new LeaderWrites(client, ks);
  const sandbox = mkdtempSync(join(existsShm() ? '/dev/shm' : tmpdir(), 'bench-failover-'));
  let fleet: SimFleet | undefined;
  const rounds: Round[] = [];
  const pooled: number[] = [];
  let initial = { registerMs: NaN, attachMs: NaN };
  const rss = { coordinatorMiB: NaN, fleetMiB: NaN };
  const proxies = new Map<string, TcpProxy>();
  const wholeRun = new Map<string, ReturnType<typeof loopHealth>>();
  let cpuProfile: { file: string; totalMs: number; frames: Frame[] } | undefined;
  let fleetCpuProfile: { file: string; totalMs: number; frames: Frame[] } | undefined;
  const fleetProfDir = join(cluster.logDir, 'sim-fleet-cpu-prof');
  const profileFile = (id: string): string => join(cluster.logDir, `${id}-from-leader.cpuprofile`);
  try {
    const coordArgs = (id: string): string[] => [
      '--replica-id', id, '--election-ttl', String(electionTtl), '--log-level', 'info',
      // The first replica to lead profiles its start instead; round 1's survivor profiles the re-attach.
      ...(cpuProf ? ['--cpu-profile', `leader:${PROFILE_SECONDS}:${profileFile(id)}`] : []),
    ];
    say(`starting etcd, coordinators c1 + c2 (election TTL ${electionTtl} s) and a sim-fleet of ${n} agents; ${partition ? 'partitions' : 'SIGKILLs'}; logs in ${cluster.logDir}`);
    if (partition) for (const id of ['c1', 'c2']) proxies.set(id, await TcpProxy.start(etcd.endpoint));
    const c1 = await cluster.startCoordinator({ extraArgs: coordArgs('c1'), etcd: proxies.get('c1')?.endpoint });
    const c2 = await cluster.startCoordinator({ extraArgs: coordArgs('c2'), waitLeader: false, etcd: proxies.get('c2')?.endpoint });
    const byId = new Map<string, CoordinatorHandle>([['c1', c1], ['c2', c2]]);
    await writes.start();

    const t0 = Date.now();
    fleet = new SimFleet({
      etcd: etcd.endpoint, clusterSecretFile: join(cluster.pkiDir, 'cluster-secret'), agents: n, leaseTtlSec: leaseTtl, sandbox, logFile: join(cluster.logDir, 'sim-fleet.log'),
      etcdClients: Math.max(1, Math.min(8, Math.ceil(n / 500))),
      // The agents' side of every handshake runs in this one process: is it the bottleneck?
      ...(cpuProf ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${fleetProfDir}`] } : {}),
    });
    const reg = await fleet.registered(roundTimeout * 1000);
    // Whoever leads once every agent is attached: on a loaded box c2 may have won the first
    // election, and the lease may move while hundreds of agents attach at once (waiting for
    // the replica that led before that hung the run).
    let term = await fleet.attached(undefined, roundTimeout * 1000);
    const firstLeader = term.leaderId;
    initial = { registerMs: reg.at - t0, attachMs: Math.max(...term.times) - t0 };
    rss.coordinatorMiB = rssMiB(byId.get(firstLeader)?.proc.pid ?? -1);
    rss.fleetMiB = rssMiB(fleet.pid);
    say(`${n} agents registered in ${initial.registerMs} ms and attached to ${firstLeader} in ${initial.attachMs} ms; RSS leader ${rss.coordinatorMiB} MiB, sim-fleet ${rss.fleetMiB} MiB`);

    let leader = firstLeader;
    for (let r = 0; r < k; r++) {
      // Let the previous round's dust settle (the restarted replica campaigning, streams idle).
      await new Promise((res) => setTimeout(res, 2000));
      // Leadership can move on its own between rounds (a loaded box: a late election keepalive):
      // cut or kill the replica that leads now, as its own log says, not the one the last round left.
      const leading = [...byId].filter(([, h]) => leadsByItsLog(h.proc.logs)).map(([id]) => id);
      if (leading.length === 1 && leading[0] !== leader) {
        say(`round ${r + 1}/${k}: leadership moved from ${leader} to ${leading[0]} on its own since the last round; ${leading[0]} is the one cut`);
        leader = leading[0];
      }
      const victim = byId.get(leader);
      const survivorId = leader === 'c1' ? 'c2' : 'c1';
      const survivor = byId.get(survivorId);
      if (!victim || !survivor) throw new Error('lost track of the coordinators');

      const killedAt = Date.now();
      const firstWrite = writes.arm(killedAt);
      const operatorWrite = firstOperatorWrite(cluster, survivor.address, r + 1, roundTimeout * 1000);
      const attached = fleet.attached(survivorId, roundTimeout * 1000, term.createRevision);
      // Only lines written after the cut count (in partition mode the processes keep their logs).
      const survivorFrom = survivor.proc.logs.length;
      const victimFrom = victim.proc.logs.length;
      const becomes = logAfter(survivor.proc, survivorFrom, 'became leader', roundTimeout * 1000);
      const proxy = proxies.get(leader);
      if (proxy) proxy.cut();
      else await victim.kill();
      await withTimeout(becomes, roundTimeout * 1000 + 1000, 'became leader');
      const becameAt = lastLogTime(survivor.proc.logs.slice(survivorFrom), 'became leader') ?? NaN;
      const writeAt = await withTimeout(firstWrite, roundTimeout * 1000, 'first leader write');
      const operatorAt = await operatorWrite;
      term = await attached;
      let timeline: Round['timeline'];
      if (proxy) {
        // The old leader, cut off but running, stopped acting on its own clock (its log line).
        await withTimeout(logAfter(victim.proc, victimFrom, 'lost leadership', roundTimeout * 1000), roundTimeout * 1000 + 1000, 'old leader lost leadership');
        // Its leadership ended by its own clock `lapsedMsAgo` before it logged the line (a loaded
        // loop runs the expiry timer late; isLeader() had turned false at the lapse already).
        const lost = logRecords(victim.proc.logs.slice(victimFrom), 'lost leadership').pop();
        const lapsedMsAgo = Number(lost?.lapsedMsAgo ?? 0);
        const loggedAt = typeof lost?.ts === 'string' ? Date.parse(lost.ts) : NaN;
        const stoppedAt = loggedAt - (Number.isFinite(lapsedMsAgo) ? lapsedMsAgo : 0);
        if (lapsedMsAgo > 50) say(`  ${leader}'s leadership lapsed by its clock ${Math.round(lapsedMsAgo)} ms before it logged "lost leadership" (+${loggedAt - killedAt} ms): its loop ran the expiry timer late`);
        // Heal: whatever it wrote into the cut connection reaches etcd now, and must be refused.
        proxy.heal();
        await new Promise((res) => setTimeout(res, 3000));
        // Split brain: events of the old leader committed after etcd deleted its key (by
        // revision); events merely seen after the new leader acted are printed too.
        const seenLate = writes.eventsAfter(leader, Math.min(becameAt, writeAt));
        const late = writes.eventsCommittedAfterKeyLoss(leader, killedAt) ?? seenLate;
        for (const e of seenLate) if (!late.includes(e)) say(`  event of ${leader} seen after ${survivorId} acted but committed before its key was deleted (rev ${e.rev}): ${e.type}`);
        timeline = {
          oldStoppedMs: stoppedAt - killedAt, keyExpiredMs: (writes.keyDeletedAfter(leader, killedAt) ?? NaN) - killedAt, newActingMs: becameAt - killedAt,
          splitBrainEvents: late.length,
          ...(late.length > 0 ? { splitBrainTypes: late.map((e) => `${e.type} (rev ${e.rev}, event at ${e.eventAt}, seen +${e.at - killedAt} ms: ${e.message.slice(0, 80)})`) } : {}),
        };
        for (const line of timeline.splitBrainTypes ?? []) say(`  late event of ${leader}: ${line}`);
        say(`round ${r + 1}/${k} timeline after the cut of ${leader}: ${leader} stops acting +${timeline.oldStoppedMs} ms, etcd expires its key +${timeline.keyExpiredMs} ms, ` +
          `${survivorId} acting +${timeline.newActingMs} ms; events of ${leader} committed after etcd deleted its key: ${timeline.splitBrainEvents}`);
      }
      // The loop-delay windows that end within a window after the last agent re-attached still cover the storm.
      await new Promise((res) => setTimeout(res, 5500));
      const newLeaderLoop = loopHealth(survivor.proc.logs.slice(survivorFrom));
      const lat = term.times.map((t) => t - killedAt);
      pooled.push(...lat);
      const round: Round = {
        killed: leader, newLeader: survivorId, ...(timeline ? { timeline } : {}),
        becameLeaderMs: becameAt - killedAt, firstWriteMs: writeAt - killedAt, operatorWriteMs: operatorAt - killedAt,
        reattach: stats(lat), lastReattachMs: Math.max(...lat), leaderSeenBySimMs: term.leaderSeenAt - killedAt, newLeaderLoop,
      };
      rounds.push(round);
      say(`round ${r + 1}/${k}: killed ${leader}; ${survivorId} became leader +${round.becameLeaderMs} ms, first fenced write +${round.firstWriteMs} ms, operator config write answered +${round.operatorWriteMs} ms, ` +
        `agents saw the new leader +${round.leaderSeenBySimMs} ms; re-attach p50 ${round.reattach.p50} ms, p99 ${round.reattach.p99} ms, last ${round.lastReattachMs} ms; ` +
        `${survivorId}'s event loop: longest block ${newLeaderLoop.loopDelayMaxMs} ms, worst 5 s window p99 ${newLeaderLoop.loopDelayP99Ms} ms, leadership lost ${newLeaderLoop.leadershipLosses}×`);

      if (!proxy) {
        await victim.restart(false);
        await victim.proc.waitForLog(/"msg":"listening"/, 30_000);
      }
      if (cpuProf && r === 0) {
        const file = profileFile(survivorId);
        const deadline = Date.now() + (PROFILE_SECONDS + 30) * 1000;
        while (!existsSync(file) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
        if (existsSync(file)) cpuProfile = { file, ...topFrames(file) };
        else say(`no CPU profile from ${survivorId} at ${file}`);
      }
      leader = survivorId;
    }
    rss.coordinatorMiB = Math.max(rss.coordinatorMiB, rssMiB(byId.get(leader)?.proc.pid ?? -1));
    // Over the whole run (initial attach included): leadership losses other than the rounds' own kills or cuts.
    for (const [id, h] of byId) wholeRun.set(id, loopHealth(h.proc.logs));
  } catch (err) {
    process.stderr.write(`failover: ${errorMessage(err)}\n${cluster.logTails(15)}\n`);
    return 1;
  } finally {
    await writes.stop().catch(() => undefined);
    await fleet?.stop().catch(() => undefined);
    const fleetProfile = cpuProf && existsSync(fleetProfDir) ? readdirSync(fleetProfDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (fleetProfile) fleetCpuProfile = { file: join(fleetProfDir, fleetProfile), ...topFrames(join(fleetProfDir, fleetProfile)) };
    for (const p of proxies.values()) await p.close();
    await cluster.destroy();
    await etcd.destroy();
    rmSync(sandbox, { recursive: true, force: true });
  }

  const all = rounds.map((r) => r.reattach);
  const result = {
    date: new Date().toISOString(), ...machine(), loadavg1: Number(loadavg()[0].toFixed(2)),
    agents: n, rounds: k, mode: partition ? 'partition' : 'kill', electionTtlSeconds: electionTtl, agentLeaseTtlSeconds: leaseTtl,
    initialRegisterMs: initial.registerMs, initialAttachMs: initial.attachMs,
    becameLeaderMs: stats(rounds.map((r) => r.becameLeaderMs)),
    firstFencedWriteMs: stats(rounds.map((r) => r.firstWriteMs)),
    operatorWriteMs: stats(rounds.map((r) => r.operatorWriteMs)),
    leaderSeenByAgentsMs: stats(rounds.map((r) => r.leaderSeenBySimMs)),
    reattachP50Ms: stats(all.map((s) => s.p50)),
    reattachP99Ms: stats(all.map((s) => s.p99)),
    lastReattachMs: stats(rounds.map((r) => r.lastReattachMs)),
    reattachPooledMs: stats(pooled),
    rssMiB: rss,
    newLeaderLoopDelayMaxMs: stats(rounds.map((r) => r.newLeaderLoop.loopDelayMaxMs)),
    newLeaderLeadershipLosses: rounds.reduce((sum, r) => sum + r.newLeaderLoop.leadershipLosses, 0),
    wholeRun: Object.fromEntries(wholeRun),
    perRound: rounds,
    ...(cpuProfile ? { cpuProfile } : {}),
    ...(fleetCpuProfile ? { fleetCpuProfile } : {}),
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const row = (name: string, s: Stats): string =>
    `${name.padEnd(40)}${[s.p50, s.p90, s.p99, s.min, s.max].map((v) => String(v).padStart(8)).join('')}`;
  process.stdout.write([
    `leader failover: ${result.date}`,
    `machine: ${result.cores} cores (${result.cpuModel}), load ${result.loadavg1}`,
    `N=${n} agents (one connection each), K=${k} leader ${partition ? 'partitions' : 'kills'}, election TTL ${electionTtl} s, agent lease TTL ${leaseTtl} s, wall ${result.wallSeconds} s`,
    `initial: all registered ${initial.registerMs} ms, all attached ${initial.attachMs} ms after the fleet started; RSS leader ${rss.coordinatorMiB} MiB, sim-fleet ${rss.fleetMiB} MiB`,
    `over the K rounds (ms after SIGKILL)       p50     p90     p99     min     max`,
    row('kill → "became leader" (log ts)', result.becameLeaderMs),
    row('kill → first fenced write (etcd watch)', result.firstFencedWriteMs),
    row('kill → operator config write answered', result.operatorWriteMs),
    row('kill → agents see the new leader', result.leaderSeenByAgentsMs),
    row('kill → re-attach, per-round p50', result.reattachP50Ms),
    row('kill → re-attach, per-round p99', result.reattachP99Ms),
    row('kill → last agent re-attached', result.lastReattachMs),
    row(`kill → re-attach, all K×N=${pooled.length} pooled`, result.reattachPooledMs),
    row('new leader: longest event-loop block', result.newLeaderLoopDelayMaxMs),
    `new leader lost its leadership during the re-attach: ${result.newLeaderLeadershipLosses}× over the K rounds`,
    `whole run, per replica (its last process): ${[...wholeRun].map(([id, h]) => `${id} longest block ${h.loopDelayMaxMs} ms, lost leadership ${h.leadershipLosses}×`).join('; ')}`,
    ...(cpuProfile ? [
      `round 1's new leader, CPU profile of ${PROFILE_SECONDS} s from becoming leader (${cpuProfile.totalMs} ms sampled; ${cpuProfile.file}), top frames by self time:`,
      ...cpuProfile.frames.map((fr) => `  ${String(fr.selfMs).padStart(7)} ms ${fr.pct.toFixed(1).padStart(5)}%  ${fr.frame}`),
    ] : []),
    ...(fleetCpuProfile ? [
      `the sim-fleet (all ${n} agents), CPU profile of its whole run (${fleetCpuProfile.totalMs} ms sampled; ${fleetCpuProfile.file}), top frames by self time:`,
      ...fleetCpuProfile.frames.map((fr) => `  ${String(fr.selfMs).padStart(7)} ms ${fr.pct.toFixed(1).padStart(5)}%  ${fr.frame}`),
    ] : []),
    ...(partition ? [
      'partition timeline per round (ms after the cut): old leader stops acting < etcd expires its key < new leader acting; split-brain events',
      ...rounds.map((r, i) => `  round ${i + 1} (${r.killed} cut): ${r.timeline?.oldStoppedMs} < ${r.timeline?.keyExpiredMs} < ${r.timeline?.newActingMs}; ${r.timeline?.splitBrainEvents}`),
    ] : []),
    '',
  ].join('\n'));
  return 0;
}

function existsShm(): boolean {
  try {
    return statSync('/dev/shm').isDirectory();
  } catch {
    return false;
  }
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`failover: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
