/**
 * The manager's own settings (`manager-config` in etcd, `clusterctl config get|set`), as
 * Contiv's clusterctl kept them: one table of settings, each with its default, its check and
 * what it does. Stored are only the settings an operator set; a reader fills in the defaults.
 * They are read where they act, at every decision (a job start, a drift finding, an
 * auto-commission pass), so a change takes effect without a restart.
 */
import { InvalidArgumentError } from './errors';
import { parseDuration } from './options';
import { parseRecordObject } from './records';

export interface ManagerSettingSpec {
  name: string;
  /** The default; for a retention setting, what the answering coordinator's option says (`fromOption`). */
  default: string;
  /** A retention setting: unset, the coordinator's own option of that name (`--job-retention` ...) applies. */
  fromOption?: keyof RetentionSettings;
  /** One line for `config get` and --help. */
  description: string;
  /** The normalised value, or an error message (the value is not echoed back). */
  check(value: string): { value: string } | { problem: string };
}

const BATCH = /^(?:[1-9]\d{0,5}|(?:[1-9]\d?|100)%)$/;

/** How much the coordinators keep in etcd: their options (coordinator/options.ts) and these settings. */
export interface RetentionSettings {
  eventRetention: number;
  jobRetention: number;
  jobRetentionAgeMs: number;
  historyRetention: number;
  historyRetentionAgeMs: number;
}

const MAX_COUNT = 1_000_000;
const MIN_AGE_MS = 60_000;
const MAX_AGE_MS = 10 * 365 * 24 * 3_600_000;

function checkCount(v: string): { value: string } | { problem: string } {
  const t = v.trim();
  return /^[1-9]\d{0,6}$/.test(t) && Number(t) <= MAX_COUNT ? { value: t } : { problem: `must be a whole number from 1 to ${MAX_COUNT}` };
}

function checkAge(v: string): { value: string } | { problem: string } {
  const t = v.trim();
  let ms: number;
  try {
    // A bare number is hours, the unit retention ages are thought in.
    ms = parseDuration(/^\d+$/.test(t) ? `${t}h` : t);
  } catch {
    return { problem: 'must be a duration such as 90m, 72h or 720h' };
  }
  return ms >= MIN_AGE_MS && ms <= MAX_AGE_MS ? { value: formatAge(ms) } : { problem: 'must be from 1m to 87600h (10 years)' };
}

