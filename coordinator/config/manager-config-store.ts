/**
 * `manager-config`: the manager's own settings (shared/manager-config.ts). A set is checked
 * completely (every problem at once) and written in one transaction with its event, compared
 * on the record's revision. The readers (job start, drift watcher, auto-commission) read it at
 * every decision, so nothing restarts.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, type Clock, type Keyspace } from '../../shared';
import { changeConfig, decodeManagerConfig, type ManagerConfigRecord } from '../../shared/manager-config';
import { readKeys, type Compare } from '../etcd-txn';
import type { EventLog } from '../event-log';

export interface VersionedManagerConfig {
  record: ManagerConfigRecord;
  /** "0" when nothing was ever set. */
  modRevision: string;
}

export class ManagerConfigStore {
  constructor(private readonly o: { client: Etcd3; keyspace: Keyspace; events: EventLog; clock: Clock }) {}

  async get(): Promise<VersionedManagerConfig> {
    const key = this.o.keyspace.managerConfig();
    const kv = (await readKeys(this.o.client, [key])).kvs[0];
    return kv ? { record: decodeManagerConfig(key, kv.value.toString()), modRevision: kv.mod_revision } : { record: { values: {} }, modRevision: '0' };
  }

  async set(set: Readonly<Record<string, string>>, reset: readonly string[], actor = 'operator'): Promise<VersionedManagerConfig> {
    const current = await this.get();
    const record: ManagerConfigRecord = { ...changeConfig(current.record, set, reset), updatedAt: this.o.clock.iso() };
    const key = this.o.keyspace.managerConfig();
    const cas: Compare = current.modRevision === '0'
      ? { key, target: 'Create', op: '==', value: '0', reason: 'cas' }
      : { key, target: 'Mod', op: '==', value: current.modRevision, reason: 'cas' };
    const changes = [...Object.keys(set).map((k) => `${k}=${record.values[k as keyof ManagerConfigRecord['values']] ?? ''}`), ...reset.map((k) => `${k} reset to its default`)];
    const outcome = await this.o.events.commit({
      compares: [cas],
      ops: [{ kind: 'put', key, value: JSON.stringify(record) }],
      event: { type: 'config.set', message: `manager config: ${changes.join(', ')}`, actor },
    });
    if (!outcome.succeeded) throw new ConflictError('the manager config changed while being set; get it again and retry');
    return { record, modRevision: outcome.revision };
  }
}
