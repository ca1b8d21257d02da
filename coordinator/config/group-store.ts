/**
 * groups/<name>: which bundle version a group runs, its variables, rules (minimum size,
 * dependencies), scheduled verification, repair policy and auto-commission selectors.
 *
 * The record's schema, check and decoder are shared/group.ts (clusterctl's plan/apply reads
 * the same records from a cluster file); this file stores and lists them.
 *
 * A set is checked completely before anything is written (every problem listed at once) and
 * written in one transaction with its event: the compare holds the expected revision (optimistic
 * concurrency) and that the named bundle version still exists.
 */
import type { Etcd3 } from 'etcd3';
import {
  ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, isValidSegment, type Clock, type Keyspace, type NodeRecord,
} from '../../shared';
import { readKeys, readPrefixes, type Compare, type TxnOp } from '../etcd-txn';
import { readSnapshot } from '../snapshot';
import type { EventLog } from '../event-log';
import type { BundleStore } from './bundle-store';
import { missingVariables, templateReferences } from '../../shared/bundle';
import { decodeGlobals } from '../../shared/globals';

export {
  REPAIR_POLICIES, checkGroup, decodeGroup, type RepairPolicy, type AutoCommissionRule, type GroupRecord, type GroupInput,
} from '../../shared/group';
import { checkGroup, decodeGroup, type GroupInput, type GroupRecord } from '../../shared/group';
import { firstViolation, violationMessage } from '../../shared/path-allowlist';

/** States a node may be in when its group is deleted with --force (see GroupStore.delete). */
export const GROUP_DELETE_FORCE_STATES: ReadonlySet<string> = new Set(['Decommissioned', 'Failed', 'Cancelled', 'New', 'Discovered']);

export interface VersionedGroup {
  record: GroupRecord;
  modRevision: string;
}

export interface GroupStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  bundles: BundleStore;
}

export class GroupStore {
  private readonly o: GroupStoreOptions;

  constructor(options: GroupStoreOptions) {
    this.o = options;
  }

  async get(name: string): Promise<VersionedGroup | undefined> {
    if (!isValidSegment(name)) throw new InvalidArgumentError(`invalid group name ${JSON.stringify(name)}`);
    const key = this.o.keyspace.group(name);
    const { kvs } = await readKeys(this.o.client, [key]);
    const kv = kvs[0];
    return kv ? { record: decodeGroup(key, kv.value.toString()), modRevision: kv.mod_revision } : undefined;
  }

  async require(name: string): Promise<VersionedGroup> {
    const g = await this.get(name);
    if (!g) throw new NotFoundError(`group ${name} not found (define it with \`clusterctl group set ${name} --bundle NAME@VERSION\`)`);
    return g;
  }

