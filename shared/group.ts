/**
 * A group record (groups/<name> in etcd): which bundle version a group runs, its variables,
 * rules (minimum size, dependencies), scheduled verification, repair policy and
 * auto-commission selectors. The schema, its check (`checkGroup`: every problem at once) and
 * its decoder live here because the coordinator stores groups and clusterctl's plan/apply
 * reads them from a cluster file: one definition for both.
 */
import { validate as validateCron } from 'node-cron';
import { InvalidArgumentError } from './errors';
import { isValidSegment } from './keyspace';
import { parseSelector } from './selector';
import { HEALTH_LIMITS } from './health-gate';
import { normaliseAllowedPaths } from './path-allowlist';

export const REPAIR_POLICIES = ['report', 'repair'] as const;
export type RepairPolicy = (typeof REPAIR_POLICIES)[number];

export interface AutoCommissionRule {
  /** Label selector over node labels plus facts summary fields as `facts.<field>`. */
  selector: string;
}

export interface GroupRecord {
  name: string;
  bundle: string;
  version: string;
  variables: Record<string, string>;
  minSize?: number;
  dependsOn?: string[];
  /** node-cron expression ('' or absent = none). */
  verifySchedule?: string;
  repairPolicy?: RepairPolicy;
  autoCommission?: AutoCommissionRule[];
  /** The health gate's soak of a commission or upgrade of the group's nodes that names none (ms; absent: none). */
  soakMs?: number;
  /** Where the group's bundles may write (shared/path-allowlist.ts); absent = anywhere the path rules allow. */
  allowedPaths?: string[];
  updatedAt?: string;
}

/** What an operator sends (the proto Group, camelCased); normalised by `checkGroup`. */
export interface GroupInput {
  name: string;
  bundle: string;
  version: string;
  variables?: Record<string, string>;
  minSize?: number;
  dependsOn?: string[];
  verifySchedule?: string;
  repairPolicy?: string;
  autoCommission?: { selector: string }[];
  soakMs?: number;
  allowedPaths?: string[];
}

/** A template variable's name, as in {{ vars.NAME }} (group variables, globals, extra vars). */
export const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Pure: the normalised record, or InvalidArgumentError listing every problem. Existence checks
 * (bundle version, other groups) need etcd and are done by GroupStore.set.
 */
