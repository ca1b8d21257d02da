/**
 * files/<name>: distributed files, at most 1 MiB each (etcd refuses requests over 1.5 MiB by
 * default, `--max-request-bytes`; the rest is headroom for the key, the info record and the
 * event written in the same transaction). The value at files/<name> is exactly the uploaded
 * bytes; size, sha256, mode and upload time sit beside it at file-info/<name>
 * (shared/keyspace.ts), so a download is byte-identical and nothing is escaped or inflated.
 *
 * Bundles name files in a file unit's `source`; a file a stored bundle names cannot be deleted
 * (the refusal names the bundles), and BundleStore refuses a bundle naming a missing file.
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import {
  AlreadyExistsError, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, isValidSegment,
  type Clock, type Keyspace,
} from '../../shared';
import { readKeys, readPrefixes, type Compare } from '../etcd-txn';
import type { EventLog } from '../event-log';

/** The largest file accepted: 1 MiB. */
export const MAX_FILE_BYTES = 1024 * 1024;

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
}

export interface StoredFile extends FileMeta {
  /** "bundle@version" of stored bundles whose file units name this file as `source`. */
  usedBy: string[];
  /** Mod revision of files/<name>. */
  revision: string;
}

export interface FileStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
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
  };
}

export class FileStore {
  constructor(private readonly o: FileStoreOptions) {}

  /**
   * Stores a file. Over 1 MiB: InvalidArgumentError and nothing written. An existing name is
   * refused unless `overwrite` (re-uploading identical content is an idempotent OK).
   */
  async upload(nameText: string, content: Buffer, options: { mode?: string; overwrite?: boolean; actor?: string } = {}): Promise<StoredFile> {
    const name = checkName(nameText);
    const tooBig = sizeProblem(name, content.length);
    if (tooBig) throw new InvalidArgumentError(tooBig);
    const modeText = (options.mode ?? '').trim() || '0644';
    if (!MODE.test(modeText)) throw new InvalidArgumentError(`mode ${JSON.stringify(options.mode)}: use octal like 0644`);
    const mode = modeText.padStart(4, '0');
    const key = this.o.keyspace.file(name);
    const digest = sha256(content);
    const { kvs } = await readKeys(this.o.client, [key, this.o.keyspace.fileInfo(name)]);
    const existing = kvs[0];
    if (existing && !options.overwrite) {
      const meta = decodeMeta(name, kvs[1]?.value.toString(), existing.value);
      if (meta.sha256 === digest && meta.mode === mode) return this.require(name);
      throw new AlreadyExistsError(`file ${name} exists with other content (sha256 ${meta.sha256.slice(0, 12)}…); upload with --overwrite to replace it`);
    }
    const meta: FileMeta = { name, size: content.length, sha256: digest, mode, createdAt: this.o.clock.iso() };
    const guard: Compare = existing
      ? { key, target: 'Mod', op: '==', value: existing.mod_revision, reason: 'cas' }
      : { key, target: 'Create', op: '==', value: '0', reason: 'cas' };
    const outcome = await this.o.events.commit({
      compares: [guard],
      ops: [
        { kind: 'put', key, value: content },
        { kind: 'put', key: this.o.keyspace.fileInfo(name), value: JSON.stringify(meta) },
      ],
      event: {
        type: 'file.uploaded',
        // The content is never logged: distributed files may hold secrets.
        message: `file ${name} ${existing ? 'replaced' : 'stored'} (${formatBytes(content.length)}, sha256 ${digest})`,
        actor: options.actor ?? 'operator',
      },
    });
    if (!outcome.succeeded) throw new ConflictError(`file ${name} changed while being uploaded; retry`);
    return this.require(name);
  }

  /** One file's info with its users; NotFoundError with a hint when absent. */
  async require(nameText: string): Promise<StoredFile> {
    const name = checkName(nameText);
    const all = await this.list(name);
    const f = all[0];
    if (!f) throw new NotFoundError(`file ${name} not found (list files with \`clusterctl files\`)`);
    return f;
  }

  /** Every stored file (or only `only`), by name, with the bundles that use it. */
  async list(only?: string): Promise<StoredFile[]> {
    const ks = this.o.keyspace;
    const { kvs } = await readPrefixes(this.o.client, [
      { prefix: only ? ks.file(only) : ks.filesPrefix(), keysOnly: false },
      { prefix: only ? ks.fileInfo(only) : ks.fileInfoPrefix() },
      { prefix: ks.configsPrefix() },
    ]);
    const users = new Map<string, string[]>();
    for (const kv of kvs[2]) {
      const parsed = ks.parseConfig(kv.key.toString());
      if (!parsed) continue;
      for (const s of bundleSources(kv.value.toString())) {
        users.set(s, [...(users.get(s) ?? []), `${parsed.bundle}@${parsed.version}`]);
      }
    }
    const infos = new Map<string, string>();
    for (const kv of kvs[1]) {
      const n = ks.parseFileInfo(kv.key.toString());
      if (n !== undefined) infos.set(n, kv.value.toString());
    }
    const out: StoredFile[] = [];
    for (const kv of kvs[0]) {
      const name = ks.parseFile(kv.key.toString());
      // A prefix read of files/ab also returns files/abc: keep the exact name only.
      if (name === undefined || (only !== undefined && name !== only)) continue;
      out.push({ ...decodeMeta(name, infos.get(name), kv.value), usedBy: users.get(name) ?? [], revision: kv.mod_revision });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async download(nameText: string): Promise<{ file: StoredFile; content: Buffer }> {
    const name = checkName(nameText);
    const { kvs } = await readKeys(this.o.client, [this.o.keyspace.file(name)]);
    const kv = kvs[0];
    if (!kv) throw new NotFoundError(`file ${name} not found (list files with \`clusterctl files\`)`);
    const file = await this.require(name);
    return { file, content: Buffer.from(kv.value) };
  }

  /** Names of the given files that are not stored (for bundle pushes). */
  async missing(names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const { kvs } = await readKeys(this.o.client, names.map((n) => this.o.keyspace.file(checkName(n))));
    return names.filter((_, i) => kvs[i] === undefined);
  }

  /** Deletes a file no stored bundle uses; otherwise FailedPreconditionError naming the bundles. */
  async delete(nameText: string, actor = 'operator'): Promise<StoredFile> {
    const file = await this.require(nameText);
    if (file.usedBy.length > 0) {
      throw new FailedPreconditionError(
        `file ${file.name} is used by bundle${file.usedBy.length > 1 ? 's' : ''} ${file.usedBy.join(', ')}; ` +
          'bundles are immutable, so push versions without this source and move groups to them first',
      );
    }
    const key = this.o.keyspace.file(file.name);
    const outcome = await this.o.events.commit({
      compares: [{ key, target: 'Mod', op: '==', value: file.revision, reason: 'cas' }],
      ops: [{ kind: 'delete', key }, { kind: 'delete', key: this.o.keyspace.fileInfo(file.name) }],
      event: { type: 'file.deleted', message: `file ${file.name} deleted (${formatBytes(file.size)}, sha256 ${file.sha256})`, actor },
    });
    if (!outcome.succeeded) throw new ConflictError(`file ${file.name} changed while being deleted; check it and retry`);
    return file;
  }
}