/** An age in the largest whole unit (`720h`, `90m`), as `config get` shows it. */
function formatAge(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

export const MANAGER_SETTINGS: readonly ManagerSettingSpec[] = [
  {
    name: 'defaultBatch',
    default: 'all',
    description: 'how a commission, upgrade, decommission, verify or repair that names no --batch runs: all (at once), N nodes or P% of its nodes per batch',
    check: (v) => (v.trim() === 'all' || BATCH.test(v.trim()) ? { value: v.trim() } : { problem: 'must be all, a whole number of nodes (1-999999) or a percentage (1%-100%)' }),
  },
  {
    name: 'repairPolicy',
    default: 'group',
    description: 'what drift found by the drift watcher leads to: group (each group\'s own policy), report (never repair automatically), repair (repair in every group)',
    check: (v) => (['group', 'report', 'repair'].includes(v.trim()) ? { value: v.trim() } : { problem: 'must be group, report or repair' }),
  },
  {
    name: 'autoCommission',
    default: 'enabled',
    description: 'whether the groups\' auto-commission rules start commission jobs: enabled, or paused (rules kept, nothing started)',
    check: (v) => (['enabled', 'paused'].includes(v.trim()) ? { value: v.trim() } : { problem: 'must be enabled or paused' }),
  },
  {
    name: 'jobRetention', default: '', fromOption: 'jobRetention', check: checkCount,
    description: 'finished jobs kept in etcd with their node records and output (unset: the coordinator\'s --job-retention)',
  },
  {
    name: 'jobRetentionAge', default: '', fromOption: 'jobRetentionAgeMs', check: checkAge,
    description: 'finished jobs older than this are trimmed whatever their number (unset: --job-retention-age)',
  },
  {
    name: 'eventRetention', default: '', fromOption: 'eventRetention', check: checkCount,
    description: 'audit events kept in etcd (unset: the coordinator\'s --event-retention)',
  },
  {
    name: 'historyRetention', default: '', fromOption: 'historyRetention', check: checkCount,
    description: 'node history entries kept per node (unset: the coordinator\'s --history-retention)',
  },
  {
    name: 'historyRetentionAge', default: '', fromOption: 'historyRetentionAgeMs', check: checkAge,
    description: 'node history older than this is trimmed, but the entry in effect then (unset: --history-retention-age)',
  },
];

export type ManagerSettingName = 'defaultBatch' | 'repairPolicy' | 'autoCommission'
  | 'jobRetention' | 'jobRetentionAge' | 'eventRetention' | 'historyRetention' | 'historyRetentionAge';

export interface ManagerConfigRecord {
  /** Only the settings an operator set. */
  values: Partial<Record<ManagerSettingName, string>>;
  updatedAt?: string;
}

/** Every setting's effective value: the stored one, else its default. */
export type ManagerConfig = Record<ManagerSettingName, string>;

function spec(name: string): ManagerSettingSpec | undefined {
  return MANAGER_SETTINGS.find((s) => s.name === name);
}

/**
 * Every setting's effective value; a retention setting left unset takes the value of `options`
 * (the answering coordinator's own), or stays '' without them.
 */
export function effectiveConfig(record: ManagerConfigRecord | undefined, options?: RetentionSettings): ManagerConfig {
  const out: Record<string, string> = {};
  for (const s of MANAGER_SETTINGS) out[s.name] = record?.values[s.name as ManagerSettingName] ?? defaultOf(s, options);
  return out as ManagerConfig;
}

/** A setting's default as `config get` shows it: a retention setting's is the coordinator's option. */
export function defaultOf(s: ManagerSettingSpec, options?: RetentionSettings): string {
  if (!s.fromOption || !options) return s.default;
  const v = options[s.fromOption];
  return s.fromOption.endsWith('AgeMs') ? formatAge(v) : String(v);
}

/** The retention the leader's trims apply now: each setting an operator stored, else the coordinator's option. Pure. */
export function effectiveRetention(record: ManagerConfigRecord | undefined, options: RetentionSettings): RetentionSettings {
  const out: RetentionSettings = { ...options };
  for (const s of MANAGER_SETTINGS) {
    const v = s.fromOption ? record?.values[s.name as ManagerSettingName] : undefined;
    if (!s.fromOption || v === undefined) continue;
    // Stored values were normalised by checkAge (`72h`, `90m`).
    out[s.fromOption] = s.fromOption.endsWith('AgeMs') ? parseDuration(v) : Number(v);
  }
  return out;
}

/**
 * `set` (name → value) and `reset` (names back to their default) applied over `current`. Every
 * problem listed at once: an unknown name names the settings there are.
 */
export function changeConfig(current: ManagerConfigRecord, set: Readonly<Record<string, string>>, reset: readonly string[]): ManagerConfigRecord {
  const problems: string[] = [];
  const values: Record<string, string> = { ...current.values };
  const known = MANAGER_SETTINGS.map((s) => s.name).join(', ');
  for (const [name, value] of Object.entries(set)) {
    const s = spec(name);
    if (!s) { problems.push(`unknown setting ${JSON.stringify(name.slice(0, 64))} (settings: ${known})`); continue; }
    const r = s.check(value);
    if ('problem' in r) problems.push(`${name}: ${r.problem}`);
    else values[name] = r.value;
  }
  for (const name of reset) {
    if (!spec(name)) problems.push(`unknown setting ${JSON.stringify(name.slice(0, 64))} (settings: ${known})`);
    else delete values[name];
  }
  if (Object.keys(set).length === 0 && reset.length === 0) problems.push('nothing to change: give NAME=VALUE (or NAME= to reset it to its default)');
  if (problems.length > 0) throw new InvalidArgumentError(`invalid manager config (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`);
  return { values };
}

/** The stored record; unknown or invalid stored values are dropped (their default applies). */
export function decodeManagerConfig(key: string, text: string): ManagerConfigRecord {
  const o = parseRecordObject(key, text);
  const values: Record<string, string> = {};
  if (o.values && typeof o.values === 'object' && !Array.isArray(o.values)) {
    for (const [k, v] of Object.entries(o.values as Record<string, unknown>)) {
      const s = spec(k);
      if (!s || typeof v !== 'string') continue;
      const r = s.check(v);
      if ('value' in r) values[k] = r.value;
    }
  }
  return { values, ...(typeof o.updatedAt === 'string' ? { updatedAt: o.updatedAt } : {}) };
}

/** Whether drift in a group with `groupPolicy` is repaired automatically under the manager's repairPolicy. Pure. */
export function repairsAutomatically(config: Pick<ManagerConfig, 'repairPolicy'>, groupPolicy: string | undefined): boolean {
  if (config.repairPolicy === 'report') return false;
  return config.repairPolicy === 'repair' || groupPolicy === 'repair';
}
