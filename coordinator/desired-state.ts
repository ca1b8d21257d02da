/**
 * Desired vs applied for the operator's view of a node (docs/operations.md, "Desired, applied
 * and drift"): the bundle version the node's group runs now, and whether what the node applied
 * (shared/render-inputs.ts, recorded by the job runner) is out of date against it. The context
 * (groups, globals, the bundles they name) is read once per listing; the status per node is pure.
 */
import type { Etcd3 } from 'etcd3';
import type { Facts, Keyspace, NodeRecord } from '../shared';
import type { Bundle } from '../shared/bundle';
import type { GroupRecord } from '../shared/group';
import { mergeVariables, outOfDateReasons, renderInputs } from '../shared/render-inputs';
import { ConfigReader } from './jobs/config-records';
import { readSnapshot } from './snapshot';

export interface DesiredContext {
  groups: ReadonlyMap<string, GroupRecord>;
  globals: Readonly<Record<string, string>>;
  /** "name@version" → the stored bundle, for every version a group runs (absent: not readable). */
  bundles: ReadonlyMap<string, Bundle>;
}

export interface ConfigStatus {
  /** The group's bundle version now ("" when the node has no readable group). */
  desiredConfig: string;
  outOfDate: boolean;
  reasons: string[];
}

/** Pure: a node's desired bundle version and whether its applied inputs are out of date against it. */
export function configStatus(record: NodeRecord, facts: Partial<Facts> | undefined, ctx: DesiredContext): ConfigStatus {
  const group = record.group ? ctx.groups.get(record.group) : undefined;
  if (!group) return { desiredConfig: record.desiredConfig ?? '', outOfDate: false, reasons: [] };
  const ref = `${group.bundle}@${group.version}`;
  const bundle = ctx.bundles.get(ref);
  // Nothing applied yet (Discovered, or a commission that failed before applying): not out of date, not in service.
  if (!record.appliedConfig || !bundle) return { desiredConfig: ref, outOfDate: false, reasons: [] };
  const desired = renderInputs(ref, bundle, mergeVariables(bundle.variables ?? {}, ctx.globals, group.variables), facts);
  const reasons = outOfDateReasons(record.appliedConfig, record.appliedInputs, desired, bundle);
  return { desiredConfig: ref, outOfDate: reasons.length > 0, reasons };
}

/** Reads the groups, the globals and every bundle version a group runs. */
export async function readDesiredContext(client: Etcd3, keyspace: Keyspace): Promise<DesiredContext> {
  const config = new ConfigReader(client, keyspace);
  const [snap, globals] = await Promise.all([readSnapshot(client, keyspace, ['groups']), config.globals().catch(() => ({}))]);
  const groups = new Map([...snap.groups].map(([name, g]) => [name, g.record]));
  const bundles = new Map<string, Bundle>();
  for (const g of groups.values()) {
    const ref = `${g.bundle}@${g.version}`;
    if (bundles.has(ref)) continue;
    try {
      bundles.set(ref, await config.bundle(g.bundle, g.version));
    } catch {
      // A group naming a deleted or unreadable version: its nodes show no out-of-date status.
    }
  }
  return { groups, globals, bundles };
}
