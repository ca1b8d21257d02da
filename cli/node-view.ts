/**
 * How a node looks in each output format: table and wide rows, the JSON/YAML object (the proto
 * Node field names, in the proto's order, so output is stable and scripts can rely on it), and
 * the `node describe` page. Pure functions of the node and the current time.
 */
import type { Node__Output } from '../generated/cluster/v1/Node';
import type { FactsSummary__Output } from '../generated/cluster/v1/FactsSummary';
import { ageSince, formatBool, formatBytes, formatYaml, orDash, type Cell, type Row } from './output';

export const NODE_COLUMNS = ['ID', 'STATE', 'REACHABLE', 'GROUP', 'CONFIG', 'HOSTNAME', 'IP', 'CPU', 'MEMORY', 'AGE'] as const;
export const NODE_WIDE_COLUMNS = [...NODE_COLUMNS, 'MODEL', 'SERIAL', 'OS', 'KERNEL', 'AGENT', 'DISKS', 'LABELS'] as const;

const STATE_COLOUR: Record<string, Cell['colour']> = {
  Failed: 'red',
  Commissioning: 'yellow',
  Upgrading: 'yellow',
  Decommissioning: 'yellow',
  Commissioned: 'green',
  Upgraded: 'green',
  Cancelled: 'yellow',
};

const EMPTY_FACTS: FactsSummary__Output = {
  manufacturer: '', model: '', serial: '', systemUuid: '', cpuModel: '', cpuCores: 0, cpuThreads: 0,
  memoryBytes: '0', diskCount: 0, diskBytes: '0', os: '', kernel: '', primaryMac: '', primaryIp: '', gpuCount: 0, hostname: '',
};

function facts(n: Node__Output): FactsSummary__Output {
  return n.facts ?? EMPTY_FACTS;
}

/** `k=v,k2=v2` sorted by key; `<none>` as kubectl prints an empty label set. */
export function formatLabels(labels: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

/** Logical CPUs (what `nproc` shows), the number an operator sizes work by. */
function cpuText(f: FactsSummary__Output): string {
  const n = f.cpuThreads || f.cpuCores;
  return n ? String(n) : '-';
}

function stateCell(n: Node__Output): Cell {
  // A pre-registered node says so: `New (serial SN123)`, until its agent joins.
  const text = orDash(n.state) + (n.preRegisteredBy ? ` (${n.preRegisteredBy})` : '') + (n.maintenance ? ',Maintenance' : '');
  return { text, colour: STATE_COLOUR[n.state] };
}

/** The applied bundle version, with `*` when it is out of date against the group (`web@2*`). */
function configCell(n: Node__Output): Cell {
  return { text: n.appliedConfig ? `${n.appliedConfig}${n.outOfDate ? '*' : ''}` : '-', colour: n.outOfDate ? 'yellow' : undefined };
}

export function nodeRow(n: Node__Output, nowMs: number): Row {
  const f = facts(n);
  return [
    n.id,
    stateCell(n),
    { text: formatBool(n.reachable), colour: n.reachable ? undefined : 'red' },
    orDash(n.group),
    configCell(n),
    orDash(f.hostname),
    orDash(f.primaryIp),
    cpuText(f),
    formatBytes(f.memoryBytes),
    ageSince(n.createdAt, nowMs),
  ];
}

export function nodeWideRow(n: Node__Output, nowMs: number): Row {
  const f = facts(n);
  const model = [f.manufacturer, f.model].filter((s) => s).join(' ');
  const disks = f.diskCount ? `${f.diskCount}/${formatBytes(f.diskBytes)}` : '-';
  return [
    ...nodeRow(n, nowMs),
    orDash(model),
    orDash(f.serial),
    orDash(f.os),
    orDash(f.kernel),
    orDash(n.agentVersion),
    disks,
    formatLabels(n.labels),
  ];
}

/** Keys sorted, so a map prints the same way every time whatever order etcd returned. */
function sortedRecord(r: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r ?? {}).sort()) out[k] = (r ?? {})[k];
  return out;
}

