/**
 * Label selectors, kubectl's syntax: `k=v`, `k==v`, `k!=v`, `k` (exists), `!k` (absent),
 * `k in (a,b)`, `k notin (a,b)`, joined by commas (all must hold). Parsed once, then matched.
 *
 * This module imports nothing, so the dashboard page (cli/dashboard/web, compiled for the
 * browser) filters with the same grammar as `-l`; shared/selector.ts is what the rest of the
 * code imports (it turns a syntax error into InvalidArgumentError, a gRPC status).
 */

/** A selector that does not parse; the message says what is wrong and shows examples. */
export class SelectorSyntaxError extends Error {
  override readonly name = 'SelectorSyntaxError';
}

export type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'absent'; key: string };

export type Selector = readonly Requirement[];

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;
const VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

function bad(text: string, why: string): SelectorSyntaxError {
  return new SelectorSyntaxError(
    `malformed label selector ${JSON.stringify(text)}: ${why} (examples: "role=worker", "rack!=r1,gpu", "zone in (a,b)")`,
  );
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { terms.push(cur); cur = ''; continue; }
    cur += ch;
  }
  terms.push(cur);
  return terms;
}

export function parseSelector(text: string): Selector {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const out: Requirement[] = [];
  for (const raw of splitTerms(trimmed)) {
    const term = raw.trim();
    if (term === '') throw bad(text, 'empty term');
    let m: RegExpExecArray | null;
    if ((m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term))) {
      const values = m[3].split(',').map((v) => v.trim());
      if (!KEY.test(m[1])) throw bad(text, `invalid key ${JSON.stringify(m[1])}`);
      if (values.some((v) => v === '' || !VALUE.test(v))) throw bad(text, `invalid value list in ${JSON.stringify(term)}`);
      out.push({ op: m[2] as 'in' | 'notin', key: m[1], values });
    } else if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term))) {
      if (!KEY.test(m[1])) throw bad(text, `invalid key ${JSON.stringify(m[1])}`);
      if (!VALUE.test(m[3])) throw bad(text, `invalid value ${JSON.stringify(m[3])}`);
      out.push({ op: m[2] === '!=' ? 'neq' : 'eq', key: m[1], value: m[3] });
    } else if ((m = /^!\s*(\S+)$/.exec(term))) {
      if (!KEY.test(m[1])) throw bad(text, `invalid key ${JSON.stringify(m[1])}`);
      out.push({ op: 'absent', key: m[1] });
    } else if (KEY.test(term)) {
      out.push({ op: 'exists', key: term });
    } else {
      throw bad(text, `cannot read ${JSON.stringify(term)}`);
    }
  }
  return out;
}

export function matchesSelector(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case 'eq': return has && v === r.value;
      case 'neq': return !has || v !== r.value;
      case 'in': return has && r.values.includes(v);
      case 'notin': return !has || !r.values.includes(v);
      case 'exists': return has;
      case 'absent': return !has;
    }
  });
}

export function formatSelector(selector: Selector): string {
  return selector
    .map((r) => {
      switch (r.op) {
        case 'eq': return `${r.key}=${r.value}`;
        case 'neq': return `${r.key}!=${r.value}`;
        case 'in': return `${r.key} in (${r.values.join(',')})`;
        case 'notin': return `${r.key} notin (${r.values.join(',')})`;
        case 'exists': return r.key;
        case 'absent': return `!${r.key}`;
      }
    })
    .join(',');
}
