/**
 * The fleet as a grid of node tiles, in sections (by group, state or a label such as rack),
 * filtered by a label selector with the same grammar as `clusterctl nodes -l`.
 *
 * Incremental, for 10,000 nodes: each tile element is made once and kept; a change touches only
 * the tiles it names (their text and classes when what they show changed, their place when
 * their section changed), never the whole grid. Within a section tiles stay in id order (natural:
 * node-2 before node-10) by a binary search per insert. Only a new filter or grouping walks
 * every node.
 */
import { matchesSelector, type Selector } from '../../../shared/selector-syntax.js';
import type { NodeDelta, Tile } from '../protocol.js';
import { el, nodeHref } from './dom.js';

/** `group`, `state`, or `label:KEY`. */
export type GroupBy = string;

interface TileView {
  el: HTMLAnchorElement;
  /** What the element shows, to skip a change that does not alter it. */
  shown: string;
  section: string | null;
}

interface Section {
  key: string;
  el: HTMLElement;
  title: HTMLElement;
  body: HTMLElement;
  ids: string[];
}

const collator = new Intl.Collator(undefined, { numeric: true });
/** The section of nodes without the group or label: always last. */
const NONE = '\uffff';

function compareSections(a: string, b: string): number {
  if (a === NONE || b === NONE) return a === b ? 0 : a === NONE ? 1 : -1;
  return collator.compare(a, b);
}

