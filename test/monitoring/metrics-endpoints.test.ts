/**
 * The /metrics endpoints as processes serve them (no Prometheus here; prometheus.test.ts has
 * one): a follower reports leader 0 and the same fleet gauges as the leader; after the leader
 * is SIGKILLed the follower leads and counts one leadership change; `--metrics-listen off`
 * serves nothing, a bad value is refused at start, and an agent whose port is taken runs on
 * without metrics. Drift found by a verify shows on the agent and in the fleet gauge until it is
 * repaired and verified again. The etcd transaction timer counts successes and errors against a real etcd.
 * The fleet read takes the job records without their per-node records (keys counted at the client).
 */
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Etcd3 } from 'etcd3';
import { BIN, REPO_ROOT, run, waitFor } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { instrumentEtcd } from '../../coordinator/etcd-metrics';
import { readPrefixes } from '../../coordinator/etcd-txn';
import { CoordinatorMetrics } from '../../coordinator/metrics';
import { createLogger, Keyspace } from '../../shared';

/** `name{labels}` → value, from the text format. */
async function scrape(address: string): Promise<Map<string, number>> {
  const r = await fetch(`http://${address}/metrics`);
  expect(r.status).to.equal(200);
  expect(r.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The fleet series (cluster_nodes...) of one scrape, as sorted lines. */
function fleet(m: Map<string, number>): string[] {
  return [...m].filter(([k]) => /^cluster_(nodes|jobs|event_log)/.test(k)).map(([k, v]) => `${k} ${v}`).sort();
}

describe('monitoring: the /metrics endpoints of coordinator and agent processes', function () {
  this.timeout(180_000);
  const suite = e2eSuite('metrics-endpoints');

  it('a follower reports leader 0 and the leader\'s fleet numbers; after a failover it leads and counts one change', async () => {
    const cluster = await suite.startCluster({ name: 'metrics-failover' });
    const follower = await cluster.startCoordinator({ waitLeader: false });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);
    const leaderAddr = await cluster.coordinators[0].metricsAddress();
    const followerAddr = await follower.metricsAddress();

    const [l, f] = await Promise.all([scrape(leaderAddr), scrape(followerAddr)]);
    expect(l.get('cluster_coordinator_leader')).to.equal(1);
    expect(f.get('cluster_coordinator_leader')).to.equal(0);
    expect(l.get('cluster_agent_streams_attached')).to.equal(1);
    expect(f.get('cluster_agent_streams_attached')).to.equal(0);
    expect(l.get('cluster_nodes{state="Discovered",reachable="true"}')).to.equal(1);
    // Both read the same etcd: the same fleet, event count aside (events may land between the two reads).
    const noEvents = (xs: string[]): string[] => xs.filter((x) => !x.startsWith('cluster_event_log'));
    expect(noEvents(fleet(f))).to.deep.equal(noEvents(fleet(l)));
    expect(fleet(f).length).to.be.greaterThan(9);
    expect(f.get('cluster_coordinator_leader_changes_total')).to.equal(0);

    await cluster.coordinators[0].kill();
    await follower.proc.waitForLog(/"msg":"became leader"/, 60_000);
    const after = await waitFor('the new leader to report leader 1', async () => {
      const m = await scrape(followerAddr);
      return m.get('cluster_coordinator_leader') === 1 ? m : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    expect(after.get('cluster_coordinator_leader_changes_total')).to.equal(1);
  });

  it('--metrics-listen off serves nothing; a bad value is refused; an agent whose port is taken runs on without metrics', async () => {
    const cluster = await suite.startCluster({ name: 'metrics-off' });
    const busy: Server = createServer(() => undefined);
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    try {
      const taken = `127.0.0.1:${(busy.address() as AddressInfo).port}`;
      const off = await cluster.startAgent('n-off', { extraArgs: ['--metrics-listen', 'off'] });
      const blocked = await cluster.startAgent('n-busy', { extraArgs: ['--metrics-listen', taken] });
      await blocked.proc.waitForLog(/"msg":"metrics endpoint not started; running without it"/, 30_000);
      await cluster.waitForNodes('both agents connected', (ns) => ns.filter((n) => n.connected === true).length === 2, 60_000);
      expect(off.proc.logs).to.not.match(/metrics listening|metrics endpoint/);
      expect(blocked.proc.alive).to.equal(true);
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
    for (const [bin, extra] of [[BIN.agent, []], [BIN.coordinator, []]] as const) {
      const r = await run(process.execPath, [bin, '--etcd', suite.etcd.endpoint, ...extra, '--metrics-listen', 'everywhere'], { env: cluster.childEnv });
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('--metrics-listen "everywhere": use HOST:PORT');
    }
  });

  it('drift found by a verify shows on the agent (by unit kind) and in cluster_nodes_drifted until repaired and verified', async () => {
    const cluster = await suite.startCluster({ name: 'metrics-drift' });
    const root = join(cluster.baseDir, 'roots', 'n1');
    mkdirSync(root, { recursive: true });
    const agent = await cluster.startAgent('n1', { extraArgs: ['--root', root] });
    await cluster.waitForNodes('n1 discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);
    const ctl = async (args: string[], code = 0): Promise<void> => {
      const r = await cluster.ctl(args, 120_000);
      expect(r.code, `clusterctl ${args.join(' ')}: ${r.stderr}`).to.equal(code);
    };
    await ctl(['bundle', 'push', '-f', join(REPO_ROOT, 'examples', 'demo-bundle.yaml')]);
    await ctl(['group', 'set', 'demo', '--bundle', 'demo@1']);
    await ctl(['node', 'commission', 'n1', '-g', 'demo', '--wait']);
    const agentAddr = await agent.metricsAddress();
    const coordAddr = await cluster.coordinators[0].metricsAddress();
    let a = await scrape(agentAddr);
    expect(a.get('cluster_agent_drifted_units')).to.equal(0);
    expect(a.get('cluster_agent_unit_apply_duration_seconds_count{kind="file",result="changed"}')).to.equal(1);
    expect(a.has('cluster_agent_drift_found_total{kind="file"}')).to.equal(false);

    writeFileSync(join(root, 'opt', 'demo', 'app.conf'), 'changed by hand\n');
    await ctl(['node', 'verify', 'n1', '--wait'], 2);
    a = await scrape(agentAddr);
    expect(a.get('cluster_agent_drift_found_total{kind="file"}')).to.equal(1);
    expect(a.get('cluster_agent_drifted_units')).to.equal(1);
    expect(a.get('cluster_agent_unit_verify_duration_seconds_count{kind="file",result="drift"}')).to.equal(1);
    expect(a.get('cluster_agent_unit_verify_duration_seconds_count{kind="directory",result="ok"}')).to.equal(2);
    await waitFor('cluster_nodes_drifted 1', async () => (await scrape(coordAddr)).get('cluster_nodes_drifted') === 1, { timeoutMs: 30_000, intervalMs: 250 });

    await ctl(['node', 'repair', 'n1', '--wait']);
    expect((await scrape(agentAddr)).get('cluster_agent_drifted_units')).to.equal(0);
    // The node record's drift is cleared by the next verify that finds none (drift-watcher.ts), not by the repair itself.
    await ctl(['node', 'verify', 'n1', '--wait']);
    await waitFor('cluster_nodes_drifted 0', async () => (await scrape(coordAddr)).get('cluster_nodes_drifted') === 0, { timeoutMs: 30_000, intervalMs: 250 });
    const c = await scrape(coordAddr);
    expect(c.get('cluster_job_duration_seconds_count{kind="verify",state="Succeeded"}')).to.equal(2);
    expect(c.get('cluster_job_duration_seconds_count{kind="repair",state="Succeeded"}')).to.equal(1);
    expect(c.get('cluster_commands_in_flight')).to.equal(0);
  });

  it('scrapes within the fleet read interval share one etcd read; a later scrape reads again', async () => {
    const ks = new Keyspace();
    const client = suite.etcd.client();
    let now = 1_000_000;
    let txns = 0;
    const metrics = new CoordinatorMetrics({
      client: instrumentEtcd(client, () => { txns++; }), keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1',
      isLeader: () => false, streamsAttached: () => 0, fleetReadIntervalMs: 5_000, now: () => now,
    });
    const discovered = (text: string): string | undefined => /^cluster_nodes\{state="Discovered",reachable="true"\} (\d+)$/m.exec(text)?.[1];
    const node = (id: string): string => JSON.stringify({ id, state: 'Discovered', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', stateChangedAt: '' });
    await client.put(ks.node('a')).value(node('a'));
    const [first, concurrent] = await Promise.all([metrics.render(), metrics.render()]);
    expect(discovered(first)).to.equal('1');
    expect(discovered(concurrent)).to.equal('1');
    expect(txns, 'one snapshot read for two concurrent scrapes').to.equal(1);
    await client.put(ks.node('b')).value(node('b'));
    now += 4_999;
    expect(discovered(await metrics.render()), 'within the interval: the same read').to.equal('1');
    now += 1;
    expect(discovered(await metrics.render()), 'after it: read again').to.equal('2');
    expect(txns).to.equal(2);
  });

  it('the fleet read takes the job records, not their per-node records: the keys it reads do not grow with a job\'s nodes', async () => {
    const ks = new Keyspace('/job-scan/');
    const client = suite.etcd.client();
    // Every key etcd sends back to the metrics, counted at the client (txn and plain range answers).
    let keysRead = 0;
    const kv = client.kv;
    const countingKv = new Proxy(kv, {
      get: (target, prop, receiver) => {
        if (prop === 'txn') {
          return async (...args: Parameters<typeof kv.txn>) => {
            const r = await kv.txn(...args);
            for (const x of r.responses) keysRead += x.response_range?.kvs?.length ?? 0;
            return r;
          };
        }
        if (prop === 'range') {
          return async (...args: Parameters<typeof kv.range>) => {
            const r = await kv.range(...args);
            keysRead += r.kvs.length;
            return r;
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const counting: typeof client = new Proxy(client, {
      get: (target, prop) => {
        if (prop === 'kv') return countingKv;
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(counting) : value;
      },
    });
    const metrics = new CoordinatorMetrics({
      client: counting, keyspace: ks, logger: createLogger({ level: 'silent' }), replicaId: 'r1',
      isLeader: () => false, streamsAttached: () => 0, fleetReadIntervalMs: 0,
    });
    const put = (key: string, value: unknown): Promise<unknown> => client.put(key).value(JSON.stringify(value)).exec();
    const job = (id: string, kind: string, state: string): unknown => ({ id, kind, state, nodeIds: [], batches: [], claimed: true });
    const output = 'x'.repeat(200);
    await put(ks.node('n1'), { id: 'n1', state: 'Commissioned', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', stateChangedAt: '' });
    // j-a ran on 1,000 nodes; j-a-2's id extends j-a's, so its key sorts between j-a and j-a's node records.
    await put(ks.job('j-a'), job('j-a', 'commission', 'Succeeded'));
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => put(ks.jobNode('j-a', `n${i + k}`), { nodeId: `n${i + k}`, state: 'succeeded', batch: 0, attempt: 1, units: [], output })));
    }
    await put(ks.job('j-a-2'), job('j-a-2', 'exec', 'Failed'));
    await put(ks.job('j-b'), job('j-b', 'upgrade', 'RolledBack'));
    for (const n of ['n1', 'n2', 'n3']) await put(ks.jobNode('j-b', n), { nodeId: n, state: 'failed', batch: 0, attempt: 1, units: [], output });
    await put(ks.job('j-c'), job('j-c', 'verify', 'Running'));
    // A node record whose job record is gone, and a job record that does not decode: skipped.
    await put(ks.jobNode('j-0', 'n1'), { nodeId: 'n1', state: 'succeeded', batch: 0, attempt: 1, units: [] });
    await put(ks.job('j-bad'), { id: 'j-bad', kind: 'commission', state: 'Exploded' });

    const text = await metrics.render();
    const series = (kind: string, state: string): string | undefined => new RegExp(`^cluster_jobs\\{kind="${kind}",state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1];
    expect(series('commission', 'Succeeded')).to.equal('1');
    expect(series('exec', 'Failed')).to.equal('1');
    expect(series('upgrade', 'RolledBack')).to.equal('1');
    expect(series('verify', 'Running')).to.equal('1');
    expect(series('commission', 'Running')).to.equal('0');
    expect(/^cluster_nodes\{state="Commissioned",reachable="true"\} 1$/m.test(text)).to.equal(true);
    // One key per job record (5), the node, the stray node record, the first node record after
    // j-a-2 (j-a's, stepped over), and j-b once more (the step after j-a reads both j-a-2 and
    // the next record past j-a's nodes): 9. A read of the jobs/ prefix returned 1,000 more.
    expect(keysRead).to.equal(9);
  });

  it('the etcd transaction timer counts a transaction and an error', async () => {
    const seen: { seconds: number; failed: boolean }[] = [];
    const real = suite.etcd.client();
    const timed = instrumentEtcd(real, (seconds, failed) => seen.push({ seconds, failed }));
    await readPrefixes(timed, [{ prefix: '/none/' }]);
    expect(seen).to.have.length(1);
    expect(seen[0].failed).to.equal(false);
    expect(seen[0].seconds).to.be.greaterThan(0);
    // Builders reach the KV client through the proxy too; only txn is timed.
    expect(await timed.get('/none/x').string()).to.equal(null);
    expect(seen).to.have.length(1);
    const dead = new Etcd3({ hosts: '127.0.0.1:1' });
    try {
      const timedDead = instrumentEtcd(dead, (seconds, failed) => seen.push({ seconds, failed }));
      await timedDead.kv.txn({ compare: [], success: [], failure: [] }, { deadline: new Date(Date.now() + 1000) }).then(
        () => { throw new Error('a txn against no etcd succeeded'); },
        () => undefined,
      );
      expect(seen.map((s) => s.failed)).to.deep.equal([false, true]);
    } finally {
      dead.close();
    }
  });
});
