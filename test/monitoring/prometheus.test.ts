/**
 * The metrics as an operator's Prometheus sees them: Debian's real `prometheus` scrapes a
 * running coordinator, three agents and etcd (1 s scrape and rule intervals), and the numbers
 * its HTTP API answers are checked against `clusterctl nodes` / `clusterctl jobs`; every query
 * of the Grafana dashboard runs; the shipped alert rules (rendered with `for: 1s`) are quiet on
 * a healthy cluster and ClusterNodeUnreachable fires once an agent is SIGKILLed. `promtool`
 * checks the rules, runs their unit tests (deploy/monitoring/cluster-alerts.test.yml) and
 * checks the example scrape config.
 */
import { expect } from 'chai';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'mocha';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { delay, REPO_ROOT, run, waitFor, type CtlNode } from '../helpers';
import { PrometheusServer, PROMTOOL_BIN, type PromSample } from '../helpers/prometheus';
import { e2eSuite } from '../e2e/e2e-suite';
import { Keyspace } from '../../shared';
import { ETCD_SERVER_NAME } from '../../shared/pki/cluster-ca';

const MONITORING = join(REPO_ROOT, 'deploy', 'monitoring');
const RULES = join(MONITORING, 'cluster-alerts.yml');
const DASHBOARD = join(MONITORING, 'grafana-dashboard.json');

interface RuleFile { groups: { name: string; rules: { alert?: string; expr: string; for?: string }[] }[] }
interface Dashboard { panels: { title: string; targets: { expr: string }[] }[] }

/** The shipped rules with every `for:` cut to 1 s, so a test sees them fire in seconds. */
function shortRules(dir: string): string {
  const rules = parseYaml(readFileSync(RULES, 'utf8')) as RuleFile;
  for (const g of rules.groups) for (const r of g.rules) if (r.for !== undefined) r.for = '1s';
  const file = join(dir, 'cluster-alerts.short.yml');
  writeFileSync(file, toYaml(rules));
  return file;
}