function lowerBound(ids: readonly string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (collator.compare(ids[mid], id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The words under the state: readable without colour. */
export function marks(t: Tile): string[] {
  const out: string[] = [];
  if (!t.reachable) out.push('unreachable');
  if (t.drift) out.push('drift');
  if (t.maintenance) out.push('maint');
  if (t.job) out.push('job');
  return out;
}

function shownOf(t: Tile): string {
  return JSON.stringify([t.state, marks(t), t.hostname, t.ip, t.drift, t.lastError, t.group]);
}

export class FleetGrid {
  private readonly tiles = new Map<string, Tile>();
  private readonly views = new Map<string, TileView>();
  private readonly sections = new Map<string, Section>();
  private readonly dirty = new Set<string>();
  private selector: Selector = [];
  private groupBy: GroupBy = 'group';
  private shownCount = 0;

  constructor(private readonly root: HTMLElement) {}

  get all(): ReadonlyMap<string, Tile> {
    return this.tiles;
  }

  /** Tiles that pass the filter. */
  get shown(): number {
    return this.shownCount;
  }

  /** A new stream's snapshot: the tiles not in it go, the others are placed as changes. */
  reset(tiles: readonly Tile[]): void {
    const ids = new Set(tiles.map((t) => t.id));
    this.apply({ upsert: [...tiles], remove: [...this.tiles.keys()].filter((id) => !ids.has(id)) });
  }

  apply(delta: NodeDelta): void {
    for (const id of delta.remove) {
      this.tiles.delete(id);
      this.place(id);
    }
    for (const t of delta.upsert) {
      this.tiles.set(t.id, t);
      this.place(t.id);
    }
    this.retitle();
  }

  setSelector(selector: Selector): void {
    this.selector = selector;
    for (const id of this.tiles.keys()) this.place(id);
    this.retitle();
  }

  setGroupBy(groupBy: GroupBy): void {
    if (groupBy === this.groupBy) return;
    this.groupBy = groupBy;
    for (const v of this.views.values()) v.section = null;
    for (const s of this.sections.values()) s.el.remove();
    this.sections.clear();
    this.dirty.clear();
    this.shownCount = 0;
    for (const id of this.tiles.keys()) this.place(id);
    this.retitle();
  }

  /** Label keys seen on any node (for the group-by choice). */
  labelKeys(): string[] {
    const keys = new Set<string>();
    for (const t of this.tiles.values()) for (const k of Object.keys(t.labels)) keys.add(k);
    return [...keys].sort(collator.compare);
  }

  private sectionOf(t: Tile): string {
    if (this.groupBy === 'state') return t.state;
    if (this.groupBy.startsWith('label:')) return t.labels[this.groupBy.slice(6)] ?? NONE;
    return t.group || NONE;
  }

  private sectionTitle(key: string): string {
    if (this.groupBy === 'state') return `state ${key}`;
    if (this.groupBy.startsWith('label:')) {
      const label = this.groupBy.slice(6);
      return key === NONE ? `no ${label} label` : `${label}=${key}`;
    }
    return key === NONE ? 'no group' : `group ${key}`;
  }

  /** Puts one node where it belongs now: nowhere (gone or filtered out), or its section, up to date. */
  private place(id: string): void {
    const t = this.tiles.get(id);
    let v = this.views.get(id);
    if (!t || !matchesSelector(this.selector, t.labels)) {
      if (v) this.detach(id, v);
      if (!t) this.views.delete(id);
      return;
    }
    if (!v) {
      v = { el: el('a', { class: 'tile', href: nodeHref(id), 'data-id': id }), shown: '', section: null };
      this.views.set(id, v);
    }
    const shown = shownOf(t);
    if (v.shown !== shown) {
      this.render(v.el, t);
      v.shown = shown;
    }
    const key = this.sectionOf(t);
    if (v.section !== key) {
      this.detach(id, v);
      this.attach(id, v, key);
    }
  }

  private render(a: HTMLAnchorElement, t: Tile): void {
    const m = marks(t);
    a.className = ['tile', `s-${t.state}`, ...(t.reachable ? [] : ['unreachable']), ...(t.drift ? ['drift'] : []), ...(t.maintenance ? ['maint'] : [])].join(' ');
    a.dataset.state = t.state;
    a.title = [
      `${t.id}: ${t.state}${m.length ? ` (${m.join(', ')})` : ''}`,
      t.hostname && `host ${t.hostname}${t.ip ? ` ${t.ip}` : ''}`,
      t.job && `job ${t.job}`,
      t.drift && `drift: ${t.drift}`,
      t.lastError && `error: ${t.lastError}`,
    ].filter((s) => s).join('\n');
    a.replaceChildren(el('span', { class: 'id' }, t.id), el('span', { class: 'st' }, t.state), el('span', { class: 'marks' }, m.join(' · ')));
  }

  private attach(id: string, v: TileView, key: string): void {
    let s = this.sections.get(key);
    if (!s) s = this.addSection(key);
    const i = lowerBound(s.ids, id);
    s.ids.splice(i, 0, id);
    const next = i + 1 < s.ids.length ? this.views.get(s.ids[i + 1])?.el ?? null : null;
    s.body.insertBefore(v.el, next);
    v.section = key;
    this.shownCount++;
    this.dirty.add(key);
  }

  private detach(id: string, v: TileView): void {
    if (v.section === null) return;
    const s = this.sections.get(v.section);
    v.el.remove();
    v.section = null;
    this.shownCount--;
    if (!s) return;
    const i = lowerBound(s.ids, id);
    if (s.ids[i] === id) s.ids.splice(i, 1);
    if (s.ids.length === 0) {
      s.el.remove();
      this.sections.delete(s.key);
      this.dirty.delete(s.key);
    } else {
      this.dirty.add(s.key);
    }
  }

  private addSection(key: string): Section {
    const title = el('h3');
    const body = el('div', { class: 'tiles' });
    const s: Section = { key, el: el('section', { class: 'section', 'data-section': key === NONE ? '' : key }, title, body), title, body, ids: [] };
    const keys = [...this.sections.keys()].sort(compareSections);
    const after = keys.find((k) => compareSections(k, key) > 0);
    this.root.insertBefore(s.el, after ? this.sections.get(after)?.el ?? null : null);
    this.sections.set(key, s);
    return s;
  }

  private retitle(): void {
    for (const key of this.dirty) {
      const s = this.sections.get(key);
      if (s) s.title.textContent = `${this.sectionTitle(key)} (${s.ids.length} node${s.ids.length === 1 ? '' : 's'})`;
    }
    this.dirty.clear();
  }
}
