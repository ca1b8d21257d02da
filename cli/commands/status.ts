/**
 * `clusterctl status`: who leads, which replicas campaign, how each etcd member answers, and
 * the nodes by lifecycle state and reachability. Exit 1 (after printing) when no replica leads
 * or an etcd member does not answer, so a monitoring check can run it as is.
 */
import type { ClusterStatus__Output } from '../../generated/cluster/v1/ClusterStatus';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { ageSince, formatBool, formatBytes, formatTable, orDash, useColour } from '../output';
import { printResult } from './print';

/** Lifecycle order (shared/lifecycle.ts), so counts read in the order a node moves. */
const STATE_ORDER = ['New', 'Discovered', 'Commissioning', 'Commissioned', 'Upgrading', 'Upgraded', 'Failed', 'Cancelled', 'Decommissioning', 'Decommissioned'];

function sortedCounts(c: Readonly<Record<string, number>>): Record<string, number> {
  const rank = (s: string): number => (STATE_ORDER.includes(s) ? STATE_ORDER.indexOf(s) : STATE_ORDER.length);
  return Object.fromEntries(Object.entries(c).sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : 1)));
}

export function statusObject(s: ClusterStatus__Output): Record<string, unknown> {
  const counts = sortedCounts(s.nodeCountsByState);
  return {
    leader: s.leader ? { id: s.leader.id, address: s.leader.address } : null,
    replicas: s.replicas.map((r) => ({ id: r.id, address: r.address, startedAt: r.startedAt, leader: r.leader })),
    etcd: s.etcdEndpoints.map((e) => ({
      endpoint: e.endpoint, healthy: e.healthy, version: e.version, dbSize: Number(e.dbSize), dbSizeInUse: Number(e.dbSizeInUse), quotaBytes: Number(e.quotaBytes),
      isLeader: e.isLeader, error: e.error,
    })),
    nodes: {
      total: Object.values(counts).reduce((a, b) => a + b, 0), byState: counts, reachable: s.reachable, unreachable: s.unreachable, connected: s.connected,
    },
    jobsRunning: s.jobsRunning,
    revision: s.revision,
  };
}

/**
 * "12.3 MiB / 2.0 GiB (0.6%)": the file size against the quota, which is what etcd checks
 * (NOSPACE); the part in use is added when a defrag would give much back.
 */
export function dbSizeText(e: Pick<ClusterStatus__Output['etcdEndpoints'][number], 'dbSize' | 'dbSizeInUse' | 'quotaBytes'>): { text: string; colour?: 'red' } {
  const size = Number(e.dbSize);
  const quota = Number(e.quotaBytes);
  const inUse = Number(e.dbSizeInUse);
  if (!(quota > 0)) return { text: formatBytes(e.dbSize) };
  const pct = (100 * size) / quota;
  const used = inUse > 0 && inUse < size * 0.8 ? `, ${formatBytes(inUse)} in use` : '';
  return { text: `${formatBytes(e.dbSize)} / ${formatBytes(quota)} (${pct < 10 ? pct.toFixed(1) : pct.toFixed(0)}%${used})`, ...(pct >= 80 ? { colour: 'red' as const } : {}) };
}

export function statusText(s: ClusterStatus__Output, nowMs: number, colour: boolean): string {
  const indent = (text: string): string => text.trimEnd().split('\n').map((l) => `  ${l}`).join('\n');
  const total = Object.values(s.nodeCountsByState).reduce((a, b) => a + b, 0);
  const lines = [
    `Leader:        ${s.leader ? `${s.leader.id} (${s.leader.address})` : 'NONE (no replica leads: agents cannot connect, jobs do not run)'}`,
    '',
    `Replicas (${s.replicas.length}):`,
    indent(formatTable(['ID', 'ADDRESS', 'LEADER', 'UP'], s.replicas.map((r) => [r.id, r.address, formatBool(r.leader), ageSince(r.startedAt, nowMs)]))),
    '',
    `etcd (${s.etcdEndpoints.length}):`,
    indent(formatTable(['ENDPOINT', 'HEALTHY', 'VERSION', 'DB-SIZE / QUOTA', 'LEADER', 'ERROR'], s.etcdEndpoints.map((e) => [
      e.endpoint, { text: formatBool(e.healthy), colour: e.healthy ? undefined : 'red' }, orDash(e.version), dbSizeText(e), formatBool(e.isLeader), orDash(e.error),
    ]), { colour })),
    '',
    `Nodes:         ${total} (reachable ${s.reachable}, unreachable ${s.unreachable}, connected to the leader ${s.connected})`,
  ];
  const counts = sortedCounts(s.nodeCountsByState);
  if (total > 0) lines.push(indent(formatTable(['STATE', 'COUNT'], Object.entries(counts).map(([k, v]) => [k, String(v)]))));
  lines.push('', `Jobs running:  ${s.jobsRunning}`);
  return lines.join('\n') + '\n';
}

export const status = defineCommand<CliContext, Record<string, never>>({
  name: 'status',
  summary: 'Cluster health: leader, replicas, etcd members, nodes by state and reachability, running jobs',
  usage: 'status [-o table|json|yaml]',
  example: 'clusterctl status\nclusterctl status -o json | jq .etcd',
  async run({ context }) {
    const s = await context.client.getStatus();
    printResult(context, statusObject(s), () => statusText(s, context.clock.now(), useColour(context.out, context.env)));
    const sick = s.etcdEndpoints.filter((e) => !e.healthy).map((e) => e.endpoint);
    if (!s.leader || sick.length > 0) {
      context.note(!s.leader ? 'unhealthy: no coordinator replica leads' : `unhealthy: etcd ${sick.join(', ')} not answering`);
      return EXIT.error;
    }
    return EXIT.ok;
  },
});
