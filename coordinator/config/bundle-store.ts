/**
 * configs/<bundle>/<version>: immutable bundle versions. A push is validated with the SAME code
 * the agent uses (shared/bundle: every problem listed by path, nothing stored on error), then
 * written create-only in one transaction with its event. Every template reference is checked
 * too: a misspelt root (`var.x`) or a fact no node reports is refused at push, not at upgrade. Versions never change once stored:
 * pushing an existing version with other content is refused (bump the version), pushing the
 * same content again is an idempotent OK, so `clusterctl bundle push` can be re-run safely.
 *
 * The value at configs/ is exactly the compiled Bundle JSON (what jobs render and send); when
 * it was pushed, its digest and the file editions it pins sit beside it at config-info/ (shared/keyspace.ts).
 */
import type { Etcd3 } from 'etcd3';
import {
  AlreadyExistsError, CAS_LOST, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, isValidSegment, retryOnConflict,
  type Clock, type Keyspace,
} from '../../shared';
import { canonicalJson, parseBundle, templateReferences, type Bundle } from '../../shared/bundle';
import { readKeys, readPrefixes, type Compare } from '../etcd-txn';
import { decodeGroup } from '../../shared/group';
import { firstViolation, violationMessage } from '../../shared/path-allowlist';
import { readSnapshot, recordsOf } from '../snapshot';
import { bundleDigest, missingSourcesError, parseBundleInfo, pinSources, sourceNames, type BundleInfoValue } from './source-pins';
import type { EventLog } from '../event-log';
import { DEFAULT_SETTINGS } from '../options';
import type { SecretKeyring } from '../secrets/secret-keyring';
import { comparableBundle, sealBundle } from '../secrets/secret-content';

export interface StoredBundle {
  name: string;
  version: string;
  /**
   * bundleDigest(): sha256 over the canonical JSON of the compiled bundle (each secret content by
   * its fingerprint: ../secrets/secret-content.ts) and its pinned file editions.
   */
  digest: string;
  createdAt: string;
  bundle: Bundle;
  /** File name → hex sha256 of the edition this version delivers (see ./source-pins.ts). */
  sources: Record<string, string>;
}

export interface PushResult {
  stored: StoredBundle;
  /** False when the identical version was already stored (nothing written). */
  created: boolean;
}

export interface BundleStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  /** Attempts of a push that lost its create-only write to a concurrent push (default: settings.configCasAttempts). */
  maxAttempts?: number;
  /** Seals the content of `secret: true` file units; without it such a bundle is refused. */
  keyring?: SecretKeyring;
}

