/**
 * Reading groups/<name> and configs/<bundle>/<version> for jobs. ConfigService
 * (coordinator/config/) owns writing them and the group record's shape and decoder
 * (group-store.ts), used here too; a bundle is the validated Bundle JSON of
 * shared/bundle/types.ts.
 */
import type { Etcd3 } from 'etcd3';
import { InvalidArgumentError, NotFoundError, type Keyspace } from '../../shared';
import type { Bundle } from '../../shared/bundle';
import { readKeys, readRecord } from '../etcd-txn';
import { readSnapshot } from '../snapshot';
import { decodeGroup, type GroupRecord } from '../config/group-store';
import { parseBundleInfo } from '../config/source-pins';
import { decodeGlobals } from '../../shared/globals';
import { decodeManagerConfig, effectiveConfig, type ManagerConfig } from '../../shared/manager-config';
import { parseFacts } from '../node-view';
import type { GroupRules } from './group-rules';

export function groupRules(g: GroupRecord): GroupRules {
  return { ...(g.minSize !== undefined ? { minSize: g.minSize } : {}), ...(g.dependsOn ? { dependsOn: g.dependsOn } : {}) };
}

/** "name@version" → parts; InvalidArgumentError naming the field otherwise. */
export function parseBundleRef(text: string, what = 'bundle'): { name: string; version: string } {
  const m = /^([^@\s]+)@([^@\s]+)$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`${what} ${JSON.stringify(text)}: use NAME@VERSION, e.g. base@3`);
  return { name: m[1], version: m[2] };
}

export class ConfigReader {
  constructor(private readonly client: Etcd3, private readonly keyspace: Keyspace) {}

  group(name: string): Promise<{ record: GroupRecord; modRevision: string } | undefined> {
    return readRecord(this.client, this.keyspace.group(name), decodeGroup);
  }

  async requireGroup(name: string): Promise<GroupRecord> {
    const g = await this.group(name);
    if (!g) throw new NotFoundError(`group ${name} not found (define it with \`clusterctl group set ${name} --bundle NAME@VERSION\`)`);
    return g.record;
  }

  async allGroups(): Promise<GroupRecord[]> {
    // An unreadable group has no rules to enforce.
    return [...(await readSnapshot(this.client, this.keyspace, ['groups'])).groups.values()].map((g) => g.record);
  }

  /** The cluster-wide variables (`clusterctl global set`); none when never set. */
  async globals(): Promise<Record<string, string>> {
    const key = this.keyspace.globals();
    const { kvs } = await readKeys(this.client, [key]);
    return kvs[0] ? decodeGlobals(key, kvs[0].value.toString()).variables : {};
  }

  /** The manager's settings (`clusterctl config set`), defaults filled in; read at every decision, so a change needs no restart. */
  async managerConfig(): Promise<ManagerConfig> {
    const key = this.keyspace.managerConfig();
    const { kvs } = await readKeys(this.client, [key]);
    return effectiveConfig(kvs[0] ? decodeManagerConfig(key, kvs[0].value.toString()) : undefined);
  }

  /** The node's facts as its agent reported them (what its templates render with); undefined when none. */
  async facts(nodeId: string): Promise<unknown> {
    const { kvs } = await readKeys(this.client, [this.keyspace.facts(nodeId)]);
    return parseFacts(kvs[0]?.value.toString());
  }

  /** The stored bundle; NotFoundError naming it (and how to push one) when absent. */
  async bundle(name: string, version: string): Promise<Bundle> {
    const key = this.keyspace.config(name, version);
    const { kvs } = await readKeys(this.client, [key]);
    const kv = kvs[0];
    if (!kv) throw new NotFoundError(`bundle ${name}@${version} not found (push it with \`clusterctl bundle push FILE\`)`);
    let doc: unknown;
    try {
      doc = JSON.parse(kv.value.toString());
    } catch (err) {
      throw new InvalidArgumentError(`stored bundle ${name}@${version} is not JSON: ${(err as Error).message}`);
    }
    // Stored bundles were validated (and compiled) by ConfigService before they were written.
    const b = doc as Partial<Bundle> | null;
    if (!b || typeof b !== 'object' || typeof b.name !== 'string' || !Array.isArray(b.units)) {
      throw new InvalidArgumentError(`stored bundle ${name}@${version} is not a bundle record (name, version, units)`);
    }
    return { variables: {}, verify: [], ...b, name: b.name, version: String(b.version ?? version), units: b.units };
  }

  /**
   * Distributed file content (files/<name>): the stored value is exactly the uploaded bytes
   * (coordinator/files/file-store.ts), so an uploaded JSON file is content, not a wrapper.
   * With `edition` (hex sha256), that immutable edition; without, the current one.
   */
  async file(name: string, edition?: string): Promise<string | undefined> {
    const { kvs } = await readKeys(this.client, [edition ? this.keyspace.fileEdition(name, edition) : this.keyspace.file(name)]);
    return kvs[0]?.value.toString();
  }

  /** File name → sha256 of the edition a bundle version pinned at push (coordinator/config/source-pins.ts). */
  async sourcePins(name: string, version: string): Promise<Record<string, string>> {
    const { kvs } = await readKeys(this.client, [this.keyspace.configInfo(name, version)]);
    return parseBundleInfo(kvs[0]?.value.toString()).sources ?? {};
  }
}
