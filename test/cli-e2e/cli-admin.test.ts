/**
 * End to end, real processes: the built clusterctl against real coordinators (two replicas),
 * a real etcd and real agents. status, events (list and --watch), node maintenance, node
 * label, every command's --help, completion scripts run by a real bash, the config file, and
 * bad input (exit 1, ONE line, etcd unchanged).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { BIN, clusterctl, delay, etcdSnapshot, run, snapshotDiff, AGENT_OWN_KEYS, spawnNode, waitFor, type TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { commandTree } from '../../cli/command-tree';
import type { Command } from '../../cli/command';
import type { CliContext } from '../../cli/context';
import { expectExit, expectOneLineError } from '../helpers/cli-results';

async function quietSnapshot(cluster: TestCluster, client: Parameters<typeof etcdSnapshot>[0]): Promise<Record<string, string>> {
  let before: Record<string, string> = {};
  await waitFor('a quiet keyspace', async () => {
    const a = await etcdSnapshot(client);
    await delay(1500);
    before = await etcdSnapshot(client);
    return JSON.stringify(a) === JSON.stringify(before);
  }, { timeoutMs: 30_000, intervalMs: 0 });
  void cluster;
  return before;
}

interface EventJson { seq: number; type: string; nodeId: string; message: string; actor: string }

/** Every command path (primary names), root excluded: what --help must cover. */
function commandPaths(root: Command<CliContext>): string[][] {
  const out: string[][] = [];
  const walk = (c: Command<CliContext>, path: string[]): void => {
    if (path.length) out.push(path);
    for (const s of c.subcommands ?? []) {
      // `node get` / `jobs describe` are the same objects under a second parent: one visit each path.
      walk(s, [...path, s.name]);
    }
  };
  walk(root, []);
  return out;
}

