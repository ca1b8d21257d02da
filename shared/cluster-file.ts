/**
 * The cluster file of `clusterctl plan/apply -f cluster.yaml`: the whole desired configuration
 * in one document (Clusterlite's habit, Terraform's plan/apply):
 *
 *     bundles:
 *       - file: bundles/base.yaml      # a bundle file, relative to the cluster file
 *       - name: app                    # or a bundle inline
 *         version: 2
 *         units: [...]
 *     groups:
 *       worker:                        # a map by name (or a list of {name, ...})
 *         bundle: base@3
 *         variables: { ntp_server: 10.0.0.1 }
 *         minSize: 2
 *         dependsOn: [control]
 *         verifySchedule: "0 3 * * *"
 *         repairPolicy: repair
 *         autoCommission: ["role=worker"]   # selectors (or {selector: ...})
 *         allowedPaths: [/etc/chrony.conf]  # where its bundle may write (shared/path-allowlist.ts)
 *     autoCommission:                  # the same rules, listed apart
 *       - group: worker
 *         selector: facts.cpuCores=16
 *
 * Parsing is pure apart from the injected `readFile` (the CLI resolves `file:` entries; the
 * coordinator receives the resolved, self-contained document and has no `readFile`). Every
 * problem names the file, line and column, and nothing is sent or changed when there is one.
 */
import { isMap, isScalar, type Document, type LineCounter } from 'yaml';
import { boundedToJS, parseBoundedYaml } from './bounded-yaml';
import { INPUT_LIMITS } from './input-limits';
import { InvalidArgumentError } from './errors';
import { canonicalJson, validateBundle, type Bundle } from './bundle';
import { checkGroup, type GroupRecord } from './group';
import { durationFlag } from './health-gate';

/** A group as the file wants it (the stored record without updatedAt). */
export type GroupSpec = Omit<GroupRecord, 'updatedAt'>;

export interface ClusterFile {
  bundles: Bundle[];
  groups: GroupSpec[];
}

export interface ParseOptions {
  /** Names the document in messages (the file path). */
  source?: string;
  /** Reads a bundle file named by `file:`; undefined = `file:` entries are refused. */
  readFile?: (relativePath: string) => string;
}

/** Every key the parser accepts (docs/operations.md documents each; a test keeps them in step). */
export const TOP_KEYS = ['bundles', 'groups', 'autoCommission'];
/** The keys of a top-level autoCommission rule. */
export const AUTO_COMMISSION_RULE_KEYS = ['group', 'selector'];
export const GROUP_KEYS = ['name', 'bundle', 'version', 'variables', 'minSize', 'dependsOn', 'verifySchedule', 'repairPolicy', 'autoCommission', 'soak', 'allowedPaths'];

class Problems {
  readonly list: string[] = [];
  constructor(private readonly source: string, private readonly doc: Document, private readonly lines: LineCounter) {}

