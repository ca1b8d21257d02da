/** Small DOM helpers of the dashboard page (no framework: a few thousand lines do not need one). */

type Child = Node | string | null | undefined | false;

/** An element with attributes and children; text is always set as text, never parsed as HTML. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

export function orDash(s: string | number | null | undefined): string {
  return s === '' || s === null || s === undefined ? '-' : String(s);
}

/** `5s`, `3m`, `2h`, `4d` since an RFC 3339 time. */
export function age(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return '-';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function nodeHref(id: string): string {
  return `#/node/${encodeURIComponent(id)}`;
}

export function jobHref(id: string): string {
  return `#/job/${encodeURIComponent(id)}`;
}

/**
 * A progress bar: succeeded, failed and running shares of `total`, the numbers in its title and
 * aria attributes. Widths are set through the CSSOM: the page's CSP forbids style attributes.
 */
export function progressBar(total: number, done: number, failed: number, running: number): HTMLElement {
  const part = (cls: string, n: number): HTMLElement => {
    const s = el('span', { class: cls });
    s.style.width = `${total ? (100 * n) / total : 0}%`;
    return s;
  };
  return el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(total), 'aria-valuenow': String(done), title: `${done}/${total} done, ${failed} failed, ${running} running` },
    part('ok', done - failed), part('bad', failed), part('run', running));
}