export interface NodeObject {
  id: string;
  state: string;
  reachable: boolean;
  unreachableSince: string;
  labels: Record<string, string>;
  group: string;
  maintenance: boolean;
  agentVersion: string;
  bootId: string;
  address: string;
  /** uint64 byte counts as JSON numbers (exact up to 8 PiB), not the wire's decimal text. */
  facts: Omit<FactsSummary__Output, 'memoryBytes' | 'diskBytes'> & { memoryBytes: number; diskBytes: number };
  createdAt: string;
  updatedAt: string;
  lastSeenAt: string;
  lastError: string;
  desiredConfig: string;
  appliedConfig: string;
  appliedDigest: string;
  currentJob: string;
  revision: string;
  connectedAt: string;
  connected: boolean;
  stateChangedAt: string;
  maintenanceReason: string;
  outOfDate: boolean;
  outOfDateReasons: string[];
  appliedVariables: Record<string, string>;
  appliedExtraVars: string[];
  preRegisteredBy: string;
  preRegistrations: string[];
  driftSummary: string;
  unreachableSignal: string;
}

/**
 * The node as printed by `-o json|yaml`: every proto Node field, camelCase, in the proto's
 * field order (proto/cluster.proto `message Node`), labels sorted.
 */
export function nodeObject(n: Node__Output): NodeObject {
  const f = facts(n);
  return {
    id: n.id,
    state: n.state,
    reachable: n.reachable,
    unreachableSince: n.unreachableSince,
    labels: sortedRecord(n.labels),
    group: n.group,
    maintenance: n.maintenance,
    agentVersion: n.agentVersion,
    bootId: n.bootId,
    address: n.address,
    facts: {
      manufacturer: f.manufacturer,
      model: f.model,
      serial: f.serial,
      systemUuid: f.systemUuid,
      cpuModel: f.cpuModel,
      cpuCores: f.cpuCores,
      cpuThreads: f.cpuThreads,
      memoryBytes: Number(f.memoryBytes),
      diskCount: f.diskCount,
      diskBytes: Number(f.diskBytes),
      os: f.os,
      kernel: f.kernel,
      primaryMac: f.primaryMac,
      primaryIp: f.primaryIp,
      gpuCount: f.gpuCount,
      hostname: f.hostname,
    },
    createdAt: n.createdAt,
    updatedAt: n.updatedAt,
    lastSeenAt: n.lastSeenAt,
    lastError: n.lastError,
    desiredConfig: n.desiredConfig,
    appliedConfig: n.appliedConfig,
    appliedDigest: n.appliedDigest,
    currentJob: n.currentJob,
    revision: n.revision,
    connectedAt: n.connectedAt,
    connected: n.connected,
    stateChangedAt: n.stateChangedAt,
    maintenanceReason: n.maintenanceReason,
    outOfDate: n.outOfDate,
    outOfDateReasons: [...n.outOfDateReasons],
    appliedVariables: sortedRecord(n.appliedVariables),
    appliedExtraVars: [...n.appliedExtraVars],
    preRegisteredBy: n.preRegisteredBy,
    preRegistrations: [...n.preRegistrations],
    driftSummary: n.driftSummary,
    unreachableSignal: n.unreachableSignal,
  };
}

/** A time with its age: `2026-11-22T10:00:00.000Z (5m ago)`, or `-`. */
function when(iso: string, nowMs: number): string {
  if (!iso) return '-';
  const age = ageSince(iso, nowMs);
  return age === '-' ? iso : `${iso} (${age} ago)`;
}

/**
 * Parses the facts JSON of a NodeDetail. Unreadable facts are shown as text rather than
 * failing the whole command: the record is still worth seeing.
 */
export function parseFactsJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unreadable: text };
  }
}

/** What each reachability signal means, for `node describe`. */
const SIGNAL_TEXT: Readonly<Record<string, string>> = {
  stream: 'agent stream closed',
  lease: 'membership lease expired',
  both: 'agent stream closed, membership lease expired',
};

