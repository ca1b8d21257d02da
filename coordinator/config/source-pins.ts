/**
 * A bundle version pins the edition of every distributed file it names (`source:` in a file
 * unit): the edition current when it was pushed. The pins sit in config-info/<bundle>/<version>
 * beside the digest, and the digest covers them, so one bundle version delivers the same bytes
 * forever and says so; a later `files upload --overwrite` reaches only bundles pushed after it.
 *
 * Pinning is done in the push's own transaction: it compares file-info/<name>'s mod revision
 * with what was read (the edition pinned is still the current one) and rewrites that record
 * unchanged, which moves its mod revision, so an upload that read before this push fails its
 * compare and re-reads who uses which edition before pruning any (coordinator/files/file-store.ts).
 */
import type { Etcd3 } from 'etcd3';
import { NotFoundError, type Keyspace } from '../../shared';
import { digestOf, type Bundle } from '../../shared/bundle';
import { readKeys, type Compare, type TxnOp } from '../etcd-txn';

/** The value at config-info/<bundle>/<version>. */
export interface BundleInfoValue {
  digest: string;
  createdAt: string;
  /** File name → hex sha256 of the pinned edition; absent for bundles without sources. */
  sources?: Record<string, string>;
}

export function parseBundleInfo(text: string | undefined): Partial<BundleInfoValue> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as Partial<BundleInfoValue> | null;
    if (!v || typeof v !== 'object') return {};
    const sources: Record<string, string> = {};
    if (v.sources && typeof v.sources === 'object') {
      for (const [k, s] of Object.entries(v.sources)) if (typeof s === 'string') sources[k] = s;
    }
    return { ...v, ...(v.sources ? { sources } : {}) };
  } catch {
    return {};
  }
}

/**
 * Distinct `source` names of a bundle's file units that name distributed files, in unit order. A
 * `secret:NAME` source names a named secret instead (coordinator/secrets/secret-store.ts): it is
 * not a file, has no editions to pin, and is read when a command is built.
 */
export function sourceNames(bundle: Pick<Bundle, 'units'>): string[] {
  return [...new Set(bundle.units.flatMap((u) => (u.kind === 'file' && u.source !== undefined && !u.source.startsWith('secret:') ? [u.source] : [])))];
}

/** The digest of a bundle version: over the bundle and, when it names files, their pinned editions. */
export function bundleDigest(bundle: Bundle, sources: Readonly<Record<string, string>>): string {
  return Object.keys(sources).length === 0 ? digestOf(bundle) : digestOf({ bundle, sources });
}

export interface SourcePins {
  pins: Record<string, string>;
  /** Names that are not stored. */
  missing: string[];
  compares: Compare[];
  ops: TxnOp[];
}

function shaOf(infoText: string | undefined): string | undefined {
  try {
    const v = infoText ? (JSON.parse(infoText) as { sha256?: unknown }) : undefined;
    return typeof v?.sha256 === 'string' ? v.sha256 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads the current edition of each source and returns the pins with the compares and ops that
 * make them hold in the push's transaction. A file stored before editions existed has no
 * edition record: its current bytes are written as one here, so the pin always resolves.
 */
export async function pinSources(client: Etcd3, ks: Keyspace, names: readonly string[]): Promise<SourcePins> {
  const out: SourcePins = { pins: {}, missing: [], compares: [], ops: [] };
  if (names.length === 0) return out;
  const keys = names.flatMap((n) => [ks.file(n), ks.fileInfo(n)]);
  const { kvs } = await readKeys(client, keys);
  const needEdition: { name: string; sha: string; content: Buffer; info: string }[] = [];
  names.forEach((name, i) => {
    const file = kvs[2 * i];
    const info = kvs[2 * i + 1];
    const sha = shaOf(info?.value.toString());
    if (!file || !info || !sha) {
      out.missing.push(name);
      return;
    }
    out.pins[name] = sha;
    out.compares.push({ key: ks.fileInfo(name), target: 'Mod', op: '==', value: info.mod_revision, reason: 'source-changed' });
    out.ops.push({ kind: 'put', key: ks.fileInfo(name), value: info.value.toString() });
    needEdition.push({ name, sha, content: Buffer.from(file.value), info: info.value.toString() });
  });
  if (needEdition.length > 0) {
    const editions = await readKeys(client, needEdition.map((e) => ks.fileEdition(e.name, e.sha)));
    needEdition.forEach((e, i) => {
      if (editions.kvs[i]) return;
      out.ops.push({ kind: 'put', key: ks.fileEdition(e.name, e.sha), value: e.content }, { kind: 'put', key: ks.fileEditionInfo(e.name, e.sha), value: e.info });
    });
  }
  return out;
}

/** NotFoundError for sources that are not stored, with how to store them. */
export function missingSourcesError(ref: string, missing: readonly string[]): NotFoundError {
  return new NotFoundError(
    `bundle ${ref}: source file${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} not found; ` +
      'upload with `clusterctl files upload PATH --name NAME` first',
  );
}
