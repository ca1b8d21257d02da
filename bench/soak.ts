/**
 * Soak: no false Unreachable at the DEFAULT settings while the control plane is shaken.
 *
 *   npm run build && node dist/bench/soak.js [--minutes 30] [--agents 10] [--load 2]
 *       [--etcd-move-every 120] [--failover-every 300] [--json] [--keep]
 *
 * Starts a 3-member etcd (real processes, etcd's default raft timings:
 * test/helpers/etcd-cluster.ts), two coordinators (replicas c1, c2) and N agent processes, all
 * at their default settings (45 s lease, 2 s election TTL, 1.5 s stream grace), and a CPU
 * load of `--load` busy processes on the box. Then, until the time is up: every
 * `--etcd-move-every` seconds moves etcd's raft leader to another member (etcdctl
 * move-leader), and every `--failover-every` seconds SIGKILLs the leading coordinator and
 * restarts it as a follower. No agent is ever stopped, so every write of `reachable: false`
 * to a node record is a FALSE Unreachable; the run counts them (target 0) and also reports
 * the coordinator leader changes it did not cause, and each failover's re-attach time.
 *
 * `runSoak` is also what test/e2e/soak.test.ts runs for two minutes (asserting zero false
 * Unreachable, not timings).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import type { IKeyValue, Watcher } from 'etcd3';
import { formatHelp, parseOptions, type OptionSpecs, type ParseResult } from '../shared/options';
import { errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { decodeNode } from '../shared/records';
import { pickLeader } from '../shared/leader-record';
import { DEFAULT_LEASE_TTL_SECONDS } from '../agent/lease-membership';
import { EtcdCluster } from '../test/helpers/etcd-cluster';
import { TestCluster, type CoordinatorHandle } from '../test/helpers/cluster';
import { exitOnSignals } from '../test/helpers/children';

export interface SoakOptions {
  minutes: number;
  agents: number;
  /** Busy processes burning CPU for the whole run. */
  load: number;
  etcdMoveEverySec: number;
  failoverEverySec: number;
  keep?: boolean;
  /** Progress lines (stderr in the bench, the test's log in the suite). */
  say?: (line: string) => void;
}

export interface SoakResult {
  date: string;
  cores: number;
  loadavg1: number;
  minutes: number;
  agents: number;
  loadProcesses: number;
  etcdLeaderMoves: number;
  coordinatorFailovers: number;
  /** Writes of reachable=false on a node record: every one is false (no agent was stopped). */
  falseUnreachable: { nodeId: string; at: string; signal: string }[];
  /** Changes of the coordinator leader the soak did not cause by a SIGKILL. */
  unplannedLeaderChanges: number;
  /** Per failover: ms from the SIGKILL to the last agent re-attached (node record connected again). */
  reattachMs: number[];
}

/** The leading replica's id, from the election keys (the one rule, shared/leader-record.ts). */
async function leaderId(client: ReturnType<EtcdCluster['client']>, ks: Keyspace): Promise<string | undefined> {
  const res = await client.getAll().prefix(ks.electionPrefix()).sort('Create', 'Ascend').exec();
  const pick = pickLeader(res.kvs.map((kv) => ({ key: kv.key.toString(), createRevision: kv.create_revision, value: kv.value.toString() })), ks);
  return pick.leader?.id;
}

