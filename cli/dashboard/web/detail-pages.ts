/** The node page (record, facts, applied vs desired, events) and the job page (progress, per-node output). */
import type { ApiError, EventItem, JobNodeView, JobPage, NodePage } from '../protocol.js';
import { age, el, nodeHref, orDash } from './dom.js';
import { batchNumber, eventRow, jobCard, stateWords } from './panels.js';

/** GET an /api/ path as JSON; a failure is an Error with the server's message. */
export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const body = (await res.json()) as T | ApiError;
  if (!res.ok) throw new Error((body as ApiError).error ?? `${res.status} ${res.statusText}`);
  return body as T;
}

function record(rows: [string, string | Node][]): HTMLElement {
  const dl = el('dl', { class: 'record' });
  for (const [k, v] of rows) dl.append(el('dt', {}, k), el('dd', {}, v));
  return dl;
}

function when(iso: string): string {
  return iso ? `${iso} (${age(iso)} ago)` : '-';
}

/** Applied vs desired: in sync, or what differs, in words. */
function configCompare(p: NodePage): HTMLElement {
  const n = p.node;
  const same = n.desiredConfig === n.appliedConfig;
  const verdict = !n.desiredConfig && !n.appliedConfig
    ? el('span', {}, 'no configuration (not commissioned)')
    : same && !n.driftSummary
      ? el('span', { class: 'in-sync' }, 'in sync')
      : el('span', { class: 'differs' }, same ? 'drifted' : 'differs');
  return el('div', { id: 'config' },
    el('h2', {}, 'Applied vs desired'),
    el('table', {},
      el('tr', {}, el('th', {}, 'Desired'), el('td', {}, orDash(n.desiredConfig))),
      el('tr', {}, el('th', {}, 'Applied'), el('td', {}, orDash(n.appliedConfig))),
      el('tr', {}, el('th', {}, 'Applied digest'), el('td', {}, orDash(n.appliedDigest))),
      el('tr', {}, el('th', {}, 'Drift'), el('td', {}, n.driftSummary || 'none found')),
      el('tr', {}, el('th', {}, 'Verdict'), el('td', {}, verdict))));
}

function factsBlock(json: string): HTMLElement {
  if (!json) return el('p', {}, 'Facts not reported yet.');
  let text = json;
  try {
    text = JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    // Shown as stored: the record is still worth reading.
  }
  return el('pre', { id: 'facts' }, text);
}

export function renderNodePage(root: HTMLElement, p: NodePage, liveEvents: readonly EventItem[]): void {
  const n = p.node;
  const events = mergeEvents(p.events, liveEvents.filter((e) => e.nodeId === n.id));
  const labels = Object.entries(n.labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join(', ');
  root.replaceChildren(
    el('h2', { id: 'node-title' }, `Node ${n.id}: `, el('span', { class: `state-text s-${n.state}`, 'data-state': n.state }, n.state)),
    el('div', { class: 'cards' },
      el('div', {},
        el('h2', {}, 'Record'),
        record([
          ['State', `${n.state}${n.stateChangedAt ? `, since ${when(n.stateChangedAt)}` : ''}`],
          ['Reachable', n.reachable ? 'yes' : `no${n.unreachableSince ? `, since ${when(n.unreachableSince)}` : ''}`],
          ['Connected', n.connected ? `yes, since ${when(n.connectedAt)}` : 'no'],
          ['Maintenance', n.maintenance ? `yes${n.maintenanceReason ? `: ${n.maintenanceReason}` : ''}` : 'no'],
          ['Group', orDash(n.group)],
          ['Labels', orDash(labels)],
          ['Address', orDash(n.address)],
          ['Agent version', orDash(n.agentVersion)],
          ['Boot ID', orDash(n.bootId)],
          ['Current job', orDash(n.currentJob)],
          ['Last error', orDash(n.lastError)],
          ['Created', when(n.createdAt)],
          ['Updated', when(n.updatedAt)],
          ['Last seen', n.connected ? 'now (connected)' : when(n.lastSeenAt)],
        ])),
      configCompare(p),
      el('div', {}, el('h2', {}, 'Hardware facts'), factsBlock(p.factsJson))),
    el('h2', {}, 'Events'),
    el('table', { class: 'events-table' },
      el('thead', {}, el('tr', {}, ...['Seq', 'At', 'Type', 'Node', 'Job', 'Change', 'Actor', 'Message'].map((h) => el('th', {}, h)))),
      el('tbody', { id: 'node-events' }, ...events.slice().reverse().map(eventRow))),
  );
}

function mergeEvents(a: readonly EventItem[], b: readonly EventItem[]): EventItem[] {
  const bySeq = new Map<number, EventItem>();
  for (const e of [...a, ...b]) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((x, y) => x.seq - y.seq);
}

/** A node's rollback in words: where it goes back to, and how it went. */
function rollbackText(n: JobNodeView): string {
  const to = n.previousBundle ? ` to ${n.previousBundle}` : '';
  switch (n.rollbackState) {
    case '': return '-';
    case 'running': return `rolling back${to}`;
    case 'succeeded': return `rolled back${to}`;
    case 'failed': return `rollback${to} failed${n.rollbackError ? `: ${n.rollbackError}` : ''}`;
    default: return `${n.rollbackState}${to}`;
  }
}

export function renderJobPage(root: HTMLElement, p: JobPage): void {
  const rows = p.nodes.map((n) => el('tr', { 'data-node': n.nodeId, 'data-state': n.state },
    el('td', {}, el('a', { href: nodeHref(n.nodeId) }, n.nodeId)),
    el('td', {}, String(batchNumber(n.batch))),
    el('td', {}, n.state),
    el('td', {}, n.exitCode === null ? '-' : String(n.exitCode)),
    el('td', {}, orDash(n.error)),
    el('td', {}, n.units.length ? n.units.map((u) => `${u.unitId}: ${u.status}${u.message ? ` (${u.message})` : ''}`).join('\n') : '-'),
    el('td', {}, n.output ? el('pre', {}, n.output) : '-'),
    el('td', { class: 'node-rollback' }, rollbackText(n))));
  root.replaceChildren(
    el('h2', { id: 'job-title' }, `Job ${p.job.id}: ${p.job.kind}, ${stateWords(p.job.state)}`),
    jobCard(p.job, true),
    el('p', {}, `requested by ${orDash(p.job.requestedBy)}, created ${when(p.job.createdAt)}${p.job.finishedAt ? `, finished ${when(p.job.finishedAt)}` : ''}`),
    el('table', { class: 'job-nodes' },
      el('thead', {}, el('tr', {}, ...['Node', 'Batch', 'State', 'Exit', 'Error', 'Units', 'Output', 'Rollback'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows)),
  );
}