/**
 * Orders versions the way an operator reads them: numeric runs compare as numbers
 * ("10" > "9", "1.10.0" > "1.9.2"), other runs as text.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/([0-9]+)/).filter((s) => s !== '');
  const pb = b.split(/([0-9]+)/).filter((s) => s !== '');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^[0-9]+$/.test(x);
    const ny = /^[0-9]+$/.test(y);
    if (nx && ny) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

export class BundleStore {
  private readonly client: Etcd3;
  private readonly keyspace: Keyspace;
  private readonly events: EventLog;
  private readonly clock: Clock;
  private readonly maxAttempts: number;
  private readonly keyring?: SecretKeyring;

  constructor(options: BundleStoreOptions) {
    this.client = options.client;
    this.keyspace = options.keyspace;
    this.events = options.events;
    this.clock = options.clock;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_SETTINGS.configCasAttempts;
    this.keyring = options.keyring;
  }

  /**
   * A version of a bundle that a group with allowed paths uses must write inside them (the group
   * is about to be moved to it): refused naming the group, the unit and the path.
   */
  private async checkGroupPaths(bundle: Bundle): Promise<void> {
    const { kvs } = await readPrefixes(this.client, [{ prefix: this.keyspace.groupsPrefix() }]);
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      if (this.keyspace.parseGroup(key) === undefined) continue;
      let group;
      try {
        group = decodeGroup(key, kv.value.toString());
      } catch {
        continue; // an unreadable group is named where it is read (group show)
      }
      const allowed = group.allowedPaths ?? [];
      if (group.bundle !== bundle.name || allowed.length === 0) continue;
      const outside = firstViolation(bundle, allowed);
      if (outside) throw new InvalidArgumentError(`bundle ${bundle.name}@${bundle.version} refused, nothing stored: group ${group.name} uses ${bundle.name} and ${violationMessage(outside, allowed)}`);
    }
  }

  /** Validates and stores `text` (YAML or JSON, or a bundle parseBundle made of it). See the file comment for the rules. */
  async push(text: string | Bundle, actor = 'operator'): Promise<PushResult> {
    if (typeof text === 'string' && text.trim() === '') throw new InvalidArgumentError('PushBundle needs the bundle text (YAML or JSON); it was empty');
    // A Bundle is one parseBundle already made (the service parses once to authorize).
    const bundle = typeof text === 'string' ? parseBundle(text, 'bundle') : text; // BundleValidationError lists every problem by path
    const { name, version } = bundle;
    for (const [what, s] of [['name', name], ['version', version]] as const) {
      if (!isValidSegment(s)) {
        throw new InvalidArgumentError(`bundle ${what} ${JSON.stringify(s)} cannot be stored: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
      }
    }
    // A misspelt root or a fact no node reports would break every node at its next job: refuse now.
    const refs = templateReferences(bundle);
    if (refs.problems.length > 0) {
      throw new InvalidArgumentError(
        `bundle ${name}@${version} refused, nothing stored (${refs.problems.length} template problem${refs.problems.length === 1 ? '' : 's'}): ${refs.problems.join('; ')}`,
      );
    }
    await this.checkGroupPaths(bundle);
    // Units with `source:` name distributed files (files/<name>): each must be stored now, and
    // the version pins the edition current at this push (./source-pins.ts).
    const sources = sourceNames(bundle);
    const key = this.keyspace.config(name, version);
    const infoKey = this.keyspace.configInfo(name, version);
    // Secret contents are sealed once; what is compared and digested is their fingerprint.
    const { sealed, comparable } = await sealBundle(bundle, this.keyring);
    const json = canonicalJson(comparable);
    return retryOnConflict(this.maxAttempts, async (): Promise<PushResult | typeof CAS_LOST> => {
      const pinned = await pinSources(this.client, this.keyspace, sources);
      // Two keys, whatever the number of stored versions (get() would list them all to explain
      // a miss: 137 → 314 ms per push over 200 versions, issue 12).
      const existing = await this.find(name, version);
      const digest = bundleDigest(comparable, pinned.pins);
      if (existing) {
        if (canonicalJson(comparableBundle(existing.bundle)) !== json) {
          throw new AlreadyExistsError(
            `bundle ${name}@${version} exists with different content; bump version (stored digest ${existing.digest}, pushed ${digest})`,
          );
        }
        const moved = Object.entries(existing.sources).filter(([f, sha]) => pinned.pins[f] !== undefined && pinned.pins[f] !== sha);
        if (moved.length > 0) {
          throw new AlreadyExistsError(
            `bundle ${name}@${version} exists and delivers ${moved.map(([f, sha]) => `${f} edition ${sha.slice(0, 12)} (now ${pinned.pins[f].slice(0, 12)})`).join(', ')}; ` +
              'a version never changes what it deploys: push a new version to deliver the new upload',
          );
        }
        return { stored: existing, created: false };
      }
      if (pinned.missing.length > 0) throw missingSourcesError(`${name}@${version}`, pinned.missing);
      const createdAt = this.clock.iso();
      const absent: Compare = { key, target: 'Create', op: '==', value: '0', reason: 'create-only' };
      const info: BundleInfoValue = { digest, createdAt, ...(sources.length ? { sources: pinned.pins } : {}) };
      const outcome = await this.events.commit({
        compares: [absent, ...pinned.compares],
        ops: [
          { kind: 'put', key, value: canonicalJson(sealed) },
          { kind: 'put', key: infoKey, value: JSON.stringify(info) },
          ...pinned.ops,
        ],
        event: {
          type: 'bundle.pushed',
          message: `bundle ${name}@${version} stored (${bundle.units.length} unit(s), ${bundle.verify.length} probe(s), ${digest})` +
            (sources.length ? `; pins ${sources.map((f) => `${f} edition ${pinned.pins[f].slice(0, 12)}`).join(', ')}` : ''),
          actor,
        },
      });
      if (outcome.succeeded) return { stored: { name, version, digest, createdAt, bundle: sealed, sources: info.sources ?? {} }, created: true };
      // Someone pushed the same version, or uploaded a source, meanwhile: read again.
      return CAS_LOST;
    }, () => new ConflictError(`bundle ${name}@${version} kept changing while being pushed; retry`));
  }

  /** One version (`version` empty = the newest); NotFoundError naming what exists. */
  async get(name: string, version = ''): Promise<StoredBundle> {
    if (!isValidSegment(name)) throw new InvalidArgumentError(`invalid bundle name ${JSON.stringify(name)}`);
    if (version === '') {
      const all = await this.list(name);
      const newest = all[all.length - 1];
      if (!newest) throw new NotFoundError(`bundle ${name} not found (push it with \`clusterctl bundle push FILE\`)`);
      return newest;
    }
    const found = await this.find(name, version);
    if (!found) {
      const versions = (await this.list(name)).map((b) => b.version);
      throw new NotFoundError(
        `bundle ${name}@${version} not found` +
          (versions.length ? ` (stored versions: ${versions.join(', ')})` : ' (push it with `clusterctl bundle push FILE`)'),
      );
    }
    return found;
  }

  /** One version by its two keys, or undefined when it is not stored. */
  private async find(name: string, version: string): Promise<StoredBundle | undefined> {
    const { kvs } = await readKeys(this.client, [this.keyspace.config(name, version), this.keyspace.configInfo(name, version)]);
    return kvs[0] ? this.decode(name, version, kvs[0].value.toString(), kvs[1]?.value.toString()) : undefined;
  }

  async exists(name: string, version: string): Promise<boolean> {
    const { kvs } = await readKeys(this.client, [this.keyspace.config(name, version)]);
    return kvs[0] !== undefined;
  }

  /** Every stored version (of `name`, or of every bundle), by name then version order. */
  async list(name = ''): Promise<StoredBundle[]> {
    const prefix = name ? this.keyspace.configVersionsPrefix(name) : this.keyspace.configsPrefix();
    const infoPrefix = name ? `${this.keyspace.configInfoPrefix()}${name}/` : this.keyspace.configInfoPrefix();
    const { kvs } = await readPrefixes(this.client, [{ prefix }, { prefix: infoPrefix }]);
    const infos = new Map(kvs[1].map((kv) => [kv.key.toString().slice(this.keyspace.configInfoPrefix().length), kv.value.toString()]));
    const out: StoredBundle[] = [];
    for (const kv of kvs[0]) {
      const parsed = this.keyspace.parseConfig(kv.key.toString());
      if (!parsed) continue;
      try {
        out.push(this.decode(parsed.bundle, parsed.version, kv.value.toString(), infos.get(`${parsed.bundle}/${parsed.version}`)));
      } catch {
        // An unreadable record is reported by get(); a listing shows what can be read.
      }
    }
    return out.sort((a, b) => (a.name === b.name ? compareVersions(a.version, b.version) : a.name < b.name ? -1 : 1));
  }

  /**
   * Deletes one version. Refused while a group runs it or a node's desired or applied record
   * names it, saying which (move the groups, upgrade or decommission the nodes first). The
   * compare on config-info/ meets the one a concurrent `group set` of this version makes
   * (group-store.ts). Returns the deleted version and the files it named (their unused editions
   * can go now: FileStore.prune).
   */
  async delete(name: string, version: string, actor = 'operator'): Promise<StoredBundle> {
    if (!version) throw new InvalidArgumentError(`bundle delete needs NAME@VERSION (a version is deleted, not a bundle): e.g. ${name}@1`);
    const stored = await this.get(name, version);
    const ref = `${name}@${version}`;
    const ks = this.keyspace;
    const snap = await readSnapshot(this.client, ks, ['groups', 'nodes']);
    const groups = recordsOf(snap.groups).filter((g) => g.bundle === name && g.version === version).map((g) => g.name);
    const nodes: string[] = [];
    for (const n of recordsOf(snap.nodes)) {
      const why = [n.appliedConfig === ref ? 'applied' : '', n.desiredConfig === ref ? 'desired' : ''].filter(Boolean).join(', ');
      if (why) nodes.push(`${n.id} (${why})`);
    }
    if (groups.length > 0 || nodes.length > 0) {
      throw new FailedPreconditionError(
        `bundle ${ref} is in use: ` +
          [groups.length ? `group${groups.length === 1 ? '' : 's'} ${groups.join(', ')}` : '', nodes.length ? `node${nodes.length === 1 ? '' : 's'} ${nodes.join(', ')}` : '']
            .filter(Boolean).join('; ') +
          '; move groups to another version (clusterctl group set GROUP --bundle NAME@VERSION) and upgrade or decommission the nodes first',
      );
    }
    const { kvs: infoKvs } = await readKeys(this.client, [ks.config(name, version), ks.configInfo(name, version)]);
    const [cfg, info] = infoKvs;
    if (!cfg) throw new NotFoundError(`bundle ${ref} not found`);
    const outcome = await this.events.commit({
      compares: [
        { key: ks.config(name, version), target: 'Mod', op: '==', value: cfg.mod_revision, reason: 'cas' },
        info ? { key: ks.configInfo(name, version), target: 'Mod', op: '==', value: info.mod_revision, reason: 'in-use' } : { key: ks.configInfo(name, version), target: 'Create', op: '==', value: '0', reason: 'in-use' },
      ],
      ops: [{ kind: 'delete', key: ks.config(name, version) }, { kind: 'delete', key: ks.configInfo(name, version) }],
      event: { type: 'bundle.deleted', message: `bundle ${ref} deleted (${stored.digest})`, actor },
    });
    if (!outcome.succeeded) throw new ConflictError(`bundle ${ref} was put to use while being deleted; check \`clusterctl group list\` and retry`);
    return stored;
  }

  private decode(name: string, version: string, text: string, infoText: string | undefined): StoredBundle {
    let bundle: Bundle;
    try {
      bundle = JSON.parse(text) as Bundle;
    } catch (err) {
      throw new InvalidArgumentError(`stored bundle ${name}@${version} is not JSON: ${(err as Error).message}`);
    }
    const info = parseBundleInfo(infoText);
    const sources = info.sources ?? {};
    return { name, version, digest: info.digest ?? bundleDigest(comparableBundle(bundle), sources), createdAt: info.createdAt ?? '', bundle, sources };
  }
}
