/**
 * Reading groups/<name> and configs/<bundle>/<version> for jobs. ConfigService
 * (coordinator/config/) owns writing them and the group record's shape and decoder
 * (group-store.ts), used here too; a bundle is the validated Bundle JSON of
 * shared/bundle/types.ts.
 */
import type { Etcd3 } from 'etcd3';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type Facts, type Keyspace } from '../../shared';
import type { Bundle } from '../../shared/bundle';
import { readKeys, readKeysChunked, readRecord } from '../etcd-txn';
import { readSnapshot } from '../snapshot';
import { decodeGroup, type GroupRecord } from '../config/group-store';
import { parseBundleInfo } from '../config/source-pins';
import { decodeGlobals } from '../../shared/globals';
import { decodeManagerConfig, effectiveConfig, type ManagerConfig } from '../../shared/manager-config';
import { parseFacts } from '../node-view';
import type { GroupRules } from './group-rules';
import { isEnvelope } from '../../shared/secret-envelope';
import type { SecretKeyring } from '../secrets/secret-keyring';
import { revealSecret } from '../secrets/secret-store';

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
  /** `keyring`: the leader's, to open secrets when it builds a command; readers without one cannot. */
  constructor(private readonly client: Etcd3, private readonly keyspace: Keyspace, private readonly keyring?: SecretKeyring) {}

  private ring(): SecretKeyring {
    if (!this.keyring) throw new FailedPreconditionError('this reader holds no secrets keyring');
    return this.keyring;
  }

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

  /**
   * Several nodes' facts, one read per `maxOps` keys (settings.txnMaxOps: etcd's --max-txn-ops);
   * nodes without readable facts are missing from the map.
   */
  async factsOf(nodeIds: readonly string[], maxOps: number): Promise<Map<string, Partial<Facts>>> {
    const kvs = await readKeysChunked(this.client, nodeIds.map((id) => this.keyspace.facts(id)), maxOps);
    const out = new Map<string, Partial<Facts>>();
    kvs.forEach((kv, i) => {
      const facts = parseFacts(kv?.value.toString());
      if (facts !== undefined) out.set(nodeIds[i], facts);
    });
    return out;
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
  async file(name: string, edition?: string): Promise<{ content: string; secret: boolean } | undefined> {
    const ks = this.keyspace;
    const { kvs } = await readKeys(this.client, edition ? [ks.fileEdition(name, edition), ks.fileEditionInfo(name, edition)] : [ks.file(name), ks.fileInfo(name)]);
    const [kv, info] = kvs;
    if (!kv) return undefined;
    let secret = false;
    try {
      secret = (JSON.parse(info?.value.toString() ?? '{}') as { secret?: unknown }).secret === true;
    } catch {
      // An unreadable info record is a plain file's (a secret's info is written with its content).
    }
    return { content: secret ? (await this.ring().decrypt(kv.value.toString())).toString('utf8') : kv.value.toString(), secret };
  }

  /** A named secret's cleartext (`source: secret:NAME`); undefined when there is none. */
  async secret(name: string): Promise<string | undefined> {
    return (await revealSecret(this.client, this.keyspace, this.ring(), name))?.toString('utf8');
  }

  /** Opens an envelope (a bundle's secret content). */
  async open(envelope: string): Promise<string> {
    return (await this.ring().decrypt(envelope)).toString('utf8');
  }

  /** Seals a value (a job's secret extra vars). */
  encrypt(value: string): Promise<string> {
    return this.ring().encrypt(value);
  }

  /**
   * Variables as a command carries them: every envelope (a secret group variable, global or
   * extra var) opened, and the names of those that were secret.
   */
  async openVariables(variables: Readonly<Record<string, string>>): Promise<{ variables: Record<string, string>; secret: string[] }> {
    const out: Record<string, string> = {};
    const secret: string[] = [];
    for (const [k, v] of Object.entries(variables)) {
      if (isEnvelope(v)) {
        out[k] = (await this.ring().decrypt(v)).toString('utf8');
        secret.push(k);
      } else out[k] = v;
    }
    return { variables: out, secret };
  }

  /** File name → sha256 of the edition a bundle version pinned at push (coordinator/config/source-pins.ts). */
  async sourcePins(name: string, version: string): Promise<Record<string, string>> {
    const { kvs } = await readKeys(this.client, [this.keyspace.configInfo(name, version)]);
    return parseBundleInfo(kvs[0]?.value.toString()).sources ?? {};
  }
}