describe('cli-e2e: status, events, maintenance, labels, help, completion, config file, bad input', function () {
  this.timeout(240_000);
  const suite = e2eSuite('cli-admin');

  it('status and the node admin commands, with every output format parsed back', async () => {
    const cluster = suite.cluster({ name: 'cli-admin', leaseTtlSec: 3 });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false });
    await cluster.startAgent('n1');
    await cluster.startAgent('n2');
    await cluster.waitForNodes('both Discovered', (ns) => ns.length === 2 && ns.every((n) => n.state === 'Discovered' && n.reachable));

    // status: leader, both replicas, etcd health, counts.
    await waitFor('both replicas campaigning', async () => {
      const r = await cluster.ctl(['status', '-o', 'json']);
      const s = JSON.parse(r.stdout) as { replicas: unknown[] };
      return s.replicas.length === 2;
    }, { timeoutMs: 20_000, intervalMs: 300 });
    const st = JSON.parse(expectExit(await cluster.ctl(['status', '-o', 'json']), 0).stdout) as {
      leader: { id: string; address: string }; replicas: { id: string; leader: boolean }[];
      etcd: { endpoint: string; healthy: boolean; version: string; dbSize: number; dbSizeInUse: number; quotaBytes: number; isLeader: boolean }[];
      nodes: { total: number; byState: Record<string, number>; reachable: number; unreachable: number; connected: number }; jobsRunning: number;
    };
    expect(st.leader).to.deep.equal({ id: 'c1', address: c1.address });
    expect(st.replicas.map((r) => [r.id, r.leader])).to.deep.equal([['c1', true], ['c2', false]]);
    expect(st.etcd).to.have.length(1);
    expect(st.etcd[0].endpoint).to.equal(suite.etcd.endpoint.replace(/^https?:\/\//, ''));
    expect(st.etcd[0]).to.include({ healthy: true, isLeader: true });
    expect(st.etcd[0].version).to.match(/^3\.\d+\.\d+/);
    expect(st.etcd[0].dbSize).to.be.above(0);
    expect(st.etcd[0].dbSizeInUse).to.be.above(0).and.at.most(st.etcd[0].dbSize);
    // etcd 3.4 does not report its quota: the coordinator's --etcd-quota-bytes, etcd's default.
    expect(st.etcd[0].quotaBytes).to.equal(2 * 1024 ** 3);
    expect(st.nodes).to.deep.include({ total: 2, byState: { Discovered: 2 }, reachable: 2, unreachable: 0 });
    expect(st.jobsRunning).to.equal(0);
    const stYaml = parseYaml(expectExit(await cluster.ctl(['status', '-o', 'yaml']), 0).stdout) as typeof st;
    expect(stYaml.leader).to.deep.equal(st.leader);
    const stTable = expectExit(await cluster.ctl(['status']), 0).stdout;
    expect(stTable).to.match(/^Leader: +c1 \(127\.0\.0\.1:\d+\)$/m);
    expect(stTable).to.match(/^ +Discovered +2$/m);
    expect(stTable).to.match(/ [\d.]+ [KM]iB \/ 2(\.0)? GiB \([\d.]+%(, [\d.]+ [KM]iB in use)?\) /);
    // Any replica answers: the follower reports the same leader.
    const fromFollower = JSON.parse(expectExit(await cluster.ctl(['--coordinator', cluster.coordinators[1].address, 'status', '-o', 'json']), 0).stdout) as typeof st;
    expect(fromFollower.leader).to.deep.equal(st.leader);

    // maintenance on: the flag, the event with the reason; again: no second event.
    const on = JSON.parse(expectExit(await cluster.ctl(['node', 'maintenance', 'on', 'n1', '--reason', 'disk swap', '-o', 'json']), 0).stdout) as { id: string; maintenance: boolean }[];
    expect(on.map((n) => [n.id, n.maintenance])).to.deep.equal([['n1', true]]);
    expect((await cluster.node('n1'))?.maintenance).to.equal(true);
    const evs = (): Promise<EventJson[]> => cluster.ctl(['events', '--node', 'n1', '-o', 'json']).then((r) => JSON.parse(expectExit(r, 0).stdout) as EventJson[]);
    const m1 = (await evs()).filter((e) => e.type === 'node.maintenance');
    expect(m1).to.have.length(1);
    // The actor is the identity of clusterctl's certificate (the cluster's admin.yaml), not a name it sent.
    expect(m1[0]).to.include({ nodeId: 'n1', actor: 'user:admin' });
    expect(m1[0].message).to.contain('disk swap');
    expectExit(await cluster.ctl(['node', 'maintenance', 'on', 'n1']), 0);
    expect((await evs()).filter((e) => e.type === 'node.maintenance')).to.have.length(1);
    expect(expectExit(await cluster.ctl(['node', 'maintenance', 'off', 'n1']), 0).stdout).to.match(/^n1 +Discovered +yes/m);
    expect((await cluster.node('n1'))?.maintenance).to.equal(false);

    // labels: set two, remove one; selectors see them.
    const labelled = JSON.parse(expectExit(await cluster.ctl(['node', 'label', 'n1', 'rack=r1', 'gpu=yes', '-o', 'json']), 0).stdout) as { labels: Record<string, string> };
    expect(labelled.labels).to.deep.equal({ gpu: 'yes', rack: 'r1' });
    const removed = parseYaml(expectExit(await cluster.ctl(['node', 'label', 'n1', 'gpu-', '-o', 'yaml']), 0).stdout) as { labels: Record<string, string> };
    expect(removed.labels).to.deep.equal({ rack: 'r1' });
    expect((await cluster.nodes(['-l', 'rack=r1'])).map((n) => n.id)).to.deep.equal(['n1']);
    expect((await evs()).filter((e) => e.type === 'node.labels').map((e) => e.message)).to.deep.equal(['labels rack=r1 gpu=yes', 'labels gpu-']);

    // events: table, wide, yaml; the global list holds both nodes' discovery.
    const all = JSON.parse(expectExit(await cluster.ctl(['events', '-o', 'json', '--limit', '1000']), 0).stdout) as EventJson[];
    expect(all.map((e) => e.seq)).to.deep.equal([...all.map((e) => e.seq)].sort((a, b) => a - b));
    expect([...new Set(all.map((e) => e.nodeId))]).to.include.members(['n1', 'n2']);
    expect((parseYaml(expectExit(await cluster.ctl(['events', '-o', 'yaml', '--limit', '3']), 0).stdout) as EventJson[])).to.have.length(3);
    expect(expectExit(await cluster.ctl(['events', '--node', 'n1']), 0).stdout.split('\n')[0]).to.match(/^SEQ +AGE +TYPE +NODE +JOB +CHANGE +MESSAGE$/);
    expect(expectExit(await cluster.ctl(['events', '--node', 'n1', '-o', 'wide']), 0).stdout).to.match(/node\.maintenance .*user:admin/);

    // events --watch: the list, then a new event as it happens (JSON lines).
    const watcher = spawnNode('events --watch', BIN.clusterctl, ['--coordinator', cluster.coordinatorAddress, 'events', '--node', 'n2', '--watch', '-o', 'json'], { env: cluster.childEnv });
    try {
      await watcher.waitForLog(/"type":"node\.discovered"|"nodeId":"n2"/, 20_000);
      expectExit(await cluster.ctl(['node', 'maintenance', 'on', 'n2', '--reason', 'watch me']), 0);
      await watcher.waitForLog(/"type":"node\.maintenance".*watch me/, 20_000);
      const lines = watcher.logs.trim().split('\n').map((l) => JSON.parse(l) as EventJson);
      expect(lines.every((e) => e.nodeId === 'n2')).to.equal(true);
    } finally {
      await watcher.kill();
    }
  });

  it('every command has --help with usage and an example; completion scripts work in a real bash; the config file is read', async () => {
    const cluster = suite.cluster({ name: 'cli-help', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    const paths = commandPaths(commandTree());
    expect(paths.map((p) => p.join(' '))).to.include.members([
      'status', 'events', 'jobs', 'job describe', 'job watch', 'job logs', 'job cancel', 'node commission', 'node upgrade',
      'node decommission', 'node verify', 'node maintenance', 'node label', 'bundles', 'bundle push', 'bundle show', 'groups',
      'group show', 'group set', 'completion',
    ]);
    for (const p of paths) {
      const r = expectExit(await clusterctl([...p, '--help'], { env: cluster.childEnv }), 0);
      expect(r.stdout, p.join(' ')).to.match(/^Usage: /);
      expect(r.stdout, p.join(' ')).to.match(/\nExample:\n {2}.*clusterctl/);
    }

    // Completion: a real bash sources the script and completes words.
    const complete = async (shellWords: string[]): Promise<string[]> => {
      const script = `source <(${process.execPath} ${BIN.clusterctl} completion bash)
COMP_WORDS=(${shellWords.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${shellWords.length - 1}; _clusterctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = expectExit(await run('bash', ['-c', script], { env: cluster.childEnv }), 0);
      return r.stdout.trim().split('\n');
    };
    expect(await complete(['clusterctl', 'node', 'com'])).to.deep.equal(['commission']);
    expect(await complete(['clusterctl', 'job', ''])).to.include.members(['describe', 'watch', 'logs', 'cancel']);
    expect(await complete(['clusterctl', '-o', 'json', 'node', 'commission', '--max', ''])).to.include('--max-failures');
    expect(await complete(['clusterctl', 'nodes', '-o', 'y'])).to.deep.equal(['yaml']);
    expect(await complete(['clusterctl', 'node', 'commission', '--host'])).to.deep.equal(['--host-group']);
    const zsh = expectExit(await clusterctl(['completion', 'zsh'], { env: cluster.childEnv }), 0).stdout;
    expect(zsh).to.match(/^#compdef clusterctl/);
    expectExit(await run('bash', ['-n', '-c', expectExit(await clusterctl(['completion', 'bash'], { env: cluster.childEnv }), 0).stdout]), 0);

    // The config file (~/.config/clusterctl/config.yaml) names the coordinator and the format.
    const dir = join(String(cluster.childEnv.XDG_CONFIG_HOME), 'clusterctl');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), `coordinator: ${cluster.coordinatorAddress}\noutput: json\n`);
    const viaFile = expectExit(await clusterctl(['status'], { env: cluster.childEnv }), 0);
    expect((JSON.parse(viaFile.stdout) as { leader: { address: string } }).leader.address).to.equal(cluster.coordinatorAddress);
    writeFileSync(join(dir, 'config.yaml'), 'coordinator: [unclosed\n');
    expectOneLineError(await clusterctl(['status'], { env: cluster.childEnv }), /config file .*config\.yaml is not valid YAML/, { quiet: true });
    writeFileSync(join(dir, 'config.yaml'), 'cordinator: 127.0.0.1:1\n');
    expectOneLineError(await clusterctl(['status'], { env: cluster.childEnv }), /unknown option "cordinator"/, { quiet: true });
  });

  it('bad input: one clear line, exit 1, nothing changed in etcd', async () => {
    const cluster = suite.cluster({ name: 'cli-bad', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.reachable));
    const client = suite.etcd.client();
    const before = await quietSnapshot(cluster, client);

    expectOneLineError(await cluster.ctl(['frobnicate']), /unknown command "frobnicate"/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'n1', 'rack=r1', '--bogus']), /unknown flag --bogus/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'n1', 'bad key=x']), /invalid label key "bad key"/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'n1', 'rack=has space']), /invalid value "has space"/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'n1', 'rack']), /KEY=VALUE to set or KEY- to remove/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'n1', 'rack=a', 'rack-']), /both set and removed/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'label', 'no-such', 'rack=r1']), /node no-such not found .*clusterctl nodes/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'maintenance', 'maybe', 'n1']), /on or off/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'maintenance', 'on']), /on or off, then the node ids/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'maintenance', 'on', 'no-such']), /node no-such not found/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'maintenance', 'on', '../x']), /invalid node id/, { quiet: true });
    expectOneLineError(await cluster.ctl(['events', '--node', '../x']), /--node "\.\.\/x" is not an id/, { quiet: true });
    expectOneLineError(await cluster.ctl(['events', '--limit', '0']), /--limit: must be at least 1/, { quiet: true });
    expectOneLineError(await cluster.ctl(['status', '-o', 'xml']), /"xml" is not one of table, wide, json, yaml/, { quiet: true });
    expectOneLineError(await cluster.ctl(['completion', 'tcsh']), /use bash, zsh or fish/, { quiet: true });
    expectOneLineError(await cluster.ctl(['jobs', '--state', 'sleeping']), /unknown job state "sleeping"/, { quiet: true });

    expect(snapshotDiff(before, await etcdSnapshot(client), { ignorePrefixes: AGENT_OWN_KEYS }), 'the keyspace is unchanged').to.deep.equal([]);
  });
});