function burn(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const say = o.say ?? ((): void => undefined);
  const etcd = await EtcdCluster.start('soak');
  const cluster = new TestCluster(etcd, { name: 'soak', leaseTtlSec: DEFAULT_LEASE_TTL_SECONDS, keepDir: o.keep });
  const client = etcd.client();
  const ks = new Keyspace();
  const burners: ChildProcess[] = [];
  const watchers: Watcher[] = [];
  const result: SoakResult = {
    date: new Date().toISOString(), cores: cpus().length, loadavg1: NaN, minutes: o.minutes, agents: o.agents, loadProcesses: o.load,
    etcdLeaderMoves: 0, coordinatorFailovers: 0, falseUnreachable: [], unplannedLeaderChanges: 0, reattachMs: [],
  };
  try {
    say(`starting a 3-member etcd, coordinators c1 + c2 and ${o.agents} agents at the default settings; logs in ${cluster.logDir}`);
    const byId = new Map<string, CoordinatorHandle>();
    byId.set('c1', await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] }));
    byId.set('c2', await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false }));
    const ids = Array.from({ length: o.agents }, (_, i) => `soak-${String(i + 1).padStart(3, '0')}`);
    for (const id of ids) await cluster.startAgent(id);
    await cluster.waitForNodes(`${o.agents} nodes reachable and connected`, (ns) => ns.length === o.agents && ns.every((n) => n.reachable && n.connected === true), 180_000, 1000);

    // From here on every reachable=false is false: nothing stops an agent.
    /** Each node's last recorded hello (connectedAt): a new one after a failover is its re-attach. */
    const hello = new Map<string, string>();
    const nodes = await client.watch().prefix(ks.nodesPrefix()).create();
    nodes.on('put', (kv: IKeyValue) => {
      const key = kv.key.toString();
      const id = ks.parseNode(key);
      if (!id) return;
      const rec = decodeNode(key, kv.value.toString());
      if (rec.connected && rec.connectedAt) hello.set(id, rec.connectedAt);
      if (!rec.reachable) {
        result.falseUnreachable.push({ nodeId: id, at: new Date().toISOString(), signal: rec.unreachableSignal ?? 'lease' });
        say(`FALSE UNREACHABLE: ${id} (signal ${rec.unreachableSignal ?? 'lease'})`);
      }
    });
    watchers.push(nodes);
    let expectLeaderChange = false;
    let lastLeader = await leaderId(client, ks);
    const election = await client.watch().prefix(ks.electionPrefix()).create();
    const onElection = (): void => {
      leaderId(client, ks).then((now) => {
        if (now === undefined || now === lastLeader) return;
        if (!expectLeaderChange) {
          result.unplannedLeaderChanges++;
          say(`unplanned coordinator leader change: ${lastLeader ?? 'none'} → ${now}`);
        }
        expectLeaderChange = false;
        lastLeader = now;
      }, () => undefined);
    };
    election.on('put', onElection);
    election.on('delete', onElection);
    watchers.push(election);

    for (let i = 0; i < o.load; i++) burners.push(burn());
    say(`${o.load} busy process(es) started; soaking for ${o.minutes} min (etcd leader move every ${o.etcdMoveEverySec} s, coordinator failover every ${o.failoverEverySec} s)`);
    const started = Date.now();
    const end = started + o.minutes * 60_000;
    let nextMove = started + o.etcdMoveEverySec * 1000;
    let nextFailover = started + o.failoverEverySec * 1000;
    while (Date.now() < end) {
      const now = Date.now();
      if (now >= nextMove) {
        nextMove += o.etcdMoveEverySec * 1000;
        const moved = await etcd.moveLeader().catch((err: unknown) => { say(`etcd move-leader failed: ${errorMessage(err)}`); return undefined; });
        if (moved) {
          result.etcdLeaderMoves++;
          say(`+${Math.round((Date.now() - started) / 1000)} s: etcd leader moved ${moved.from} → ${moved.to}`);
        }
      }
      if (now >= nextFailover) {
        nextFailover += o.failoverEverySec * 1000;
        const leader = await leaderId(client, ks);
        const victim = leader ? byId.get(leader) : undefined;
        if (victim && leader) {
          expectLeaderChange = true;
          const before = new Map(hello);
          const killedAt = Date.now();
          await victim.kill();
          result.coordinatorFailovers++;
          // Re-attached: every node's hello recorded again, by the new leader.
          const deadline = Date.now() + 60_000;
          const reattached = (): boolean => ids.every((id) => hello.has(id) && hello.get(id) !== before.get(id));
          while (Date.now() < deadline && !reattached()) await new Promise((res) => setTimeout(res, 50));
          result.reattachMs.push(Date.now() - killedAt);
          say(`+${Math.round((killedAt - started) / 1000)} s: SIGKILL of leader ${leader}; all ${o.agents} agents re-attached after ${Date.now() - killedAt} ms`);
          await victim.restart(false);
          await victim.proc.waitForLog(/"msg":"listening"/, 60_000);
        }
      }
      await new Promise((res) => setTimeout(res, Math.max(50, Math.min(1000, end - Date.now()))));
    }
    result.loadavg1 = Number(loadavg()[0].toFixed(2));
  } catch (err) {
    say(`soak failed: ${errorMessage(err)}\n${cluster.logTails(15)}\n${etcd.tail(10)}`);
    throw err;
  } finally {
    for (const b of burners) b.kill('SIGKILL');
    await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
    await cluster.destroy();
    await etcd.destroy();
  }
  return result;
}

const OPTIONS = {
  minutes: { kind: 'int', default: 30, min: 1, placeholder: 'N', description: 'how long to soak' },
  agents: { kind: 'int', default: 10, min: 1, placeholder: 'N', description: 'agent processes' },
  load: { kind: 'int', default: 2, min: 0, placeholder: 'N', description: 'busy processes burning CPU during the soak' },
  etcdMoveEvery: { kind: 'int', default: 120, min: 5, placeholder: 'SECONDS', description: 'move etcd\'s raft leader this often' },
  failoverEvery: { kind: 'int', default: 300, min: 10, placeholder: 'SECONDS', description: 'SIGKILL the leading coordinator this often' },
  json: { kind: 'boolean', description: 'print the result as one JSON object' },
  keep: { kind: 'boolean', description: 'keep the temp dir (logs) afterwards' },
} as const satisfies OptionSpecs;

const USAGE = 'Usage: node dist/bench/soak.js [--minutes N] [--agents N] [--load N] [--etcd-move-every S] [--failover-every S] [--json]';

async function main(): Promise<number> {
  let parsed: ParseResult<typeof OPTIONS>;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`soak: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS));
    return 0;
  }
  const v = parsed.values;
  const r = await runSoak({
    minutes: v.minutes, agents: v.agents, load: v.load, etcdMoveEverySec: v.etcdMoveEvery, failoverEverySec: v.failoverEvery, keep: v.keep,
    say: v.json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (v.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } else {
    const sorted = [...r.reattachMs].sort((a, b) => a - b);
    process.stdout.write([
      `soak: ${r.date}, ${r.minutes} min, ${r.agents} agents, ${r.loadProcesses} busy process(es); machine ${r.cores} cores, load ${r.loadavg1} at the end`,
      `etcd leader moves ${r.etcdLeaderMoves}, coordinator failovers ${r.coordinatorFailovers}, unplanned leader changes ${r.unplannedLeaderChanges}`,
      `failover → all agents re-attached: ${sorted.length ? `median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms` : 'no failover'}`,
      `FALSE UNREACHABLE: ${r.falseUnreachable.length}${r.falseUnreachable.length ? ` (${r.falseUnreachable.map((f) => `${f.nodeId} ${f.signal} at ${f.at}`).join('; ')})` : ''}`,
      '',
    ].join('\n'));
  }
  return r.falseUnreachable.length === 0 ? 0 : 1;
}

if (require.main === module) {
  exitOnSignals();
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`soak: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
