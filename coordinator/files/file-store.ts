/**
 * files/<name>: distributed files, at most 1 MiB each (etcd refuses requests over 1.5 MiB by
 * default, `--max-request-bytes`; the rest is headroom for the key, the info record and the
 * event written in the same transaction). The value at files/<name> is exactly the current
 * edition's bytes; size, sha256, mode and upload time sit beside it at file-info/<name>
 * (shared/keyspace.ts), so a download is byte-identical and nothing is escaped or inflated.
 *
 * Every upload is an edition, kept immutable at file-editions/<name>/<sha256>. A bundle version
 * pins the edition current when it was pushed (coordinator/config/source-pins.ts), so an upload
 * --overwrite reaches only bundles pushed after it. An edition that is not current and that no
 * stored bundle pins is deleted by the next upload of that file or by a bundle delete; a file any
 * stored bundle uses cannot be deleted (the refusal names the bundles: delete them first).
 *
 * A secret file (upload --secret, docs/secrets.md) is stored as one envelope (AES-256-GCM under
 * the keyring, coordinator/secrets/secret-keyring.ts) at files/<name> and its edition; its info
 * records `secret: true`, size 0 (the cleartext's length is not shown) and the envelope's sha256
 * as the edition id. Its content is returned only to an admin asking to --reveal it, and to the
 * leader building a command (coordinator/jobs/bundle-resolution.ts).
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import {
  AlreadyExistsError, CAS_LOST, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, isValidSegment, retryOnConflict,
  type Clock, type Keyspace,
} from '../../shared';
import { readKeys, readPrefixes, type Compare, type TxnOp } from '../etcd-txn';
import { parseBundleInfo } from '../config/source-pins';
import type { EventLog } from '../event-log';
import type { SecretKeyring } from '../secrets/secret-keyring';
import { secretValueProblem } from '../secrets/secret-store';

/** The largest file accepted: 1 MiB. */
export const MAX_FILE_BYTES = 1024 * 1024;

/**
 * The largest secret file: keys, certificates and credentials are small, and the envelope's
 * base64 and the edition copy written in the same transaction must stay under etcd's limit.
 */
export const MAX_SECRET_FILE_BYTES = 256 * 1024;

/**
 * The gRPC message limit on both ends (coordinator server, clusterctl, etcd clients): lists of
 * a large fleet must fit (ListNodes of 10,000 nodes is ~4.3 MB; the coordinator reads 5,000
 * node records from etcd in one 8 MB response: bench/fanout.ts hit grpc's default 4 MiB at
 * both), and a file larger than MAX_FILE_BYTES still reaches the handler, whose refusal names
 * the file's size and the limit (instead of the transport's RESOURCE_EXHAUSTED).
 */
export { MAX_GRPC_MESSAGE_BYTES } from '../../shared/grpc-limits';

const MODE = /^0?[0-7]{3}$/;

export interface FileMeta {
  name: string;
  size: number;
  sha256: string;
  mode: string;
  createdAt: string;
  /** Stored encrypted (size is then 0 and sha256 names the envelope). */
  secret?: boolean;
}

export interface FileEdition {
  sha256: string;
  size: number;
  createdAt: string;
  /** The edition the next bundle push pins. */
  current: boolean;
  /** "bundle@version" of the stored bundles that deliver this edition. */
  usedBy: string[];
}

export interface StoredFile extends FileMeta {
  /** "bundle@version" of stored bundles whose file units name this file as `source` (any edition). */
  usedBy: string[];
  /** Every kept edition, the current one first, then newest first. */
  editions: FileEdition[];
  /** Mod revision of files/<name>. */
  revision: string;
}

export interface FileStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  /** Seals and opens secret files; without it a secret file is refused. */
  keyring?: SecretKeyring;
}

