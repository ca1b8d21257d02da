/**
 * The dashboard page: one EventSource on /api/stream (the server's feed of the coordinator's
 * watch streams), changes applied once per animation frame, and four views chosen by the URL
 * hash: the fleet (#/), a node (#/node/ID), a job (#/job/ID) and the event stream (#/events).
 *
 * For tests and the benchmark the body carries data-ready (the first snapshot is on screen),
 * data-tiles (nodes known), data-first-render-ms (navigation start to the first snapshot
 * rendered, read after the next frame), data-snapshot-ms (navigation start to the snapshot
 * received) and data-apply-ms (the script's work on it, before layout and paint).
 */
import { parseSelector } from '../../../shared/selector-syntax.js';
import type { EventItem, FeedStatus, JobPage, JobSummary, NodeDelta, NodePage, Snapshot, StreamMessages } from '../protocol.js';
import { byId, el } from './dom.js';
import { FleetGrid } from './fleet-grid.js';
import { eventLine, eventRow, renderCounts, renderJobs } from './panels.js';
import { getJson, renderJobPage, renderNodePage } from './detail-pages.js';

const EVENTS_KEPT = 300;
const RECENT_EVENTS_SHOWN = 40;

type Route = { view: 'fleet' } | { view: 'events' } | { view: 'node'; id: string } | { view: 'job'; id: string };

