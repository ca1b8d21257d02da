/**
 * Options compiled once (Temporal's `compileWorkerOptions`): each runtime declares one table
 * of options; values come from flags, then the environment, then a config file, then the
 * documented default; they are validated and converted (durations to ms) here, and the rest
 * of the program only sees the compiled, typed object.
 */
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from './errors';

export type OptionKind = 'string' | 'int' | 'duration' | 'boolean' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  /** One line for --help. */
  description: string;
  /** Long flag without dashes; defaults to the kebab-case of the option's key. */
  flag?: string;
  /** One-letter alias, without the dash. */
  short?: string;
  /** Environment variable read when the flag is absent. */
  env?: string;
  /** Default (durations in the spec's unit, like the flag: `10` with unit 's' is 10 s). */
  default?: string | number | boolean | readonly string[];
  /** Unit of a bare number given to a duration (default 's'). */
  unit?: 'ms' | 's';
  /** Allowed values of a string option. */
  choices?: readonly string[];
  /** Refuse to start without a value. */
  required?: boolean;
  /** Placeholder in --help (`--etcd HOST:PORT`). */
  placeholder?: string;
  /** Minimum for int and duration (in ms for durations). */
  min?: number;
}

export type OptionSpecs = Record<string, OptionSpec>;

type ValueOfKind<K extends OptionKind> = K extends 'string' ? string
  : K extends 'int' | 'duration' ? number
    : K extends 'boolean' ? boolean
      : string[];

/** Booleans and lists always have a value; others only with a default or when required. */
export type OptionValues<S extends OptionSpecs> = {
  [K in keyof S]: S[K] extends { kind: 'boolean' | 'list' } ? ValueOfKind<S[K]['kind']>
    : S[K] extends { default: string | number } | { required: true } ? ValueOfKind<S[K]['kind']>
      : ValueOfKind<S[K]['kind']> | undefined;
};

export interface ParseResult<S extends OptionSpecs> {
  values: OptionValues<S>;
  positionals: string[];
  /** Arguments after a literal `--`. */
  rest: string[];
  help: boolean;
  /** Where each value came from, for `--help` and diagnostics. */
  sources: Record<keyof S, 'flag' | 'env' | 'config' | 'default' | 'unset'>;
  configPath?: string;
}

export interface ParseContext {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Env var naming a config file (e.g. CLUSTER_AGENT_CONFIG); `--config FILE` always works. */
  configEnv?: string;
  /** Config file read when it exists and none was named. */
  defaultConfigPath?: string;
  /** Whether positional arguments are allowed (default true). */
  allowPositionals?: boolean;
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function flagName(key: string, spec: OptionSpec): string {
  return spec.flag ?? kebab(key);
}

/** Parses a duration such as `500ms`, `10s`, `2m`, `1h`, or a bare number in `unit`. Returns ms. */
export function parseDuration(text: string, unit: 'ms' | 's' = 's'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`invalid duration ${JSON.stringify(text)}: use e.g. 500ms, 10s, 2m`);
  const n = Number(m[1]);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? unit] ?? 1;
  return Math.round(n * factor);
}

/** `where` names the source in error messages: `--lease-ttl`, `CLUSTER_LEASE_TTL`, `config file X: leaseTtl`. */
function convert(spec: OptionSpec, raw: unknown, where: string): string | number | boolean | string[] {
  switch (spec.kind) {
    case 'string': {
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s)) {
        throw new InvalidArgumentError(`${where}: ${JSON.stringify(s)} is not one of ${spec.choices.join(', ')}`);
      }
      return s;
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
      if (!Number.isInteger(n)) throw new InvalidArgumentError(`${where}: ${JSON.stringify(raw)} is not a whole number`);
      if (spec.min !== undefined && n < spec.min) throw new InvalidArgumentError(`${where}: must be at least ${spec.min}`);
      return n;
    }
    case 'duration': {
      const ms = typeof raw === 'number' ? Math.round(raw * (spec.unit === 'ms' ? 1 : 1000)) : parseDuration(String(raw), spec.unit ?? 's');
      if (spec.min !== undefined && ms < spec.min) {
        const unit = spec.unit ?? 's';
        throw new InvalidArgumentError(`${where}: must be at least ${unit === 's' ? `${spec.min / 1000} s` : `${spec.min} ms`}`);
      }
      return ms;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
      throw new InvalidArgumentError(`${where}: ${JSON.stringify(raw)} is not true or false`);
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
      return items.map((s) => s.trim()).filter((s) => s.length > 0);
    }
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InvalidArgumentError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidArgumentError(`config file ${path} must hold a mapping of option: value`);
  return doc as Record<string, unknown>;
}

