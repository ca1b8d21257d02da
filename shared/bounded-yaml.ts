/**
 * YAML (and so JSON) from a request, bounded before and while it is parsed. The `yaml` parser
 * spends time that grows faster than the input on deep nesting (a 256 KiB `[[[…` took 6.6 s on
 * a loaded 2-core box) and, with `uniqueKeys`, quadratic time in the keys of one map (26,000
 * keys took 26 s): one such request held the coordinator's event loop long enough for every
 * health check to fail and the leader to fail over. So, in this order, each step linear:
 *
 *   1. the size in bytes;
 *   2. a scan of the text for nesting: flow brackets and the indentation column of block
 *      content (each block level needs one more column), so depth is bounded before the parser
 *      sees it;
 *   3. the parse without `uniqueKeys`, then one walk that counts keys per map and nodes in all
 *      and finds duplicate keys with a Set (the parser's own check compares every pair);
 *   4. `toJS` with the alias limit (an alias bomb), its error turned into a refusal.
 *
 * Every refusal is an InvalidArgumentError with a short message that does not echo the input.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { InvalidArgumentError } from './errors';
import { INPUT_LIMITS, type InputLimits } from './input-limits';

/** One problem of a document, with its position when known (1-based). */
export interface YamlProblem {
  message: string;
  line?: number;
  col?: number;
}

export interface BoundedYaml {
  doc: Document.Parsed;
  /** Syntax errors and duplicate keys, in document order; empty when the document is sound. */
  problems: YamlProblem[];
  lines: LineCounter;
}

type Limits = Pick<InputLimits, 'yamlDepth' | 'yamlIndentColumns' | 'mapKeys' | 'yamlNodes'>;

/**
 * Refuses text nested deeper, or with more entries, than `limits` allow, by one pass over the
 * characters (no parse), so the parser never sees what it would spend seconds on:
 *
 * - block nesting: a stack of the indentation columns of the open block levels (a line pops the
 *   levels at or right of its column, pushes its own, and one more per "- ", "? " or ": "
 *   indicator before its content); the content of a block scalar (`|`, `>`) is skipped;
 * - flow nesting: `[` and `{` (also inside quoted strings: a bound, not a parser);
 * - values: a lower bound (each non-blank, non-comment line outside block scalars, each `[` or
 *   `{`, each comma inside them) against `yamlNodes`, and the commas of one flow collection
 *   against `mapKeys` for a `{`: a 26,000-key map, or a cluster file of 16,000 values, used to
 *   reach the parser, which took 0.4–1.4 s before the walk refused them.
 *
 * Amortised linear: each level is pushed and popped once.
 */
export function checkYamlNesting(text: string, origin: string, limits: Limits = INPUT_LIMITS): void {
  const deep = (what: string): InvalidArgumentError => new InvalidArgumentError(`${origin} is nested too deep (${what})`);
  const levels: number[] = [];
  const flowEntries: number[] = [];
  const flowIsMap: boolean[] = [];
  // A lower bound of the document's values: a line holds one at least, a `[` or `{` is one, and
  // each comma of a flow collection separates one more.
  let values = 0;
  // Inside a block scalar: lines indented past `scalarIndent` are its content.
  let scalarIndent = -1;
  let i = 0;
  while (i < text.length) {
    // --- the start of a line: indentation, then block indicators -----------------------------
    let column = 0;
    while (i < text.length && text.charCodeAt(i) === 32) { i++; column++; }
    const first = text.charCodeAt(i);
    const blank = i >= text.length || first === 10 || first === 13 || first === 35; // empty or a comment
    if (scalarIndent >= 0 && (blank || column > scalarIndent)) {
      while (i < text.length && text.charCodeAt(i) !== 10) i++;
      i++;
      continue;
    }
    scalarIndent = -1;
    if (blank) {
      while (i < text.length && text.charCodeAt(i) !== 10) i++;
      i++;
      continue;
    }
    if (++values > limits.yamlNodes) throw new InvalidArgumentError(`${origin} has more than ${limits.yamlNodes} values`);
    const lineIndent = column;
    if (flowEntries.length === 0) {
      while (levels.length > 0 && levels[levels.length - 1] >= column) levels.pop();
      levels.push(column);
      // "- - - x": each indicator opens one more level.
      for (;;) {
        const c = text.charCodeAt(i);
        const next = text.charCodeAt(i + 1);
        if (!((c === 45 || c === 63 || c === 58) && (next === 32 || next === 10 || Number.isNaN(next)))) break;
        i += 1;
        column += 1;
        while (i < text.length && text.charCodeAt(i) === 32) { i++; column++; }
        levels.push(column);
        if (levels.length > limits.yamlDepth) break;
      }
      if (levels.length > limits.yamlDepth) throw deep(`more than ${limits.yamlDepth} block levels`);
      if (column > limits.yamlIndentColumns) throw deep(`content past column ${limits.yamlIndentColumns}`);
    }
    // --- the rest of the line: flow brackets and commas ----------------------------------------
    let last = 0;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) break;
      if (c !== 32 && c !== 13) last = c;
      if (c === 91 || c === 123) {
        if (flowEntries.length >= limits.yamlDepth) throw deep(`more than ${limits.yamlDepth} levels of [ or {`);
        if (++values > limits.yamlNodes) throw new InvalidArgumentError(`${origin} has more than ${limits.yamlNodes} values`);
        flowEntries.push(0);
        flowIsMap.push(c === 123);
      } else if ((c === 93 || c === 125) && flowEntries.length > 0) {
        flowEntries.pop();
        flowIsMap.pop();
      } else if (c === 44 && flowEntries.length > 0) {
        const n = ++flowEntries[flowEntries.length - 1];
        const isMap = flowIsMap[flowIsMap.length - 1];
        if (isMap && n >= limits.mapKeys) throw new InvalidArgumentError(`${origin} has a mapping of more than ${limits.mapKeys} keys`);
        if (n >= limits.yamlNodes || ++values > limits.yamlNodes) throw new InvalidArgumentError(`${origin} has more than ${limits.yamlNodes} values`);
      }
    }
    i++;
    // A block scalar header ends its line: `|`, `>`, with an optional chomping or indent indicator.
    if (flowEntries.length === 0 && (last === 124 || last === 62 || /[|>][+-]?[1-9]?[+-]?\s*$/.test(lineTail(text, i - 1)))) scalarIndent = lineIndent;
  }
}