/** The `node describe` page: the record as `Key: value` lines, then the full facts as YAML. */
export function describeNode(n: Node__Output, factsJson: string, nowMs: number): string {
  const f = facts(n);
  const signal = n.unreachableSignal ? ` (${SIGNAL_TEXT[n.unreachableSignal] ?? n.unreachableSignal})` : '';
  const reach = n.reachable ? 'yes' : `${n.unreachableSince ? `no, since ${when(n.unreachableSince, nowMs)}` : 'no'}${signal}`;
  const fields: [string, string][] = [
    ['ID', n.id],
    ['State', `${orDash(n.state)}${n.stateChangedAt ? `, since ${when(n.stateChangedAt, nowMs)}` : ''}`],
    ['Reachable', reach],
    ['Connected', n.connected ? `yes${n.connectedAt ? `, since ${when(n.connectedAt, nowMs)}` : ''}` : 'no'],
    ['Maintenance', n.maintenance && n.maintenanceReason ? `yes: ${n.maintenanceReason}` : formatBool(n.maintenance)],
    ['Group', orDash(n.group)],
    ['Labels', formatLabels(n.labels)],
    ...(n.preRegisteredBy ? [['Pre-registered', `expects the machine with ${n.preRegisteredBy}; its agent has not joined yet`] as [string, string]] : []),
    ...(n.preRegistrations.length ? [['Matched', `pre-registration ${n.preRegistrations.join(', ')}`] as [string, string]] : []),
    ['Hostname', orDash(f.hostname)],
    ['Address', orDash(n.address)],
    ['Primary IP', orDash(f.primaryIp)],
    ['Primary MAC', orDash(f.primaryMac)],
    ['Agent version', orDash(n.agentVersion)],
    ['Boot ID', orDash(n.bootId)],
    ['Desired config', orDash(n.desiredConfig)],
    ['Applied config', n.appliedConfig ? `${n.appliedConfig}${n.outOfDate ? ` (out of date: ${n.outOfDateReasons.join('; ')}; \`clusterctl node upgrade ${n.id}\` rolls it out)` : ''}` : '-'],
    ['Applied vars', Object.keys(n.appliedVariables).length
      ? Object.keys(n.appliedVariables).sort().map((k) => `${k}=${n.appliedVariables[k]}${n.appliedExtraVars.includes(k) ? ' (-e)' : ''}`).join(', ')
      : '-'],
    ['Applied digest', orDash(n.appliedDigest)],
    ['Current job', orDash(n.currentJob)],
    ['Last error', orDash(n.lastError)],
    ['Created', when(n.createdAt, nowMs)],
    ['Updated', when(n.updatedAt, nowMs)],
    // The record's lastSeenAt is written at connect and disconnect, not at every ping: while the
    // stream is open the node is seen now.
    ['Last seen', n.connected ? 'now (connected)' : when(n.lastSeenAt, nowMs)],
    ['Revision', orDash(n.revision)],
    ['System', orDash([f.manufacturer, f.model].filter((s) => s).join(' '))],
    ['Serial', orDash(f.serial)],
    ['CPU', f.cpuModel || f.cpuCores ? `${orDash(f.cpuModel)} (${f.cpuCores} cores, ${f.cpuThreads} threads)` : '-'],
    ['Memory', formatBytes(f.memoryBytes)],
    ['Disks', f.diskCount ? `${f.diskCount} (${formatBytes(f.diskBytes)})` : '-'],
    ['OS', orDash(f.os)],
    ['Kernel', orDash(f.kernel)],
  ];
  const width = Math.max(...fields.map(([k]) => k.length)) + 2;
  const lines = fields.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`);
  const full = parseFactsJson(factsJson);
  lines.push('', full === null ? 'Facts: not reported yet' : 'Facts:');
  if (full !== null) {
    lines.push(...formatYaml(full).trimEnd().split('\n').map((l) => `  ${l}`));
  }
  return lines.join('\n') + '\n';
}
