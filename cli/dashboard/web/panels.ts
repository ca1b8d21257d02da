/** The fleet view's side panels and header counts: nodes by state, jobs with progress, events. */
import type { EventItem, JobSummary, Tile } from '../protocol.js';
import { age, el, jobHref, nodeHref, orDash, progressBar } from './dom.js';

/** Lifecycle states in their order (shared/lifecycle.ts LIFECYCLE_STATES). */
const STATE_ORDER = ['New', 'Discovered', 'Commissioning', 'Commissioned', 'Upgrading', 'Upgraded', 'Decommissioning', 'Decommissioned', 'Failed'];

/** Counts by state (all nodes, not only the filtered ones), then unreachable, drift and maintenance. */
export function renderCounts(root: HTMLElement, tiles: Iterable<Tile>): void {
  const byState = new Map<string, number>();
  let total = 0;
  let unreachable = 0;
  let drift = 0;
  let maint = 0;
  for (const t of tiles) {
    total++;
    byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
    if (!t.reachable) unreachable++;
    if (t.drift) drift++;
    if (t.maintenance) maint++;
  }
  const states = [...STATE_ORDER.filter((s) => byState.has(s)), ...[...byState.keys()].filter((s) => !STATE_ORDER.includes(s)).sort()];
  const chip = (cls: string, label: string, n: number, key: string): HTMLElement => el('span', { class: `count ${cls}`, 'data-count': key }, label, el('b', {}, String(n)));
  root.replaceChildren(
    chip('', 'nodes', total, 'total'),
    ...states.map((s) => chip(`s-${s}`, s, byState.get(s) ?? 0, s)),
    chip('', 'unreachable', unreachable, 'unreachable'),
    chip('', 'drift', drift, 'drift'),
    chip('', 'maintenance', maint, 'maintenance'),
  );
}

/** A job state in words: `RollingBack` → `Rolling back` (the names come from the feed, none are listed here). */
export function stateWords(state: string): string {
  const words = state.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * A batch as operators count them, from 1: the job's `currentBatch` and its nodes' `batch` are
 * indexes from 0 (the coordinator's message says "running batch 2 of 3" at index 1, and
 * `clusterctl jobs` shows 2/3).
 */
export function batchNumber(index: number): number {
  return index + 1;
}

/** One job: kind, state, progress overall and per batch, and its rollback once one started. */
export function jobCard(j: JobSummary, withBatches: boolean): HTMLElement {
  const card = el('div', { class: `job${j.active ? ' active' : ''}`, 'data-job': j.id, 'data-state': j.state },
    el('div', { class: 'title' }, el('a', { href: jobHref(j.id) }, `${j.kind} ${j.id}`), el('span', { class: `job-state j-${j.state}` }, stateWords(j.state))),
    progressBar(j.total, j.done, j.failed, j.running),
    el('div', { class: 'muted' }, `${j.done}/${j.total} nodes done${j.failed ? `, ${j.failed} failed` : ''}${j.running ? `, ${j.running} running` : ''}` +
      (j.batches > 1 ? ` · batch ${batchNumber(Math.min(j.currentBatch, j.batches - 1))}/${j.batches}` : '') + (j.group ? ` · group ${j.group}` : '')),
  );
  if (withBatches && j.perBatch.length > 1) {
    const grid = el('div', { class: 'batches' });
    for (const b of j.perBatch) grid.append(el('span', {}, `batch ${batchNumber(b.batch)}`), progressBar(b.total, b.done, b.failed, b.running), el('span', {}, `${b.done}/${b.total}`));
    card.append(grid);
  }
  if (j.rollback) {
    const r = j.rollback;
    card.append(el('div', { class: 'rollback' },
      el('span', {}, 'rollback'), progressBar(r.total, r.done, r.failed, r.running),
      el('span', {}, `${r.done - r.failed}/${r.total} rolled back${r.failed ? `, ${r.failed} failed` : ''}${r.running ? `, ${r.running} rolling back` : ''}`)));
  }
  if (j.message) card.append(el('div', { class: 'muted' }, j.message));
  return card;
}

/** Running jobs first (with their batches), then the newest finished ones. */
export function renderJobs(root: HTMLElement, jobs: Iterable<JobSummary>): void {
  const all = [...jobs].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  const active = all.filter((j) => j.active);
  const done = all.filter((j) => !j.active).slice(0, 8);
  root.replaceChildren(
    active.length ? el('div', { id: 'jobs-running' }, ...active.map((j) => jobCard(j, true))) : el('p', { class: 'muted' }, 'no job running'),
    ...(done.length ? [el('h2', {}, 'Finished'), ...done.map((j) => jobCard(j, false))] : []),
  );
}

export function eventChange(e: EventItem): string {
  return e.from || e.to ? `${orDash(e.from)} → ${orDash(e.to)}` : '';
}

/** One event as a list item (newest first lists). */
export function eventLine(e: EventItem): HTMLElement {
  return el('li', { 'data-seq': String(e.seq) },
    el('span', { class: 'type' }, e.type), ' ',
    e.nodeId ? el('a', { href: nodeHref(e.nodeId) }, e.nodeId) : null, e.nodeId ? ' ' : null,
    e.jobId ? el('a', { href: jobHref(e.jobId) }, e.jobId) : null, e.jobId ? ' ' : null,
    eventChange(e), e.message ? ` ${e.message}` : '', el('span', { class: 'muted' }, ` ${age(e.at)} ago`));
}

export function eventRow(e: EventItem): HTMLTableRowElement {
  return el('tr', { 'data-seq': String(e.seq) },
    el('td', {}, String(e.seq)), el('td', {}, e.at), el('td', { class: 'type' }, e.type),
    el('td', {}, e.nodeId ? el('a', { href: nodeHref(e.nodeId) }, e.nodeId) : '-'),
    el('td', {}, e.jobId ? el('a', { href: jobHref(e.jobId) }, e.jobId) : '-'),
    el('td', {}, orDash(eventChange(e))), el('td', {}, orDash(e.actor)), el('td', {}, orDash(e.message)));
}