/** "1.4 MiB", "512.0 KiB", "12 bytes": sizes as an operator reads them. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) {
    const mib = n / (1024 * 1024);
    if (Number.isInteger(mib)) return `${mib} MiB`;
    // 1 MiB + 3 bytes must not print as "1.0 MiB" next to "the limit is 1 MiB".
    const text = mib.toFixed(1);
    return text !== '1.0' ? `${text} MiB` : `${mib.toFixed(6)} MiB (${n} bytes)`;
  }
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} byte${n === 1 ? '' : 's'}`;
}

/** Pure: the refusal for a file over the limit, or undefined. */
export function sizeProblem(name: string, size: number, limit = MAX_FILE_BYTES): string | undefined {
  if (size <= limit) return undefined;
  return `file ${name} is ${formatBytes(size)}; the limit is ${formatBytes(limit)} (etcd's request limit is 1.5 MiB)`;
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Every `source` named by the file units of a stored bundle (canonical JSON); [] when unreadable. */
export function bundleSources(bundleJson: string): string[] {
  try {
    const b = JSON.parse(bundleJson) as { units?: unknown };
    if (!Array.isArray(b.units)) return [];
    const out = new Set<string>();
    for (const u of b.units as { kind?: unknown; source?: unknown }[]) {
      if (u && u.kind === 'file' && typeof u.source === 'string') out.add(u.source);
    }
    return [...out];
  } catch {
    return [];
  }
}

function checkName(name: string): string {
  const n = name.trim();
  if (!n) throw new InvalidArgumentError('a file name is required (e.g. chrony.conf)');
  if (!isValidSegment(n)) {
    throw new InvalidArgumentError(`invalid file name ${JSON.stringify(name)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
  }
  return n;
}

function decodeMeta(name: string, text: string | undefined, content: Buffer | undefined): FileMeta {
  let o: Partial<FileMeta> = {};
  try {
    if (text) o = JSON.parse(text) as Partial<FileMeta>;
  } catch {
    // The info record is derived data: recompute what the content tells.
  }
  return {
    name,
    size: typeof o.size === 'number' ? o.size : content?.length ?? 0,
    sha256: typeof o.sha256 === 'string' ? o.sha256 : content ? sha256(content) : '',
    mode: typeof o.mode === 'string' ? o.mode : '0644',
    createdAt: typeof o.createdAt === 'string' ? o.createdAt : '',
    ...(o.secret === true ? { secret: true } : {}),
  };
}

/** Attempts of an upload or delete that lost its compare to a concurrent push or upload. */
const MAX_ATTEMPTS = 5;

/** The range end of a key prefix ending in "/" (the next key after every key under it). */
function prefixEnd(prefix: string): string {
  return `${prefix.slice(0, -1)}0`;
}

export class FileStore {
  constructor(private readonly o: FileStoreOptions) {}

  private ring(): SecretKeyring {
    if (!this.o.keyring) throw new FailedPreconditionError('this file store holds no secrets keyring: secret files are not available here');
    return this.o.keyring;
  }

  /**
   * Stores a file as its new current edition. Over 1 MiB: InvalidArgumentError and nothing
   * written. An existing name is refused unless `overwrite` (re-uploading identical content is
   * an idempotent OK). Bundles pushed earlier keep delivering the edition they pinned.
   */
  async upload(nameText: string, content: Buffer, options: { mode?: string; overwrite?: boolean; actor?: string; secret?: boolean } = {}): Promise<StoredFile> {
    const name = checkName(nameText);
    const tooBig = options.secret ? secretValueProblem(`secret file ${name}`, content.length, MAX_SECRET_FILE_BYTES) : sizeProblem(name, content.length);
    if (tooBig) throw new InvalidArgumentError(tooBig);
    const modeText = (options.mode ?? '').trim() || '0644';
    if (!MODE.test(modeText)) throw new InvalidArgumentError(`mode ${JSON.stringify(options.mode)}: use octal like 0644`);
    const mode = modeText.padStart(4, '0');
    const ks = this.o.keyspace;
    const key = ks.file(name);
    const infoKey = ks.fileInfo(name);
    // A secret's stored bytes are its envelope: the edition is named after them, so neither the
    // key nor the info record says anything about the cleartext.
    const stored = options.secret ? Buffer.from(await this.ring().encrypt(content)) : content;
    const digest = sha256(stored);
    return retryOnConflict(MAX_ATTEMPTS, async (): Promise<StoredFile | typeof CAS_LOST> => {
      const { kvs } = await readKeys(this.o.client, [key, infoKey, ks.fileEditionInfo(name, digest)]);
      const [existing, info, editionInfo] = kvs;
      if (existing && !options.overwrite) {
        const meta = decodeMeta(name, info?.value.toString(), existing.value);
        const same = meta.secret
          ? options.secret === true && (await this.ring().decrypt(existing.value.toString())).equals(content)
          : !options.secret && meta.sha256 === digest;
        if (same && meta.mode === mode) return this.require(name);
        throw new AlreadyExistsError(`file ${name} exists with other content (sha256 ${meta.sha256.slice(0, 12)}…); upload with --overwrite to replace it`);
      }
      const before = existing ? (await this.list(name))[0] : undefined;
      const meta: FileMeta = { name, size: options.secret ? 0 : content.length, sha256: digest, mode, createdAt: this.o.clock.iso(), ...(options.secret ? { secret: true } : {}) };
      const ops: TxnOp[] = [
        { kind: 'put', key, value: stored },
        { kind: 'put', key: infoKey, value: JSON.stringify(meta) },
      ];
      // An edition is immutable: the same content uploaded again keeps its first record.
      if (!editionInfo) {
        ops.push({ kind: 'put', key: ks.fileEdition(name, digest), value: stored }, { kind: 'put', key: ks.fileEditionInfo(name, digest), value: JSON.stringify(meta) });
      }
      const kept = (before?.editions ?? []).filter((e) => e.sha256 !== digest && e.usedBy.length > 0);
      const pruned = (before?.editions ?? []).filter((e) => e.sha256 !== digest && e.usedBy.length === 0);
      for (const e of pruned) ops.push({ kind: 'delete', key: ks.fileEdition(name, e.sha256) }, { kind: 'delete', key: ks.fileEditionInfo(name, e.sha256) });
      // A bundle push rewrites file-info/<name> when it pins an edition: comparing its mod
      // revision means no edition pruned here was pinned after the usage above was read.
      const guards: Compare[] = [
        existing ? { key, target: 'Mod', op: '==', value: existing.mod_revision, reason: 'cas' } : { key, target: 'Create', op: '==', value: '0', reason: 'cas' },
        info ? { key: infoKey, target: 'Mod', op: '==', value: info.mod_revision, reason: 'cas' } : { key: infoKey, target: 'Create', op: '==', value: '0', reason: 'cas' },
      ];
      const outcome = await this.o.events.commit({
        compares: guards,
        ops,
        event: {
          type: 'file.uploaded',
          // The content is never logged: distributed files may hold secrets.
          message: `${options.secret ? 'secret ' : ''}file ${name} ${existing ? 'replaced' : 'stored'} (${options.secret ? 'encrypted' : formatBytes(content.length)}, edition sha256 ${digest})` +
            kept.map((e) => `; edition ${e.sha256.slice(0, 12)} kept for ${e.usedBy.join(', ')}`).join('') +
            (pruned.length ? `; unused edition${pruned.length > 1 ? 's' : ''} ${pruned.map((e) => e.sha256.slice(0, 12)).join(', ')} deleted` : ''),
          actor: options.actor ?? 'operator',
        },
      });
      if (!outcome.succeeded) return CAS_LOST;
      return this.require(name);
    }, () => new ConflictError(`file ${name} kept changing while being uploaded; retry`));
  }

  /** One file's info with its users; NotFoundError with a hint when absent. */
  async require(nameText: string): Promise<StoredFile> {
    const name = checkName(nameText);
    const all = await this.list(name);
    const f = all[0];
    if (!f) throw new NotFoundError(`file ${name} not found (list files with \`clusterctl files\`)`);
    return f;
  }

  /** Every stored file (or only `only`), by name, with its editions and the bundles that use each. */
  async list(only?: string): Promise<StoredFile[]> {
    const ks = this.o.keyspace;
    const { kvs } = await readPrefixes(this.o.client, [
      { prefix: only ? ks.file(only) : ks.filesPrefix(), keysOnly: false },
      { prefix: only ? ks.fileInfo(only) : ks.fileInfoPrefix() },
      { prefix: ks.configsPrefix() },
      { prefix: ks.configInfoPrefix() },
      { prefix: ks.fileEditionInfoPrefix(only) },
    ]);
    const infos = new Map<string, string>();
    for (const kv of kvs[1]) {
      const n = ks.parseFileInfo(kv.key.toString());
      if (n !== undefined) infos.set(n, kv.value.toString());
    }
    const current = new Map<string, FileMeta>();
    const revisions = new Map<string, string>();
    for (const kv of kvs[0]) {
      const name = ks.parseFile(kv.key.toString());
      // A prefix read of files/ab also returns files/abc: keep the exact name only.
      if (name === undefined || (only !== undefined && name !== only)) continue;
      current.set(name, decodeMeta(name, infos.get(name), kv.value));
      revisions.set(name, kv.mod_revision);
    }
    const pins = new Map<string, Record<string, string>>();
    for (const kv of kvs[3]) {
      const parsed = ks.parseConfigInfo(kv.key.toString());
      if (parsed) pins.set(`${parsed.bundle}@${parsed.version}`, parseBundleInfo(kv.value.toString()).sources ?? {});
    }
    // file → edition sha256 → bundle versions delivering it. A version pushed before editions
    // existed pinned nothing and delivers the current edition.
    const users = new Map<string, Map<string, string[]>>();
    for (const kv of kvs[2]) {
      const parsed = ks.parseConfig(kv.key.toString());
      if (!parsed) continue;
      const ref = `${parsed.bundle}@${parsed.version}`;
      for (const s of bundleSources(kv.value.toString())) {
        const sha = pins.get(ref)?.[s] ?? current.get(s)?.sha256 ?? '';
        const byEdition = users.get(s) ?? new Map<string, string[]>();
        byEdition.set(sha, [...(byEdition.get(sha) ?? []), ref]);
        users.set(s, byEdition);
      }
    }
    const editions = new Map<string, FileEdition[]>();
    for (const kv of kvs[4]) {
      const parsed = ks.parseFileEdition(kv.key.toString());
      if (!parsed || !current.has(parsed.name)) continue;
      const meta = decodeMeta(parsed.name, kv.value.toString(), undefined);
      const list = editions.get(parsed.name) ?? [];
      list.push({
        sha256: parsed.sha256, size: meta.size, createdAt: meta.createdAt, current: current.get(parsed.name)?.sha256 === parsed.sha256,
        usedBy: users.get(parsed.name)?.get(parsed.sha256) ?? [],
      });
      editions.set(parsed.name, list);
    }
    const out: StoredFile[] = [];
    for (const [name, meta] of current) {
      const own = editions.get(name) ?? [];
      // A file stored before editions existed has its current edition at files/<name> only.
      if (!own.some((e) => e.current)) own.push({ sha256: meta.sha256, size: meta.size, createdAt: meta.createdAt, current: true, usedBy: users.get(name)?.get(meta.sha256) ?? [] });
      own.sort((a, b) => (a.current !== b.current ? (a.current ? -1 : 1) : a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
      const usedBy = [...new Set(own.flatMap((e) => e.usedBy))].sort();
      out.push({ ...meta, usedBy, editions: own, revision: revisions.get(name) ?? '' });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The current content, decrypted when the file is secret: the caller (file-service.ts) has
   * checked that a secret may be revealed to its client.
   */
  async download(nameText: string): Promise<{ file: StoredFile; content: Buffer }> {
    const name = checkName(nameText);
    const { kvs } = await readKeys(this.o.client, [this.o.keyspace.file(name)]);
    const kv = kvs[0];
    if (!kv) throw new NotFoundError(`file ${name} not found (list files with \`clusterctl files\`)`);
    const file = await this.require(name);
    return { file, content: file.secret ? await this.ring().decrypt(kv.value.toString()) : Buffer.from(kv.value) };
  }

  /**
   * The content a bundle delivers: the pinned edition (or the current one), decrypted when
   * secret (only the leader building a command calls this). undefined when absent.
   */
  async content(name: string, edition?: string): Promise<{ content: Buffer; secret: boolean } | undefined> {
    const ks = this.o.keyspace;
    const { kvs } = await readKeys(this.o.client, edition ? [ks.fileEdition(name, edition), ks.fileEditionInfo(name, edition)] : [ks.file(name), ks.fileInfo(name)]);
    const [kv, info] = kvs;
    if (!kv) return undefined;
    const meta = decodeMeta(name, info?.value.toString(), kv.value);
    return meta.secret ? { content: await this.ring().decrypt(kv.value.toString()), secret: true } : { content: Buffer.from(kv.value), secret: false };
  }

  /** Names of the given files that are not stored (for bundle pushes). */
  async missing(names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const { kvs } = await readKeys(this.o.client, names.map((n) => this.o.keyspace.file(checkName(n))));
    return names.filter((_, i) => kvs[i] === undefined);
  }

  /**
   * Deletes an unused edition of each named file that is not current (after a bundle version is
   * deleted, say); returns "name edition sha" of each deleted. Guarded like an upload.
   */
  async prune(names: readonly string[], actor = 'operator'): Promise<string[]> {
    const deleted: string[] = [];
    for (const name of names) {
      const ks = this.o.keyspace;
      const done = await retryOnConflict(MAX_ATTEMPTS, async (): Promise<string[] | typeof CAS_LOST> => {
        const { kvs } = await readKeys(this.o.client, [ks.fileInfo(name)]);
        const info = kvs[0];
        if (!info) return [];
        const file = (await this.list(name))[0];
        const unused = (file?.editions ?? []).filter((e) => !e.current && e.usedBy.length === 0);
        if (unused.length === 0) return [];
        const outcome = await this.o.events.commit({
          compares: [{ key: ks.fileInfo(name), target: 'Mod', op: '==', value: info.mod_revision, reason: 'cas' }],
          ops: unused.flatMap((e): TxnOp[] => [{ kind: 'delete', key: ks.fileEdition(name, e.sha256) }, { kind: 'delete', key: ks.fileEditionInfo(name, e.sha256) }]),
          event: { type: 'file.pruned', message: `file ${name}: unused edition${unused.length > 1 ? 's' : ''} ${unused.map((e) => e.sha256.slice(0, 12)).join(', ')} deleted`, actor },
        });
        return outcome.succeeded ? unused.map((e) => `${name} edition ${e.sha256.slice(0, 12)}`) : CAS_LOST;
      }, () => new ConflictError(`file ${name} kept changing while its unused editions were deleted; retry`));
      deleted.push(...done);
    }
    return deleted;
  }

  /** Deletes a file (every edition) no stored bundle uses; otherwise FailedPreconditionError naming the bundles. */
  async delete(nameText: string, actor = 'operator'): Promise<StoredFile> {
    const name = checkName(nameText);
    const ks = this.o.keyspace;
    return retryOnConflict(MAX_ATTEMPTS, async (): Promise<StoredFile | typeof CAS_LOST> => {
      const { kvs } = await readKeys(this.o.client, [ks.fileInfo(name)]);
      const file = await this.require(name);
      if (file.usedBy.length > 0) {
        throw new FailedPreconditionError(
          `file ${file.name} is used by bundle${file.usedBy.length > 1 ? 's' : ''} ${file.usedBy.join(', ')}; ` +
            'bundle versions are immutable: delete them first (`clusterctl bundle delete NAME@VERSION`, after moving groups off them)',
        );
      }
      const key = ks.file(file.name);
      const info = kvs[0];
      const outcome = await this.o.events.commit({
        compares: [
          { key, target: 'Mod', op: '==', value: file.revision, reason: 'cas' },
          info ? { key: ks.fileInfo(name), target: 'Mod', op: '==', value: info.mod_revision, reason: 'cas' } : { key: ks.fileInfo(name), target: 'Create', op: '==', value: '0', reason: 'cas' },
        ],
        ops: [
          { kind: 'delete', key },
          { kind: 'delete', key: ks.fileInfo(file.name) },
          { kind: 'delete-range', from: ks.fileEditionsPrefix(file.name), to: prefixEnd(ks.fileEditionsPrefix(file.name)) },
          { kind: 'delete-range', from: ks.fileEditionInfoPrefix(file.name), to: prefixEnd(ks.fileEditionInfoPrefix(file.name)) },
        ],
        event: { type: 'file.deleted', message: `file ${file.name} deleted (${file.editions.length} edition(s); current ${formatBytes(file.size)}, sha256 ${file.sha256})`, actor },
      });
      return outcome.succeeded ? file : CAS_LOST;
    }, () => new ConflictError(`file ${name} changed while being deleted; check it and retry`));
  }
}
