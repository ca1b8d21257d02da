/**
 * `globals`: the cluster-wide template variables (shared/globals.ts), merged between every
 * bundle's defaults and every group's variables. A set is checked as a group set is: names, and
 * that every group's bundle still has a value for every variable its templates use (removing a
 * global a bundle needs is refused, naming the group). One transaction with its event, compared
 * on the record's revision so two concurrent sets cannot lose one.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, InvalidArgumentError, type Clock, type Keyspace } from '../../shared';
import { missingVariables, templateReferences } from '../../shared/bundle';
import { decodeGlobals, MAX_GLOBALS, parseGlobalsPatch, type GlobalsRecord } from '../../shared/globals';
import { readKeys, type Compare } from '../etcd-txn';
import type { EventLog } from '../event-log';
import type { BundleStore } from './bundle-store';
import type { GroupStore } from './group-store';

export interface VersionedGlobals {
  record: GlobalsRecord;
  /** "0" when never set. */
  modRevision: string;
}

export interface GlobalsStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  bundles: BundleStore;
  groups: GroupStore;
}

export class GlobalsStore {
  constructor(private readonly o: GlobalsStoreOptions) {}

  async get(): Promise<VersionedGlobals> {
    const key = this.o.keyspace.globals();
    const kv = (await readKeys(this.o.client, [key])).kvs[0];
    return kv ? { record: decodeGlobals(key, kv.value.toString()), modRevision: kv.mod_revision } : { record: { variables: {} }, modRevision: '0' };
  }

  /** Applies `patchJson` (a JSON object; null removes a variable) over the stored globals. */
  async set(patchJson: string, actor = 'operator'): Promise<VersionedGlobals> {
    const patch = parseGlobalsPatch(patchJson);
    const current = await this.get();
    const variables = { ...current.record.variables, ...patch.set };
    for (const k of patch.remove) delete variables[k];
    if (Object.keys(variables).length > MAX_GLOBALS) throw new InvalidArgumentError(`at most ${MAX_GLOBALS} global variables (this set would make ${Object.keys(variables).length})`);
    // Every group's bundle must still render: a removed global may have been what supplied one.
    const problems: string[] = [];
    for (const { record: g } of await this.o.groups.list()) {
      const stored = await this.o.bundles.get(g.bundle, g.version).catch(() => undefined);
      if (!stored) continue;
      const unset = missingVariables(templateReferences(stored.bundle), stored.bundle.variables, variables, g.variables);
      if (unset.length > 0) problems.push(`group ${g.name} (bundle ${g.bundle}@${g.version}) would have no value for ${unset.join(', ')}`);
    }
    if (problems.length > 0) throw new InvalidArgumentError(`global variables not changed: ${problems.join('; ')}; set them in the group first (clusterctl group set GROUP --var NAME=VALUE)`);
    const key = this.o.keyspace.globals();
    const record: GlobalsRecord = { variables, updatedAt: this.o.clock.iso() };
    const cas: Compare = current.modRevision === '0'
      ? { key, target: 'Create', op: '==', value: '0', reason: 'cas' }
      : { key, target: 'Mod', op: '==', value: current.modRevision, reason: 'cas' };
    const names = [...Object.keys(patch.set).map((k) => `${k} set`), ...patch.remove.map((k) => `${k} removed`)];
    const outcome = await this.o.events.commit({
      compares: [cas],
      ops: [{ kind: 'put', key, value: JSON.stringify(record) }],
      // Names only: a global may hold something an operator would not want in the audit trail.
      event: { type: 'globals.set', message: `global variables changed: ${names.join(', ') || 'nothing'}`, actor },
    });
    if (!outcome.succeeded) throw new ConflictError('the global variables changed while being set; get them again and retry');
    return { record, modRevision: outcome.revision };
  }
}