/** `state/reachable=count` lines, sorted, from clusterctl's node list. */
function countsOf(nodes: readonly CtlNode[]): string {
  const out = new Map<string, number>();
  for (const n of nodes) {
    const k = `${n.state}/${String(n.reachable)}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return [...out].map(([k, v]) => `${k}=${v}`).sort().join(' ');
}

/** The same from `cluster_nodes`, zero series left out. */
function countsFromSamples(samples: readonly PromSample[]): string {
  return samples.filter((s) => s.value > 0).map((s) => `${s.metric.state}/${s.metric.reachable}=${s.value}`).sort().join(' ');
}

function single(samples: readonly PromSample[], what: string): number {
  expect(samples, what).to.have.length(1);
  return samples[0].value;
}

describe('monitoring: promtool on the shipped rules and scrape config', function () {
  this.timeout(60_000);

  it('promtool check rules, promtool test rules and promtool check config pass', async () => {
    const check = await run(PROMTOOL_BIN, ['check', 'rules', RULES]);
    expect(check.code, check.stdout + check.stderr).to.equal(0);
    expect(check.stdout).to.match(/SUCCESS: 8 rules found/);
    // Run from the rules' dir: the test file names them relative to itself.
    const unit = await run(PROMTOOL_BIN, ['test', 'rules', 'cluster-alerts.test.yml'], { cwd: MONITORING });
    expect(unit.code, unit.stdout + unit.stderr).to.equal(0);
    const config = await run(PROMTOOL_BIN, ['check', 'config', join(MONITORING, 'prometheus-scrape.yml')]);
    expect(config.code, config.stdout + config.stderr).to.equal(0);
  });
});

describe('monitoring: a real Prometheus scrapes a running cluster', function () {
  this.timeout(300_000);
  const suite = e2eSuite('prometheus');
  let prom: PrometheusServer | undefined;

  afterEach(async function (this: Context) {
    if (this.currentTest?.state === 'failed' && prom) console.error(`----- prometheus (tail) -----\n${prom.tail()}`);
    await prom?.stop();
    prom = undefined;
  });

  it('answers the numbers clusterctl shows, runs every dashboard query, and fires ClusterNodeUnreachable after an agent is SIGKILLed', async () => {
    const cluster = await suite.startCluster({ name: 'prometheus' });
    const ids = ['n1', 'n2', 'n3'];
    for (const id of ids) {
      const root = join(cluster.baseDir, 'roots', id);
      mkdirSync(root, { recursive: true });
      await cluster.startAgent(id, { extraArgs: ['--root', root] });
    }
    await cluster.waitForNodes('3 connected Discovered nodes', (ns) => ns.filter((n) => n.state === 'Discovered' && n.connected === true).length === 3, 60_000);

    // A real job first, so the job and unit metrics have something to count.
    for (const args of [
      ['bundle', 'push', '-f', join(REPO_ROOT, 'examples', 'demo-bundle.yaml')],
      ['group', 'set', 'demo', '--bundle', 'demo@1'],
      ['node', 'commission', 'n1', 'n2', '-g', 'demo', '--wait'],
    ]) {
      const r = await cluster.ctl(args, 120_000);
      expect(r.code, `clusterctl ${args.join(' ')}: ${r.stderr}`).to.equal(0);
    }

    const coordinator = await cluster.coordinators[0].metricsAddress();
    const agents = new Map<string, string>();
    for (const id of ids) agents.set(id, await cluster.agent(id).metricsAddress());
    prom = await PrometheusServer.start([
      { name: 'cluster-coordinator', targets: [coordinator] },
      { name: 'cluster-agent', targets: [...agents.values()] },
      // etcd serves its own /metrics on the client URL (EtcdDatabaseNearQuota reads it), behind
      // TLS with client-certificate auth like every etcd call: Prometheus presents a client certificate.
      { name: 'etcd', targets: [suite.etcd.endpoint], tls: { ...suite.etcd.rootTls, serverName: ETCD_SERVER_NAME } },
    ], [shortRules(cluster.baseDir)]);
    const p = prom;

    await waitFor('all 5 targets up', async () => {
      const t = await p.targets();
      return t.length === 5 && t.every((x) => x.health === 'up') ? t : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });

    // Fleet gauges against clusterctl's node list (2 Commissioned, 1 Discovered, all reachable).
    const nodes = await cluster.nodes();
    expect(countsOf(nodes)).to.equal('Commissioned/true=2 Discovered/true=1');
    await waitFor('cluster_nodes to match clusterctl nodes', async () => {
      const got = countsFromSamples(await p.query('cluster_nodes'));
      return got === countsOf(nodes) ? got : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(single(await p.query('cluster_coordinator_leader'), 'leader')).to.equal(1);
    expect(single(await p.query('cluster_agent_streams_attached'), 'streams')).to.equal(3);
    expect(single(await p.query('cluster_commands_in_flight'), 'in flight')).to.equal(0);
    expect(single(await p.query('cluster_nodes_drifted'), 'drifted')).to.equal(0);
    expect(single(await p.query('cluster_coordinator_leader_changes_total'), 'leader changes')).to.equal(0);

    // Jobs: the gauge against clusterctl jobs; the histograms counted the job and its 2 nodes.
    const jobsOut = await cluster.ctl(['jobs', '-o', 'json']);
    expect(jobsOut.code, jobsOut.stderr).to.equal(0);
    const jobs = JSON.parse(jobsOut.stdout) as { kind: string; state: string }[];
    expect(jobs.map((j) => `${j.kind}/${j.state}`)).to.deep.equal(['commission/Succeeded']);
    const jobGauge = (await p.query('cluster_jobs > 0')).map((s) => `${s.metric.kind}/${s.metric.state}=${s.value}`);
    expect(jobGauge).to.deep.equal(['commission/Succeeded=1']);
    expect(single(await p.query('cluster_job_duration_seconds_count{kind="commission", state="Succeeded"}'), 'job count')).to.equal(1);
    expect(single(await p.query('cluster_job_duration_seconds_count{kind="commission", state="Failed"}'), 'failed job count (zero series)')).to.equal(0);
    expect(single(await p.query('cluster_job_node_duration_seconds_count{kind="commission", state="succeeded"}'), 'node count')).to.equal(2);
    expect(single(await p.query('sum(cluster_etcd_txn_duration_seconds_count)'), 'etcd txns')).to.be.greaterThan(0);
    expect(single(await p.query('cluster_etcd_txn_errors_total'), 'etcd errors')).to.equal(0);

    // The event-log gauge is the number of events etcd holds (nothing changes while idle).
    const client = suite.etcd.client();
    const events = await client.getAll().prefix(new Keyspace().eventsPrefix()).count();
    expect(events).to.be.greaterThan(0);
    expect(single(await p.query('cluster_event_log_events'), 'events')).to.equal(events);

    // Agents: which instance is which node, connected; the two commissioned ones applied units.
    const info = await p.query('cluster_agent_info');
    expect(info.map((s) => s.metric.node_id).sort()).to.deep.equal(ids);
    const instanceOf = new Map(info.map((s) => [s.metric.node_id, s.metric.instance]));
    expect((await p.query('cluster_agent_connected')).map((s) => s.value)).to.deep.equal([1, 1, 1]);
    const applied = new Map((await p.query('sum by (instance, kind) (cluster_agent_unit_apply_duration_seconds_count)'))
      .map((s) => [`${s.metric.instance}/${s.metric.kind}`, s.value]));
    for (const id of ['n1', 'n2']) {
      // The demo bundle: 2 directories, 1 file, 1 command.
      expect(applied.get(`${instanceOf.get(id)}/directory`), `${id} directories`).to.equal(2);
      expect(applied.get(`${instanceOf.get(id)}/file`), `${id} file`).to.equal(1);
      expect(applied.get(`${instanceOf.get(id)}/command`), `${id} command`).to.equal(1);
    }
    expect([...applied.keys()].filter((k) => k.startsWith(`${instanceOf.get('n3')}/`)), 'n3 applied nothing').to.deep.equal([]);
    expect((await p.query('process_resident_memory_bytes > 0')).length, 'process metrics of 4 programs and etcd').to.equal(5);

    // Every dashboard query is valid PromQL over these series.
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
    for (const panel of dashboard.panels) {
      for (const t of panel.targets) await p.query(t.expr.replace(/\$__rate_interval/g, '1m')).catch((err: Error) => { throw new Error(`panel "${panel.title}": ${err.message}`); });
    }
    expect(single(await p.query('max by (instance) (etcd_mvcc_db_total_size_in_bytes / etcd_server_quota_backend_bytes)'), 'etcd quota ratio')).to.be.within(0, 0.8);

    // Healthy: none firing or pending (after a few 1 s evaluations, so this is not just "not evaluated yet").
    await delay(2_500);
    expect((await p.alerts()).map((a) => `${a.labels.alertname}:${a.state}`)).to.deep.equal([]);

    // An agent dies: its lease expires, the node turns Unreachable, the rule fires.
    await cluster.agent('n3').kill();
    const after = await cluster.waitForNodes('n3 unreachable', (ns) => ns.some((n) => n.id === 'n3' && n.reachable === false), 60_000);
    const fired = await waitFor('ClusterNodeUnreachable firing', async () => {
      const a = (await p.alerts()).find((x) => x.labels.alertname === 'ClusterNodeUnreachable' && x.state === 'firing');
      return a;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(Number(fired.value)).to.equal(1);
    expect(fired.annotations.summary).to.equal('1 node(s) unreachable');
    expect(countsOf(after)).to.equal('Commissioned/true=2 Discovered/false=1');
    await waitFor('cluster_nodes to match clusterctl nodes after the kill', async () => {
      const got = countsFromSamples(await p.query('cluster_nodes'));
      return got === countsOf(after) ? got : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(single(await p.query(`up{job="cluster-agent", instance="${instanceOf.get('n3') ?? ''}"}`), 'n3 target')).to.equal(0);
    expect((await p.alerts()).filter((a) => a.state === 'firing').map((a) => a.labels.alertname)).to.deep.equal(['ClusterNodeUnreachable']);
  });
});