/** Parses flags, environment and config file against `specs`. Throws InvalidArgumentError with a fix. */
export function parseOptions<S extends OptionSpecs>(specs: S, ctx: ParseContext): ParseResult<S> {
  const env = ctx.env ?? process.env;
  const byFlag = new Map<string, string>();
  const byShort = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    byFlag.set(flagName(key, spec), key);
    if (spec.short) byShort.set(spec.short, key);
  }

  const fromFlags: Record<string, unknown> = {};
  const positionals: string[] = [];
  let rest: string[] = [];
  let help = false;
  let configPath: string | undefined;

  const argv = [...ctx.argv];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { rest = argv.slice(i + 1); break; }
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (!arg.startsWith('-') || arg === '-') { positionals.push(arg); continue; }

    let name: string;
    let inline: string | undefined;
    let key: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      if (name === 'config') {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new InvalidArgumentError('--config needs a file path');
        configPath = v;
        continue;
      }
      key = byFlag.get(name);
      if (key === undefined && name.startsWith('no-') && specs[byFlag.get(name.slice(3)) ?? '']?.kind === 'boolean') {
        fromFlags[byFlag.get(name.slice(3)) as string] = false;
        continue;
      }
    } else {
      name = arg.slice(1, 2);
      inline = arg.length > 2 ? arg.slice(2).replace(/^=/, '') : undefined;
      key = byShort.get(name);
    }
    if (key === undefined) {
      throw new InvalidArgumentError(`unknown flag ${arg.split('=')[0]} (run with --help to list the flags)`);
    }
    const spec = specs[key];
    let raw: string | boolean;
    if (spec.kind === 'boolean') {
      raw = inline ?? true;
    } else {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new InvalidArgumentError(`${arg} needs a value${spec.placeholder ? ` (${spec.placeholder})` : ''}`);
      raw = next;
    }
    const value = convert(spec, raw, `--${flagName(key, spec)}`);
    if (spec.kind === 'list') {
      fromFlags[key] = [...((fromFlags[key] as string[] | undefined) ?? []), ...(value as string[])];
    } else {
      fromFlags[key] = value;
    }
  }

  if (ctx.allowPositionals === false && positionals.length > 0) {
    throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(positionals[0])} (run with --help)`);
  }

  configPath ??= (ctx.configEnv ? env[ctx.configEnv] : undefined) || undefined;
  let fileValues: Record<string, unknown> = {};
  if (configPath) {
    fileValues = readConfigFile(configPath);
  } else if (ctx.defaultConfigPath && existsSync(ctx.defaultConfigPath)) {
    configPath = ctx.defaultConfigPath;
    fileValues = readConfigFile(configPath);
  }
  const fileKeys = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    fileKeys.set(key, key);
    fileKeys.set(flagName(key, spec), key);
  }
  const fromFile: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fileValues)) {
    const key = fileKeys.get(k);
    if (key === undefined) {
      throw new InvalidArgumentError(`config file ${configPath}: unknown option ${JSON.stringify(k)} (known: ${Object.keys(specs).join(', ')})`);
    }
    fromFile[key] = v;
  }

  const values: Record<string, unknown> = {};
  const sources: Record<string, ParseResult<S>['sources'][keyof S]> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const envName = spec.env;
    if (key in fromFlags) {
      values[key] = fromFlags[key];
      sources[key] = 'flag';
    } else if (envName && env[envName] !== undefined && env[envName] !== '') {
      values[key] = convert(spec, env[envName], `environment variable ${envName}`);
      sources[key] = 'env';
    } else if (key in fromFile) {
      values[key] = convert(spec, fromFile[key], `config file ${configPath}: ${key}`);
      sources[key] = 'config';
    } else if (spec.default !== undefined) {
      values[key] = convert(spec, spec.default, `default of ${key}`);
      sources[key] = 'default';
    } else {
      values[key] = spec.kind === 'boolean' ? false : spec.kind === 'list' ? [] : undefined;
      sources[key] = 'unset';
    }
    if (spec.required && !help && (values[key] === undefined || (Array.isArray(values[key]) && (values[key] as string[]).length === 0))) {
      throw new InvalidArgumentError(
        `missing --${flagName(key, spec)}${spec.env ? ` (or ${spec.env})` : ''}${spec.placeholder ? `: ${spec.placeholder}` : ''}`,
      );
    }
  }

  return { values: values as OptionValues<S>, positionals, rest, help, sources: sources as ParseResult<S>['sources'], configPath };
}

/** `--help` text: usage, then one line per option with its env var and default. */
export function formatHelp(usage: string, specs: OptionSpecs, extra?: string): string {
  const rows: [string, string][] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${flagName(key, spec)}${spec.kind === 'boolean' ? '' : ` ${spec.placeholder ?? spec.kind.toUpperCase()}`}`;
    const notes: string[] = [];
    if (spec.env) notes.push(`env ${spec.env}`);
    if (spec.default !== undefined && spec.default !== '') notes.push(`default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`);
    if (spec.choices) notes.push(`one of ${spec.choices.join('|')}`);
    rows.push([flag, `${spec.description}${notes.length ? ` [${notes.join('; ')}]` : ''}`]);
  }
  rows.push(['    --config FILE', 'YAML file of option: value (keys as the option names above)']);
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  const lines = rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`);
  return `${usage}\n\nOptions:\n${lines.join('\n')}\n${extra ? `\n${extra}\n` : ''}`;
}