export function checkGroup(input: GroupInput): Omit<GroupRecord, 'updatedAt'> {
  const problems: string[] = [];
  const name = (input.name ?? '').trim();
  if (!name) problems.push('name: is required');
  else if (!isValidSegment(name)) problems.push(`name: ${JSON.stringify(name)} is not valid; use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
  const bundle = (input.bundle ?? '').trim();
  const version = (input.version ?? '').trim();
  if (!bundle) problems.push('bundle: is required (the bundle name, e.g. base)');
  else if (!isValidSegment(bundle)) problems.push(`bundle: ${JSON.stringify(bundle)} is not a valid bundle name`);
  if (!version) problems.push('version: is required (a pushed version of the bundle; list them with `clusterctl bundle list`)');
  else if (!isValidSegment(version)) problems.push(`version: ${JSON.stringify(version)} is not a valid bundle version`);
  const variables: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.variables ?? {})) {
    if (!VARIABLE.test(k)) problems.push(`variables.${k}: variable names are letters, digits and _ (not starting with a digit), as in {{ vars.NAME }}`);
    else variables[k] = String(v);
  }
  const minSize = input.minSize ?? 0;
  if (!Number.isInteger(minSize) || minSize < 0) problems.push(`minSize: must be a whole number ≥ 0 (got ${String(input.minSize)})`);
  const dependsOn = [...new Set((input.dependsOn ?? []).map((d) => d.trim()).filter((d) => d !== ''))];
  for (const d of dependsOn) {
    if (!isValidSegment(d)) problems.push(`dependsOn: ${JSON.stringify(d)} is not a valid group name`);
    else if (d === name) problems.push(`dependsOn: group ${name} cannot depend on itself`);
  }
  const verifySchedule = (input.verifySchedule ?? '').trim();
  if (verifySchedule && !validateCron(verifySchedule)) {
    problems.push(
      `verifySchedule: ${JSON.stringify(verifySchedule)} is not a valid cron expression ` +
        '(5 or 6 fields: [second] minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 daily)',
    );
  }
  const repairPolicy = (input.repairPolicy ?? '').trim() || 'report';
  if (!(REPAIR_POLICIES as readonly string[]).includes(repairPolicy)) {
    problems.push(`repairPolicy: must be "report" or "repair" (got ${JSON.stringify(repairPolicy)})`);
  }
  const autoCommission: AutoCommissionRule[] = [];
  (input.autoCommission ?? []).forEach((rule, i) => {
    const selector = (rule.selector ?? '').trim();
    if (!selector) {
      problems.push(`autoCommission[${i}].selector: is required (an empty selector would match every node)`);
      return;
    }
    try {
      parseSelector(selector);
      autoCommission.push({ selector });
    } catch (err) {
      problems.push(`autoCommission[${i}].selector: ${(err as Error).message}`);
    }
  });
  const soakMs = input.soakMs ?? 0;
  if (!Number.isInteger(soakMs) || soakMs < 0 || soakMs > HEALTH_LIMITS.maxSoakMs) problems.push(`soak: must be between 0 and ${HEALTH_LIMITS.maxSoakMs / 60_000} min`);
  let allowedPaths: string[] = [];
  try {
    allowedPaths = normaliseAllowedPaths(input.allowedPaths ?? []);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (problems.length > 0) {
    throw new InvalidArgumentError(`invalid group${name ? ` ${name}` : ''} (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`);
  }
  return {
    name, bundle, version, variables,
    ...(minSize > 0 ? { minSize } : {}),
    ...(dependsOn.length ? { dependsOn } : {}),
    ...(verifySchedule ? { verifySchedule } : {}),
    repairPolicy: repairPolicy as RepairPolicy,
    ...(autoCommission.length ? { autoCommission } : {}),
    ...(soakMs > 0 ? { soakMs } : {}),
    ...(allowedPaths.length ? { allowedPaths } : {}),
  };
}

export function decodeGroup(key: string, text: string): GroupRecord {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`etcd value at ${key} is not JSON: ${(err as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || typeof o.name !== 'string') throw new InvalidArgumentError(`etcd value at ${key} is not a group record`);
  const variables: Record<string, string> = {};
  if (o.variables && typeof o.variables === 'object') {
    for (const [k, v] of Object.entries(o.variables as Record<string, unknown>)) variables[k] = String(v);
  }
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const rules = Array.isArray(o.autoCommission)
    ? (o.autoCommission as unknown[]).filter((r): r is AutoCommissionRule => !!r && typeof (r as AutoCommissionRule).selector === 'string')
    : [];
  return {
    name: o.name,
    bundle: typeof o.bundle === 'string' ? o.bundle : '',
    version: typeof o.version === 'string' ? o.version : typeof o.version === 'number' ? String(o.version) : '',
    variables,
    ...(typeof o.minSize === 'number' ? { minSize: o.minSize } : {}),
    ...(Array.isArray(o.dependsOn) ? { dependsOn: strings(o.dependsOn) } : {}),
    ...(typeof o.verifySchedule === 'string' && o.verifySchedule ? { verifySchedule: o.verifySchedule } : {}),
    repairPolicy: o.repairPolicy === 'repair' ? 'repair' : 'report',
    ...(rules.length ? { autoCommission: rules } : {}),
    ...(typeof o.soakMs === 'number' && o.soakMs > 0 ? { soakMs: o.soakMs } : {}),
    ...(Array.isArray(o.allowedPaths) && o.allowedPaths.length ? { allowedPaths: strings(o.allowedPaths) } : {}),
    ...(typeof o.updatedAt === 'string' ? { updatedAt: o.updatedAt } : {}),
  };
}