  /** `path` in the YAML tree → "file:line:col"; the nearest existing ancestor when absent. */
  where(path: readonly (string | number)[]): string {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && Array.isArray(node.range)) {
        const p = this.lines.linePos(node.range[0]);
        return `${this.source}:${p.line}:${p.col}`;
      }
    }
    return this.source;
  }

  add(path: readonly (string | number)[], message: string): void {
    this.list.push(`${this.where(path)}: ${message}`);
  }

  /** Where the KEY of a mapping entry is (an unknown key is reported at the key, not its value). */
  whereKey(path: readonly (string | number)[]): string {
    const parent = path.length > 1 ? this.doc.getIn(path.slice(0, -1), true) : this.doc.contents;
    if (isMap(parent)) {
      const pair = parent.items.find((i) => isScalar(i.key) && i.key.value === path[path.length - 1]);
      const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (range) {
        const p = this.lines.linePos(range[0]);
        return `${this.source}:${p.line}:${p.col}`;
      }
    }
    return this.where(path);
  }

  addAtKey(path: readonly (string | number)[], message: string): void {
    this.list.push(`${this.whereKey(path)}: ${message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bundleRef(text: unknown, version: unknown): { bundle: string; version: string } | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^([^@\s]+)@([^@\s]+)$/.exec(text.trim());
  if (m) return { bundle: m[1], version: m[2] };
  if (version !== undefined && (typeof version === 'string' || typeof version === 'number')) return { bundle: text.trim(), version: String(version) };
  return undefined;
}

/** Parses and validates a cluster file; InvalidArgumentError listing every problem with its line. */
export function parseClusterFile(text: string, options: ParseOptions = {}): ClusterFile {
  const source = options.source ?? 'cluster file';
  const { doc, problems: syntax, lines } = parseBoundedYaml(text, source, INPUT_LIMITS.clusterFileBytes);
  if (syntax.length > 0) {
    const msgs = syntax.map((p) => `${source}${p.line ? `:${p.line}:${p.col ?? 0}` : ''}: ${p.message}`);
    throw new InvalidArgumentError(`${source} is not valid YAML: ${msgs.join('; ')}`);
  }
  const root: unknown = boundedToJS(doc, source);
  const problems = new Problems(source, doc, lines);
  if (root === null || root === undefined) throw new InvalidArgumentError(`${source} is empty: name bundles and groups (see clusterctl apply --help)`);
  if (!isObject(root)) throw new InvalidArgumentError(`${problems.where([])}: a cluster file is a mapping with bundles, groups and autoCommission`);
  for (const k of Object.keys(root)) {
    if (!TOP_KEYS.includes(k)) problems.addAtKey([k], `unknown key "${k}" (expected ${TOP_KEYS.join(', ')})`);
  }

  // --- bundles -------------------------------------------------------------------------------
  const bundles: Bundle[] = [];
  const rawBundles = root.bundles ?? [];
  if (!Array.isArray(rawBundles)) problems.add(['bundles'], 'bundles must be a list (of `file: PATH` entries or inline bundles)');
  else {
    rawBundles.forEach((entry: unknown, i) => {
      let value: unknown = entry;
      let origin = `bundles[${i}]`;
      if (isObject(entry) && typeof entry.file === 'string' && Object.keys(entry).length === 1) {
        if (!options.readFile) {
          problems.add(['bundles', i, 'file'], `bundle file ${entry.file} was not resolved (the client reads bundle files and sends them inline)`);
          return;
        }
        let bundleText: string;
        try {
          bundleText = options.readFile(entry.file);
        } catch (err) {
          problems.add(['bundles', i, 'file'], `cannot read bundle file ${entry.file}: ${(err as Error).message}`);
          return;
        }
        let parsed;
        try {
          parsed = parseBoundedYaml(bundleText, entry.file, INPUT_LIMITS.bundleBytes);
          if (parsed.problems.length === 0) value = boundedToJS(parsed.doc, entry.file);
        } catch (err) {
          problems.add(['bundles', i, 'file'], (err as Error).message);
          return;
        }
        if (parsed.problems.length > 0) {
          const p = parsed.problems[0];
          problems.add(['bundles', i, 'file'], `${entry.file}${p.line ? `:${p.line}:${p.col ?? 0}` : ''}: not valid YAML: ${p.message}`);
          return;
        }
        origin = entry.file;
      }
      try {
        bundles.push(validateBundle(value));
      } catch (err) {
        problems.add(['bundles', i], `${origin}: ${(err as Error).message}`);
      }
    });
  }
  const seen = new Map<string, string>();
  for (const b of bundles) {
    const ref = `${b.name}@${b.version}`;
    const json = canonicalJson(b);
    if (seen.has(ref) && seen.get(ref) !== json) problems.add(['bundles'], `bundle ${ref} is listed twice with different content`);
    seen.set(ref, json);
  }

  // --- groups --------------------------------------------------------------------------------
  const groups = new Map<string, GroupSpec>();
  const rawGroups = root.groups ?? {};
  const entries: { name: string; value: unknown; path: (string | number)[] }[] = [];
  if (Array.isArray(rawGroups)) {
    rawGroups.forEach((g: unknown, i) => entries.push({ name: isObject(g) && typeof g.name === 'string' ? g.name : '', value: g, path: ['groups', i] }));
  } else if (isObject(rawGroups)) {
    for (const [name, g] of Object.entries(rawGroups)) entries.push({ name, value: g, path: ['groups', name] });
  } else {
    problems.add(['groups'], 'groups must be a mapping of name → group (or a list of groups with a name)');
  }
  for (const { name, value, path } of entries) {
    if (!isObject(value)) {
      problems.add(path, `group ${name || '(unnamed)'} must be a mapping (bundle, variables, minSize, ...)`);
      continue;
    }
    for (const k of Object.keys(value)) if (!GROUP_KEYS.includes(k)) problems.addAtKey([...path, k], `unknown group key "${k}" (expected ${GROUP_KEYS.join(', ')})`);
    const ref = bundleRef(value.bundle, value.version);
    if (!ref) {
      problems.add([...path, 'bundle'], `group ${name || '(unnamed)'}: bundle must be NAME@VERSION (e.g. base@3)`);
      continue;
    }
    const auto = Array.isArray(value.autoCommission)
      ? value.autoCommission.map((r: unknown) => ({ selector: typeof r === 'string' ? r : isObject(r) && typeof r.selector === 'string' ? r.selector : '' }))
      : value.autoCommission === undefined ? [] : undefined;
    if (!auto) {
      problems.add([...path, 'autoCommission'], 'autoCommission must be a list of selectors');
      continue;
    }
    const variables: Record<string, string> = {};
    if (value.variables !== undefined && !isObject(value.variables)) problems.add([...path, 'variables'], 'variables must be a mapping of name → value');
    for (const [k, v] of Object.entries(isObject(value.variables) ? value.variables : {})) {
      if (isObject(v) || Array.isArray(v)) problems.add([...path, 'variables', k], `variable ${k} must be a string, number or boolean`);
      else variables[k] = String(v);
    }
    if (groups.has(name)) {
      problems.add(path, `group ${name} is defined twice`);
      continue;
    }
    try {
      const spec = checkGroup({
        name, bundle: ref.bundle, version: ref.version, variables,
        minSize: value.minSize === undefined ? undefined : Number(value.minSize),
        dependsOn: Array.isArray(value.dependsOn) ? value.dependsOn.map(String) : undefined,
        verifySchedule: typeof value.verifySchedule === 'string' ? value.verifySchedule : undefined,
        repairPolicy: typeof value.repairPolicy === 'string' ? value.repairPolicy : undefined,
        autoCommission: auto,
        soakMs: value.soak === undefined ? undefined : durationFlag('soak', typeof value.soak === 'string' || typeof value.soak === 'number' ? String(value.soak) : '?'),
        allowedPaths: Array.isArray(value.allowedPaths) ? value.allowedPaths.map(String) : undefined,
      });
      groups.set(spec.name, spec);
    } catch (err) {
      problems.add(path, (err as Error).message);
    }
  }

  // --- top-level autoCommission rules --------------------------------------------------------
  const rawAuto = root.autoCommission ?? [];
  if (!Array.isArray(rawAuto)) problems.add(['autoCommission'], 'autoCommission must be a list of {group, selector}');
  else {
    rawAuto.forEach((r: unknown, i) => {
      if (!isObject(r) || typeof r.group !== 'string' || typeof r.selector !== 'string') {
        problems.add(['autoCommission', i], `each rule needs ${AUTO_COMMISSION_RULE_KEYS.join(' and ')}, e.g. {group: worker, selector: role=worker}`);
        return;
      }
      const g = groups.get(r.group);
      if (!g) {
        problems.add(['autoCommission', i, 'group'], `group ${r.group} is not defined in this file`);
        return;
      }
      try {
        const next = checkGroup({ ...g, autoCommission: [...(g.autoCommission ?? []), { selector: r.selector }] });
        groups.set(g.name, next);
      } catch (err) {
        problems.add(['autoCommission', i, 'selector'], (err as Error).message);
      }
    });
  }

  if (problems.list.length > 0) {
    throw new InvalidArgumentError(`${source}: ${problems.list.length} problem${problems.list.length === 1 ? '' : 's'}: ${problems.list.join('; ')}`);
  }
  const byRef = (a: Bundle, b: Bundle): number => (`${a.name}@${a.version}` < `${b.name}@${b.version}` ? -1 : 1);
  return {
    bundles: [...new Map(bundles.map((b) => [`${b.name}@${b.version}`, b])).values()].sort(byRef),
    groups: [...groups.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/**
 * The self-contained document the client sends and the coordinator stores as the last applied
 * configuration: bundles inline, groups with their rules. Canonical: equal configurations give
 * equal text.
 */
export function canonicalDocument(file: ClusterFile): string {
  return canonicalJson({
    bundles: file.bundles,
    groups: file.groups.map((g) => ({
      name: g.name, bundle: `${g.bundle}@${g.version}`, variables: g.variables,
      ...(g.minSize !== undefined ? { minSize: g.minSize } : {}),
      ...(g.dependsOn ? { dependsOn: g.dependsOn } : {}),
      ...(g.verifySchedule ? { verifySchedule: g.verifySchedule } : {}),
      ...(g.repairPolicy ? { repairPolicy: g.repairPolicy } : {}),
      ...(g.autoCommission ? { autoCommission: g.autoCommission.map((r) => r.selector) } : {}),
      ...(g.soakMs ? { soak: `${g.soakMs}ms` } : {}),
    })),
  });
}
