/**
 * The cluster-wide variables (`globals` in etcd, `clusterctl global get|set`): one record of
 * template variables merged over every bundle's defaults and under every group's variables
 * (bundle defaults < globals < group variables < a job's extra vars), as Contiv merged
 * config → globals → request. Its check and decoder live here, used by every reader.
 */
import { InvalidArgumentError } from './errors';
import { VARIABLE } from './group';
import { parseRecordObject } from './records';

export interface GlobalsRecord {
  variables: Record<string, string>;
  updatedAt?: string;
}

/** Bounds before anything is stored: the record is read by every job start and node listing. */
export const MAX_GLOBALS = 256;
export const MAX_GLOBAL_VALUE_BYTES = 16 * 1024;

/**
 * `-e '<json>'` of `global set`: a JSON object of names to strings, numbers or booleans; null
 * removes a variable. Every problem listed at once; the text is never echoed.
 */
export function parseGlobalsPatch(text: string): { set: Record<string, string>; remove: string[] } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`global variables are not JSON: ${(err as Error).message} (use e.g. {"ntp_server":"10.0.0.1"}; null removes one)`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError('global variables must be a JSON object, e.g. {"ntp_server":"10.0.0.1"} (null removes one)');
  const problems: string[] = [];
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!VARIABLE.test(k)) problems.push(`${JSON.stringify(k.slice(0, 64))}: variable names are letters, digits and _ (not starting with a digit), as in {{ vars.NAME }}`);
    else if (x === null) remove.push(k);
    else if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') problems.push(`${k}: must be a string, number or boolean (null removes it)`);
    else if (Buffer.byteLength(String(x)) > MAX_GLOBAL_VALUE_BYTES) problems.push(`${k}: value longer than ${MAX_GLOBAL_VALUE_BYTES} bytes`);
    else set[k] = String(x);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`invalid global variables (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`);
  return { set, remove };
}

export function decodeGlobals(key: string, text: string): GlobalsRecord {
  const o = parseRecordObject(key, text);
  const variables: Record<string, string> = {};
  if (o.variables && typeof o.variables === 'object' && !Array.isArray(o.variables)) {
    for (const [k, v] of Object.entries(o.variables as Record<string, unknown>)) variables[k] = String(v);
  }
  return { variables, ...(typeof o.updatedAt === 'string' ? { updatedAt: o.updatedAt } : {}) };
}
