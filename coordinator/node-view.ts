/**
 * The operator's view of a node: the stored record (nodes/<id>) plus the facts summary
 * (facts/<id>, shared/facts summariseFacts) plus the record's etcd revision, as the proto Node.
 */
import { summariseFacts, type Facts, type NodeRecord } from '../shared';
import type { Node } from '../generated/cluster/v1/Node';
import type { ConfigStatus } from './desired-state';

/** Facts JSON as stored by the agent; undefined when absent or unreadable (shown as no facts). */
export function parseFacts(text: string | undefined): Partial<Facts> | undefined {
  if (!text) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `status`: desired vs applied (desired-state.ts); without it the record's own desiredConfig is shown. */
export function toNodeView(record: NodeRecord, modRevision: string, facts: Partial<Facts> | undefined, status?: ConfigStatus): Node {
  return {
    id: record.id,
    state: record.state,
    reachable: record.reachable,
    unreachableSince: record.unreachableSince ?? '',
    unreachableSignal: record.reachable ? '' : record.unreachableSignal ?? '',
    labels: { ...record.labels },
    group: record.group ?? '',
    maintenance: record.maintenance,
    maintenanceReason: record.maintenance ? record.maintenanceReason ?? '' : '',
    agentVersion: record.agentVersion ?? '',
    bootId: record.bootId ?? '',
    address: record.address ?? '',
    facts: facts ? summariseFacts(facts) : null,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    lastSeenAt: record.lastSeenAt ?? '',
    lastError: record.lastError ?? '',
    desiredConfig: status?.desiredConfig || record.desiredConfig || '',
    appliedConfig: record.appliedConfig ?? '',
    appliedDigest: record.appliedDigest ?? '',
    currentJob: record.currentJob ?? '',
    revision: modRevision,
    connectedAt: record.connectedAt ?? '',
    connected: record.connected,
    stateChangedAt: record.stateChangedAt,
    driftSummary: record.driftSummary ?? '',
    outOfDate: status?.outOfDate ?? false,
    outOfDateReasons: status?.reasons ?? [],
    appliedVariables: { ...(record.appliedInputs?.variables ?? {}) },
    appliedExtraVars: record.appliedInputs?.extraVars ?? [],
    preRegisteredBy: record.expected ? `${record.expected.kind} ${record.expected.value}` : '',
    preRegistrations: record.preRegistrations ?? [],
  };
}