/** The last few characters of the line ending at `end` (exclusive of its newline). */
function lineTail(text: string, end: number): string {
  return text.slice(Math.max(0, end - 4), end);
}

/** Counts nodes, keys per map and depth; collects duplicate keys. Iterative: a deep document cannot overflow the stack. */
function walk(doc: Document.Parsed, lines: LineCounter, origin: string, limits: Limits): YamlProblem[] {
  const problems: YamlProblem[] = [];
  const stack: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 0 }];
  let nodes = 0;
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (++nodes > limits.yamlNodes) throw new InvalidArgumentError(`${origin} has more than ${limits.yamlNodes} values`);
    if (depth > limits.yamlDepth) throw new InvalidArgumentError(`${origin} is nested too deep (more than ${limits.yamlDepth} levels)`);
    if (isMap(node)) {
      if (node.items.length > limits.mapKeys) throw new InvalidArgumentError(`${origin} has a mapping of ${node.items.length} keys; the limit is ${limits.mapKeys}`);
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key as YamlNode | null;
        const name = isScalar(key) ? `${typeof key.value}:${String(key.value)}` : undefined;
        if (name !== undefined) {
          if (seen.has(name)) {
            const pos = key?.range ? lines.linePos(key.range[0]) : undefined;
            problems.push({ message: 'Map keys must be unique', ...(pos ? { line: pos.line, col: pos.col } : {}) });
          }
          seen.add(name);
        }
        if (key && !isScalar(key)) stack.push({ node: key, depth: depth + 1 });
        stack.push({ node: pair.value, depth: depth + 1 });
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push({ node: item, depth: depth + 1 });
    } else if (isAlias(node) || isScalar(node) || node === null || node === undefined) {
      // Leaves: an alias's expansion is bounded by maxAliasCount in toJS.
    }
  }
  return problems;
}

/** Parses `text` within the limits; throws InvalidArgumentError for an input over them. */
export function parseBoundedYaml(text: string, origin: string, maxBytes: number, limits: Limits = INPUT_LIMITS): BoundedYaml {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new InvalidArgumentError(`${origin} is ${bytes} bytes; the limit is ${maxBytes}`);
  checkYamlNesting(text, origin, limits);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: true });
  const problems: YamlProblem[] = doc.errors.map((e) => {
    const p = e.linePos?.[0];
    // prettyErrors appends " at line L, column C:" and a source excerpt: the first line, without the position.
    const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '').slice(0, 200);
    return { message, ...(p ? { line: p.line, col: p.col } : {}) };
  });
  if (problems.length === 0) problems.push(...walk(doc, lines, origin, limits));
  return { doc, problems: problems.slice(0, 5), lines };
}

/** `doc.toJS` with the alias limit; an alias bomb or a self-referencing anchor is a refusal, not a crash. */
export function boundedToJS(doc: Document.Parsed, origin: string, limits: Pick<InputLimits, 'yamlAliases'> = INPUT_LIMITS): unknown {
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: limits.yamlAliases });
  } catch (err) {
    const why = err instanceof Error && /alias/i.test(err.message) ? `uses aliases beyond the limit of ${limits.yamlAliases} expansions` : 'cannot be read';
    throw new InvalidArgumentError(`${origin} ${why}`);
  }
  if (isCircular(value)) throw new InvalidArgumentError(`${origin} has an anchor that refers to itself (&a [*a])`);
  return value;
}

/** Whether `value` contains itself (a self-referencing anchor makes such a value); iterative. */
function isCircular(value: unknown): boolean {
  const onPath = new Set<object>();
  const stack: { v: unknown; exit?: true }[] = [{ v: value }];
  while (stack.length > 0) {
    const { v, exit } = stack.pop() as { v: unknown; exit?: true };
    if (v === null || typeof v !== 'object') continue;
    if (exit) { onPath.delete(v); continue; }
    if (onPath.has(v)) return true;
    onPath.add(v);
    stack.push({ v, exit: true });
    for (const child of v instanceof Map ? v.values() : Object.values(v)) stack.push({ v: child });
  }
  return false;
}