function route(): Route {
  const h = location.hash.replace(/^#/, '');
  let m: RegExpExecArray | null;
  if ((m = /^\/node\/(.+)$/.exec(h))) return { view: 'node', id: decodeURIComponent(m[1]) };
  if ((m = /^\/job\/(.+)$/.exec(h))) return { view: 'job', id: decodeURIComponent(m[1]) };
  if (h === '/events') return { view: 'events' };
  return { view: 'fleet' };
}

class Dashboard {
  private readonly grid = new FleetGrid(byId('grid'));
  private readonly jobs = new Map<string, JobSummary>();
  private events: EventItem[] = [];
  private pendingNodes: NodeDelta[] = [];
  private pendingEvents: EventItem[] = [];
  private jobsDirty = false;
  private frame = 0;
  private firstRender = true;
  private labelKeys = '';
  private detailTimer = 0;
  private route: Route = route();

  start(): void {
    const filter = byId<HTMLInputElement>('filter');
    let filterTimer = 0;
    filter.addEventListener('input', () => {
      clearTimeout(filterTimer);
      filterTimer = window.setTimeout(() => this.setFilter(filter.value), 150);
    });
    byId<HTMLSelectElement>('group-by').addEventListener('change', (e) => {
      this.grid.setGroupBy((e.target as HTMLSelectElement).value);
      this.renderShown();
    });
    window.addEventListener('hashchange', () => this.showRoute());
    this.showRoute();
    this.connect();
  }

  private setFilter(text: string): void {
    const error = byId('filter-error');
    try {
      this.grid.setSelector(parseSelector(text));
      error.textContent = '';
      filterInput().removeAttribute('aria-invalid');
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
      filterInput().setAttribute('aria-invalid', 'true');
    }
    this.renderShown();
  }

  private connect(): void {
    const source = new EventSource('/api/stream');
    const on = <K extends keyof StreamMessages>(name: K, fn: (data: StreamMessages[K]) => void): void => {
      source.addEventListener(name, (e) => fn(JSON.parse((e as MessageEvent<string>).data) as StreamMessages[K]));
    };
    on('snapshot', (s) => this.onSnapshot(s));
    on('nodes', (d) => { this.pendingNodes.push(d); this.schedule(); });
    on('events', (items) => { this.pendingEvents.push(...items); this.schedule(); });
    on('job', (j) => this.onJob(j));
    on('status', (s) => this.setStatus(s));
    // EventSource reconnects by itself; the server then starts with a new snapshot.
    source.addEventListener('error', () => this.setStatus({ live: false, message: 'lost the dashboard server (clusterctl dashboard stopped?); retrying' }));
  }

  private onSnapshot(s: Snapshot): void {
    const received = performance.now();
    this.pendingNodes = [];
    this.pendingEvents = [];
    this.grid.reset(s.nodes);
    this.jobs.clear();
    for (const j of s.jobs) this.jobs.set(j.id, j);
    this.events = s.events.slice(-EVENTS_KEPT);
    this.setStatus(s.status);
    this.renderAll();
    if (this.firstRender) {
      this.firstRender = false;
      document.body.dataset.snapshotMs = String(Math.round(received));
      document.body.dataset.applyMs = String(Math.round(performance.now() - received));
      // After the next frame the tiles have been laid out and painted.
      requestAnimationFrame(() => setTimeout(() => {
        document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
        document.body.dataset.ready = 'true';
      }, 0));
    }
  }

  private onJob(j: JobSummary): void {
    this.jobs.set(j.id, j);
    this.jobsDirty = true;
    this.schedule();
    const r = this.route;
    if (r.view === 'job' && r.id === j.id) this.refreshDetail();
  }

  private setStatus(s: FeedStatus): void {
    const live = byId('live');
    live.className = `live ${s.live ? 'up' : 'down'}`;
    live.textContent = s.live ? 'live' : `not live: ${s.message}`;
    live.title = s.message;
  }

  private schedule(): void {
    this.frame ||= requestAnimationFrame(() => this.flush());
  }

  /** Everything that arrived since the last frame, applied at once. */
  private flush(): void {
    this.frame = 0;
    const deltas = this.pendingNodes;
    const events = this.pendingEvents;
    this.pendingNodes = [];
    this.pendingEvents = [];
    const r = this.route;
    let detailChanged = false;
    for (const d of deltas) {
      this.grid.apply(d);
      if (r.view === 'node' && (d.remove.includes(r.id) || d.upsert.some((t) => t.id === r.id))) detailChanged = true;
    }
    if (deltas.length) {
      renderCounts(byId('counts'), this.grid.all.values());
      this.renderShown();
      this.refreshLabelKeys();
    }
    if (events.length) {
      this.events = [...this.events, ...events].slice(-EVENTS_KEPT);
      this.renderRecentEvents();
      const body = byId('all-events');
      for (const e of events) body.prepend(eventRow(e));
      while (body.children.length > EVENTS_KEPT) body.lastElementChild?.remove();
      if (r.view === 'node' && events.some((e) => e.nodeId === r.id)) detailChanged = true;
    }
    if (this.jobsDirty) {
      this.jobsDirty = false;
      renderJobs(byId('jobs'), this.jobs.values());
    }
    if (detailChanged) this.refreshDetail();
    document.body.dataset.tiles = String(this.grid.all.size);
  }

  private renderAll(): void {
    renderCounts(byId('counts'), this.grid.all.values());
    this.renderShown();
    this.refreshLabelKeys();
    renderJobs(byId('jobs'), this.jobs.values());
    this.renderRecentEvents();
    byId('all-events').replaceChildren(...this.events.slice().reverse().map(eventRow));
    document.body.dataset.tiles = String(this.grid.all.size);
    if (this.route.view !== 'fleet' && this.route.view !== 'events') this.refreshDetail();
  }

  private renderShown(): void {
    const total = this.grid.all.size;
    byId('shown').textContent = this.grid.shown === total ? `${total} nodes` : `showing ${this.grid.shown} of ${total} nodes`;
  }

  private renderRecentEvents(): void {
    byId('recent-events').replaceChildren(...this.events.slice(-RECENT_EVENTS_SHOWN).reverse().map(eventLine));
  }

  /** The group-by choice offers every label key seen (rack, role, ...). */
  private refreshLabelKeys(): void {
    const keys = this.grid.labelKeys();
    const text = keys.join('\n');
    if (text === this.labelKeys) return;
    this.labelKeys = text;
    const select = byId<HTMLSelectElement>('group-by');
    const current = select.value;
    select.replaceChildren(el('option', { value: 'group' }, 'group'), el('option', { value: 'state' }, 'state'), ...keys.map((k) => el('option', { value: `label:${k}` }, `label ${k}`)));
    select.value = [...select.options].some((o) => o.value === current) ? current : 'group';
  }

  private showRoute(): void {
    this.route = route();
    for (const main of document.querySelectorAll<HTMLElement>('main[data-view]')) main.hidden = main.dataset.view !== this.route.view;
    for (const a of document.querySelectorAll<HTMLElement>('header nav a')) a.classList.toggle('current', a.dataset.view === this.route.view);
    if (this.route.view === 'node' || this.route.view === 'job') {
      const root = byId(this.route.view === 'node' ? 'view-node' : 'view-job');
      root.replaceChildren(el('p', {}, 'loading…'));
      this.loadDetail();
    }
  }

  /** Reloads the node or job page soon (changes come in bursts: one request per burst). */
  private refreshDetail(): void {
    clearTimeout(this.detailTimer);
    this.detailTimer = window.setTimeout(() => this.loadDetail(), 200);
  }

  private loadDetail(): void {
    const r = this.route;
    if (r.view === 'node') {
      getJson<NodePage>(`/api/node/${encodeURIComponent(r.id)}`).then(
        (p) => { if (this.isRoute(r)) renderNodePage(byId('view-node'), p, this.events); },
        (err: unknown) => this.detailError('view-node', r, err),
      );
    } else if (r.view === 'job') {
      getJson<JobPage>(`/api/job/${encodeURIComponent(r.id)}`).then(
        (p) => { if (this.isRoute(r)) renderJobPage(byId('view-job'), p); },
        (err: unknown) => this.detailError('view-job', r, err),
      );
    }
  }

  private isRoute(r: Route): boolean {
    return JSON.stringify(r) === JSON.stringify(this.route);
  }

  private detailError(id: string, r: Route, err: unknown): void {
    if (this.isRoute(r)) byId(id).replaceChildren(el('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err)));
  }
}

function filterInput(): HTMLInputElement {
  return byId<HTMLInputElement>('filter');
}

new Dashboard().start();