  /** Every readable group, by name. */
  async list(): Promise<VersionedGroup[]> {
    const { kvs } = await readPrefixes(this.o.client, [{ prefix: this.o.keyspace.groupsPrefix() }]);
    const out: VersionedGroup[] = [];
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      if (this.o.keyspace.parseGroup(key) === undefined) continue;
      try {
        out.push({ record: decodeGroup(key, kv.value.toString()), modRevision: kv.mod_revision });
      } catch {
        // An unreadable group is skipped in listings; get() names it.
      }
    }
    return out.sort((a, b) => (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0));
  }

  /**
   * Creates or replaces a group. `expectedRevision` ('' = no check) must be the mod revision the
   * caller read: a mismatch is ConflictError "group changed since you read it" and nothing changes.
   */
  async set(input: GroupInput, expectedRevision = '', actor = 'operator'): Promise<VersionedGroup> {
    const checked = checkGroup(input);
    const expected = expectedRevision.trim();
    if (expected && !/^\d+$/.test(expected)) throw new InvalidArgumentError(`expected_revision ${JSON.stringify(expectedRevision)} must be a number (the group's revision from GetGroup)`);
    const { name, bundle, version } = checked;
    if (!(await this.o.bundles.exists(bundle, version))) {
      const versions = (await this.o.bundles.list(bundle)).map((b) => b.version);
      throw new NotFoundError(
        `group ${name}: bundle ${bundle}@${version} not found` +
          (versions.length ? ` (stored versions of ${bundle}: ${versions.join(', ')})` : ` (push it first with \`clusterctl bundle push FILE\`)`),
      );
    }
    const key = this.o.keyspace.group(name);
    const current = await this.get(name);
    if (expected && (current?.modRevision ?? '0') !== expected) {
      throw new ConflictError(`group ${name} changed since you read it (revision ${expected}, now ${current?.modRevision ?? 'deleted'}); get it again and retry`);
    }
    // The group must supply every variable its bundle uses and does not default.
    const stored = await this.o.bundles.get(bundle, version);
    const outside = firstViolation(stored.bundle, checked.allowedPaths ?? []);
    if (outside) throw new InvalidArgumentError(`group ${name}: bundle ${bundle}@${version} refused: ${violationMessage(outside, checked.allowedPaths ?? [])}`);
    const globalsKey = this.o.keyspace.globals();
    const globalsKv = (await readKeys(this.o.client, [globalsKey])).kvs[0];
    const globals = globalsKv ? decodeGlobals(globalsKey, globalsKv.value.toString()).variables : {};
    const unset = missingVariables(templateReferences(stored.bundle), stored.bundle.variables, globals, checked.variables);
    if (unset.length > 0) {
      throw new InvalidArgumentError(
        `group ${name}: bundle ${bundle}@${version} uses variable${unset.length === 1 ? '' : 's'} that neither the bundle defines nor the group sets: ` +
          `${unset.join(', ')}; set ${unset.length === 1 ? 'it' : 'them'} with --var NAME=VALUE`,
      );
    }
    // A dependency on a group that does not exist could never be met: refuse it, naming it.
    const known = new Set((await this.list()).map((g) => g.record.name));
    const missing = (checked.dependsOn ?? []).filter((d) => !known.has(d));
    if (missing.length > 0) {
      throw new NotFoundError(
        `group ${name}: depends on group${missing.length === 1 ? '' : 's'} ${missing.join(', ')}, which ${missing.length === 1 ? 'does' : 'do'} not exist ` +
          '(define it first, or list groups with `clusterctl group list`)',
      );
    }
    const record: GroupRecord = { ...checked, updatedAt: this.o.clock.iso() };
    const cas: Compare = expected
      ? { key, target: 'Mod', op: '==', value: expected, reason: 'expected-revision' }
      : current
        ? { key, target: 'Mod', op: '==', value: current.modRevision, reason: 'cas' }
        : { key, target: 'Create', op: '==', value: '0', reason: 'cas' };
    const bundleExists: Compare = { key: this.o.keyspace.config(bundle, version), target: 'Create', op: '>', value: '0', reason: 'bundle-exists' };
    // Rewriting the version's info record unchanged moves its mod revision: a concurrent
    // `bundle delete` of that version (which compares it) then fails and reads the users again.
    const infoKey = this.o.keyspace.configInfo(bundle, version);
    const info = (await readKeys(this.o.client, [infoKey])).kvs[0];
    const touch: TxnOp[] = info ? [{ kind: 'put', key: infoKey, value: info.value.toString() }] : [];
    const what = current ? 'updated' : 'created';
    const outcome = await this.o.events.commit({
      compares: [cas, bundleExists, ...(info ? [{ key: infoKey, target: 'Mod', op: '==', value: info.mod_revision, reason: 'bundle-info' } satisfies Compare] : [])],
      ops: [{ kind: 'put', key, value: JSON.stringify(record) }, ...touch],
      event: {
        type: 'group.set',
        message: `group ${name} ${what}: ${bundle}@${version}, repair policy ${record.repairPolicy ?? 'report'}` +
          (record.verifySchedule ? `, verify "${record.verifySchedule}"` : '') +
          (record.autoCommission?.length ? `, auto-commission ${record.autoCommission.map((r) => `"${r.selector}"`).join(' | ')}` : '') +
          (record.dependsOn?.length ? `, depends on ${record.dependsOn.join(', ')}` : '') +
          (record.allowedPaths?.length ? `, allowed paths ${record.allowedPaths.join(', ')}` : '') +
          (current?.record.dependsOn?.length && !record.dependsOn?.length ? `, dependency on ${current.record.dependsOn.join(', ')} cleared` : ''),
        actor,
      },
    });
    if (outcome.succeeded) return { record, modRevision: outcome.revision };
    if (outcome.failed.some((c) => c.reason === 'bundle-exists')) throw new NotFoundError(`group ${name}: bundle ${bundle}@${version} not found`);
    throw new ConflictError(`group ${name} changed since you read it (concurrent update); get it again and retry`);
  }

  /**
   * Deletes a group. Refused while another group depends on it (naming them). Refused while a
   * node record names it, listing the nodes, unless `force`; with `force` it is still refused
   * while any of them is Commissioned, in a lifecycle transition or running a job (decommission
   * those first): the nodes left are Decommissioned, Failed, New or Discovered and keep the
   * group's name in their record as history; commissioning one again names a group.
   */
  async delete(name: string, options: { force?: boolean } = {}, actor = 'operator'): Promise<{ group: VersionedGroup; nodes: string[] }> {
    const current = await this.require(name);
    const dependents = (await this.list()).filter((g) => (g.record.dependsOn ?? []).includes(name)).map((g) => g.record.name);
    if (dependents.length > 0) {
      throw new FailedPreconditionError(
        `group ${name} is a dependency of group${dependents.length === 1 ? '' : 's'} ${dependents.join(', ')}; ` +
          `clear it first (clusterctl group set ${dependents[0]} --depends-on "")`,
      );
    }
    const { nodes } = await readSnapshot(this.o.client, this.o.keyspace, ['nodes']);
    const members = [...nodes.values()].filter((v) => v.record.group === name);
    const describe = (n: NodeRecord): string => `${n.id} (${n.state}${n.currentJob ? `, job ${n.currentJob}` : ''})`;
    if (members.length > 0 && !options.force) {
      throw new FailedPreconditionError(
        `group ${name} has ${members.length} node${members.length === 1 ? '' : 's'}: ${members.map((m) => describe(m.record)).join(', ')}; ` +
          'decommission them first, or --force when none is Commissioned or busy',
      );
    }
    const busy = members.filter((m) => !GROUP_DELETE_FORCE_STATES.has(m.record.state) || m.record.currentJob);
    if (busy.length > 0) {
      throw new FailedPreconditionError(
        `group ${name} cannot be deleted even with --force: ${busy.map((m) => describe(m.record)).join(', ')} ` +
          `${busy.length === 1 ? 'is' : 'are'} not Decommissioned, Failed, New or Discovered, or running a job; decommission ${busy.length === 1 ? 'it' : 'them'} first`,
      );
    }
    const key = this.o.keyspace.group(name);
    const outcome = await this.o.events.commit({
      compares: [
        { key, target: 'Mod', op: '==', value: current.modRevision, reason: 'cas' },
        ...members.map((m): Compare => ({ key: this.o.keyspace.node(m.record.id), target: 'Mod', op: '==', value: m.modRevision, reason: 'node' })),
      ],
      ops: [{ kind: 'delete', key }],
      event: {
        type: 'group.deleted',
        message: `group ${name} deleted (was ${current.record.bundle}@${current.record.version})` +
          (members.length ? `; forced with node${members.length === 1 ? '' : 's'} ${members.map((m) => describe(m.record)).join(', ')}` : ''),
        actor,
      },
    });
    if (!outcome.succeeded) throw new ConflictError(`group ${name} or its nodes changed while being deleted; check it and retry`);
    return { group: current, nodes: members.map((m) => m.record.id) };
  }
}
