/**
 * The metrics stay documented and the shipped rules and dashboard stay true: every metric the
 * coordinator and the agent register is in docs/operations.md ("Metrics and alerts"), follows
 * the naming conventions, and every metric name the alert rules and the Grafana dashboard
 * query is one they register (or etcd's own, or Prometheus's `up`).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../helpers';
import { createLogger, Keyspace } from '../../shared';
import { CoordinatorMetrics } from '../../coordinator/metrics';
import { AgentMetrics } from '../../agent/metrics';

const doc = readFileSync(join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');

function section(heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, heading).to.be.greaterThan(-1);
  const end = doc.indexOf('\n## ', start + heading.length + 2);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** Default process and runtime metrics of prom-client, documented as families. */
const isDefault = (name: string): boolean => name.startsWith('process_') || name.startsWith('nodejs_');

describe('monitoring: metric names, docs, rules and dashboard agree', () => {
  // Never dialled: the metrics only read etcd when scraped.
  const client = new Etcd3({ hosts: '127.0.0.1:1' });
  const coordinator = new CoordinatorMetrics({
    client, keyspace: new Keyspace(), logger: createLogger({ level: 'silent' }), replicaId: 'r1', isLeader: () => false, streamsAttached: () => 0,
    fleetReadIntervalMs: 5_000,
  });
  const agent = new AgentMetrics({ nodeId: 'n1', connected: () => false });
  const ours = [...coordinator.metricNames(), ...agent.metricNames()].filter((n) => !isDefault(n));
  after(() => client.close());

  it('registers the metrics the issue asks for, and the default process metrics', () => {
    for (const name of [
      'cluster_nodes', 'cluster_jobs', 'cluster_job_duration_seconds', 'cluster_job_node_duration_seconds', 'cluster_commands_in_flight',
      'cluster_agent_streams_attached', 'cluster_coordinator_leader', 'cluster_coordinator_leader_changes_total', 'cluster_etcd_txn_duration_seconds',
      'cluster_etcd_txn_errors_total', 'cluster_event_log_events', 'cluster_agent_unit_apply_duration_seconds', 'cluster_agent_unit_verify_duration_seconds',
      'cluster_agent_drift_found_total',
    ]) expect(ours, name).to.include(name);
    expect(coordinator.metricNames()).to.include('process_resident_memory_bytes');
    expect(agent.metricNames()).to.include('process_cpu_seconds_total');
  });

  it('names follow the conventions: cluster_ prefix, counters end in _total, durations in _seconds', async () => {
    const all = [...(await coordinator.registry.getMetricsAsJSON()), ...(await agent.registry.getMetricsAsJSON())].filter((m) => !isDefault(m.name));
    for (const m of all) {
      expect(m.name, m.name).to.match(/^cluster_[a-z0-9_]+$/);
      if (String(m.type) === 'counter') expect(m.name, `${m.name} is a counter`).to.match(/_total$/);
      if (String(m.type) === 'histogram') expect(m.name, `${m.name} is a histogram`).to.match(/_seconds$/);
      expect(m.help.length, `${m.name} has help`).to.be.greaterThan(10);
    }
  });

  it('docs/operations.md lists every metric, in a table row of its own', () => {
    const text = section('## Metrics and alerts');
    const missing = ours.filter((n) => !text.includes(`| \`${n}\` |`));
    expect(missing).to.deep.equal([]);
    expect(text).to.include('`process_*`').and.include('`nodejs_*`');
  });

  it('the rules and the dashboard query only metrics that exist, and the docs list every alert', () => {
    const rules = parseYaml(readFileSync(join(REPO_ROOT, 'deploy', 'monitoring', 'cluster-alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'deploy', 'monitoring', 'grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))];
    const known = new Set([...coordinator.metricNames(), ...agent.metricNames()]);
    const unknown = new Set<string>();
    for (const e of exprs) {
      for (const [name] of e.matchAll(/\bcluster_[a-z0-9_]+/g)) {
        if (!known.has(name) && !known.has(name.replace(/_(bucket|count|sum)$/, ''))) unknown.add(name);
      }
    }
    expect([...unknown]).to.deep.equal([]);
    const alertsDoc = section('## Metrics and alerts');
    for (const r of rules.groups.flatMap((g) => g.rules)) expect(alertsDoc, r.alert).to.include(`| \`${r.alert}\` |`);
  });
});
