/**
 * Bundle validation, run before anything is applied or stored (the agent's local CLI and the
 * coordinator use this same code). Two passes, both collecting every problem so an operator
 * fixes a bundle in one round: the JSON Schema (bundle.schema.json, also usable by editors),
 * then the cross-field rules a schema says badly (unique ids, restartWhenChanged references,
 * exactly one of content/source). Problems are worded by path: `units[3].mode: must be an
 * octal string like "0644"`. A valid document is compiled into the typed Bundle (durations to
 * ms, versions to strings).
 */
import Ajv, { type ErrorObject } from 'ajv';
import { InvalidArgumentError } from '../errors';
import { parseDuration } from '../options';
import { INPUT_LIMITS } from '../input-limits';
import schema from './bundle.schema.json';
import type { Bundle, UnitSpec, VerifyProbe } from './types';

/** The schema file, for editors and for the coordinator to serve. */
export const BUNDLE_SCHEMA: object = schema;

// Compiled once per process; the validator is a pure function afterwards.
const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true, strict: true });
// An annotation the schema uses to carry a message a person can act on (ajv's own messages quote regexes).
ajv.addKeyword({ keyword: 'errorHint', schemaType: 'string' });
const validateSchema = ajv.compile(schema);

/** Thrown for an invalid bundle; `problems` holds one line per problem, by path. */
export class BundleValidationError extends InvalidArgumentError {
  constructor(readonly problems: string[], readonly bundleName?: string) {
    super(`invalid bundle${bundleName ? ` ${bundleName}` : ''} (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`);
  }
}

/** `/units/3/mode` → `units[3].mode`. */
export function formatPath(instancePath: string): string {
  if (instancePath === '') return '';
  let out = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function hintOf(err: ErrorObject): string | undefined {
  const parent = err.parentSchema as { errorHint?: unknown } | undefined;
  return typeof parent?.errorHint === 'string' ? parent.errorHint : undefined;
}

function formatAjvError(err: ErrorObject): string | undefined {
  const path = formatPath(err.instancePath);
  const where = path === '' ? 'bundle' : path;
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'if':
      // "must match then schema": the errors of the matching branch say what is wrong.
      return undefined;
    case 'additionalProperties': {
      const parent = err.parentSchema as { properties?: Record<string, unknown> } | undefined;
      const allowed = parent?.properties ? Object.keys(parent.properties).join(', ') : '';
      return `${where}: unknown key "${String(params.additionalProperty)}"${allowed ? ` (allowed: ${allowed})` : ''}`;
    }
    case 'required':
      return `${join(path, String(params.missingProperty))}: is required`;
    case 'enum':
      return `${where}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')} (got ${JSON.stringify(err.data)})`;
    case 'propertyNames':
      return `${where}: invalid name ${JSON.stringify(params.propertyName)}`;
    default: {
      if (params.propertyName !== undefined) return undefined; // reported by its propertyNames error
      const hint = hintOf(err);
      if (hint) return `${where}: ${hint}`;
      return `${where}: ${err.message ?? err.keyword}${err.keyword === 'type' ? ` (got ${JSON.stringify(err.data)})` : ''}`;
    }
  }
}

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const PROBE_KINDS = ['command', 'tcp', 'http', 'systemdActive'] as const;

/** Cross-field rules, on a document the schema accepted or not (every access is guarded). */
function crossFieldProblems(doc: Raw): string[] {
  const problems: string[] = [];
  const units = Array.isArray(doc.units) ? doc.units : [];
  const firstIndex = new Map<string, number>();
  units.forEach((u, i) => {
    if (!isRecord(u) || typeof u.id !== 'string') return;
    const prev = firstIndex.get(u.id);
    if (prev !== undefined) problems.push(`units[${i}].id: duplicate id "${u.id}" (first used by units[${prev}])`);
    else firstIndex.set(u.id, i);
  });
  units.forEach((u, i) => {
    if (!isRecord(u)) return;
    if (u.timeout !== undefined && u.timeoutMs !== undefined) problems.push(`units[${i}]: give timeout or timeoutMs, not both`);
    if (u.kind === 'file') {
      const has = (['content', 'source'] as const).filter((k) => u[k] !== undefined);
      if (u.ensure === 'absent') {
        if (has.length > 0) problems.push(`units[${i}]: ensure: absent takes no ${has.join(' or ')}`);
      } else if (has.length !== 1) {
        problems.push(`units[${i}]: exactly one of content or source is required${has.length ? ' (both given)' : ''}`);
      }
      if (u.secret === true && u.content === undefined) {
        problems.push(`units[${i}].secret: marks inline content secret; this unit has none (a source is secret when it was uploaded with --secret)`);
      }
    }
    if (u.kind === 'systemd' && Array.isArray(u.restartWhenChanged)) {
      u.restartWhenChanged.forEach((ref, j) => {
        if (typeof ref !== 'string') return;
        const at = firstIndex.get(ref);
        if (at === undefined) problems.push(`units[${i}].restartWhenChanged[${j}]: unknown unit id "${ref}"`);
        else if (at >= i) problems.push(`units[${i}].restartWhenChanged[${j}]: "${ref}" must come before this unit (units run in order)`);
      });
    }
  });
  const probes = Array.isArray(doc.verify) ? doc.verify : [];
  const probeIds = new Map<string, number>();
  probes.forEach((p, i) => {
    if (!isRecord(p)) return;
    if (typeof p.id === 'string') {
      const prev = probeIds.get(p.id);
      if (prev !== undefined) problems.push(`verify[${i}].id: duplicate id "${p.id}" (first used by verify[${prev}])`);
      else probeIds.set(p.id, i);
    }
    const kinds = PROBE_KINDS.filter((k) => p[k] !== undefined);
    if (kinds.length !== 1) {
      problems.push(`verify[${i}]: exactly one of ${PROBE_KINDS.join(', ')} is required${kinds.length ? ` (got ${kinds.join(' and ')})` : ''}`);
    }
    if (p.expectExit !== undefined && p.command === undefined) problems.push(`verify[${i}].expectExit: only applies to a command probe`);
    if (p.expectStatus !== undefined && p.http === undefined) problems.push(`verify[${i}].expectStatus: only applies to an http probe`);
    if (typeof p.tcp === 'string') {
      const port = Number(p.tcp.slice(p.tcp.lastIndexOf(':') + 1));
      if (port < 1 || port > 65535) problems.push(`verify[${i}].tcp: port ${port} is out of range 1-65535`);
    }
    if (p.timeout !== undefined && p.timeoutMs !== undefined) problems.push(`verify[${i}]: give timeout or timeoutMs, not both`);
  });
  return problems;
}

function compileTimeout(obj: Raw): number | undefined {
  if (typeof obj.timeoutMs === 'number') return obj.timeoutMs;
  if (typeof obj.timeout === 'number') return Math.round(obj.timeout * 1000);
  if (typeof obj.timeout === 'string') return parseDuration(obj.timeout, 's');
  return undefined;
}

function compileUnit(u: Raw): UnitSpec {
  const { timeout: _t, timeoutMs: _tm, ...rest } = u;
  const out: Raw = { ...rest };
  const timeoutMs = compileTimeout(u);
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  if (u.kind === 'package' && typeof u.version === 'number') out.version = String(u.version);
  if (u.kind === 'command' && isRecord(u.env)) {
    out.env = Object.fromEntries(Object.entries(u.env).map(([k, v]) => [k, String(v)]));
  }
  return out as unknown as UnitSpec;
}

function compileProbe(p: Raw): VerifyProbe {
  const { timeout: _t, timeoutMs: _tm, ...rest } = p;
  const out: Raw = { ...rest };
  const timeoutMs = compileTimeout(p);
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  return out as unknown as VerifyProbe;
}

/** Problems with `doc` (parsed YAML/JSON), one line each; empty when the bundle is valid. */
export function bundleProblems(doc: unknown): string[] {
  if (!isRecord(doc)) return [`bundle: must be a mapping with name, version and units (got ${Array.isArray(doc) ? 'a list' : JSON.stringify(doc)})`];
  // Counted before the schema runs over them: one bundle of 80,000 units is refused in one line.
  if (Array.isArray(doc.units) && doc.units.length > INPUT_LIMITS.unitsPerBundle) {
    return [`units: ${doc.units.length} units; a bundle holds at most ${INPUT_LIMITS.unitsPerBundle} (split it into several bundles)`];
  }
  const problems: string[] = [];
  if (!validateSchema(doc)) {
    for (const err of validateSchema.errors ?? []) {
      const line = formatAjvError(err);
      if (line !== undefined && !problems.includes(line)) problems.push(line);
    }
  }
  for (const line of crossFieldProblems(doc)) if (!problems.includes(line)) problems.push(line);
  // In document order (units[2] before units[10]), whichever pass found them.
  const key = (line: string): string => line.slice(0, line.indexOf(':')).replace(/\d+/g, (n) => n.padStart(6, '0'));
  return problems.map((line, i) => ({ line, i, k: key(line) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i))
    .map((p) => p.line);
}

/**
 * Validates a parsed document and compiles it into a Bundle. Throws BundleValidationError
 * listing every problem; nothing is returned for an invalid bundle, so nothing can run.
 */
export function validateBundle(doc: unknown): Bundle {
  const problems = bundleProblems(doc);
  const name = isRecord(doc) && typeof doc.name === 'string' ? doc.name : undefined;
  if (problems.length > 0) throw new BundleValidationError(problems, name);
  const d = doc as Raw;
  return {
    name: d.name as string,
    version: String(d.version),
    ...(typeof d.description === 'string' ? { description: d.description } : {}),
    variables: isRecord(d.variables) ? (d.variables as Bundle['variables']) : {},
    units: (d.units as Raw[]).map(compileUnit),
    verify: Array.isArray(d.verify) ? (d.verify as Raw[]).map(compileProbe) : [],
  };
}
