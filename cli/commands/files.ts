/**
 * `clusterctl files`: distributed files (files/<name> in etcd, ≤ 1 MiB) that bundles use as a
 * file unit's `source`. Bare `files` lists (one row per edition); `upload`, `download`, `rm`.
 * Each upload is an immutable edition; a bundle version delivers the edition it was pushed with.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError } from '../../shared/errors';
import type { FileInfo__Output } from '../../generated/cluster/v1/FileInfo';
import { defineCommand, EXIT } from '../command';
import type { CliContext } from '../context';
import { ageSince, formatBytes, formatJson, formatTable, formatYaml, orDash } from '../output';
import { MAX_GRPC_MESSAGE_BYTES } from '../../shared/grpc-limits';

function fileObject(f: FileInfo__Output): Record<string, unknown> {
  return {
    name: f.name, size: Number(f.size), sha256: f.sha256, mode: f.mode, createdAt: f.createdAt, usedBy: f.usedBy, secret: f.secret,
    editions: f.editions.map((e) => ({ sha256: e.sha256, size: Number(e.size), createdAt: e.createdAt, current: e.current, usedBy: e.usedBy })),
  };
}

/** One row per edition: the current one first (what the next bundle push pins), then those kept for bundles. */
function printInfos(context: CliContext, files: FileInfo__Output[]): void {
  switch (context.format) {
    case 'json': context.out.write(formatJson(files.map(fileObject))); return;
    case 'yaml': context.out.write(formatYaml(files.map(fileObject))); return;
    default: {
      const now = context.clock.now();
      const wide = context.format === 'wide';
      const header = wide ? ['NAME', 'SIZE', 'MODE', 'SHA256', 'AGE', 'USED BY', 'EDITION'] : ['NAME', 'SIZE', 'SHA256', 'AGE', 'USED BY', 'EDITION'];
      const rows = files.flatMap((f) => {
        const editions = f.editions.length
          ? f.editions
          : [{ sha256: f.sha256, size: f.size, createdAt: f.createdAt, current: true, usedBy: f.usedBy }];
        return editions.map((e) => {
          const sha = wide ? e.sha256 : e.sha256.slice(0, 12);
          const used = e.usedBy.length ? e.usedBy.join(',') : '-';
          const which = e.current ? 'current' : 'kept';
          // A secret's cleartext length is not shown; its sha256 names the encrypted edition.
          const size = f.secret ? 'secret' : formatBytes(e.size);
          return wide
            ? [f.name, size, f.mode, sha, orDash(ageSince(e.createdAt, now)), used, which]
            : [f.name, size, sha, orDash(ageSince(e.createdAt, now)), used, which];
        });
      });
      context.out.write(formatTable(header, rows));
    }
  }
}

const filesList = defineCommand<CliContext, Record<string, never>>({
  name: 'list',
  aliases: ['ls'],
  summary: 'List distributed files, one row per edition: size, sha256, age and the bundle versions that deliver it',
  usage: 'files [list] [-o table|wide|json|yaml]',
  example: 'clusterctl files\nclusterctl files -o json',
  async run({ context }) {
    const files = await context.client.listFiles();
    if (files.length === 0 && (context.format === 'table' || context.format === 'wide')) {
      context.note('no files yet (upload one with: clusterctl files upload PATH)');
      return EXIT.ok;
    }
    printInfos(context, files);
    return EXIT.ok;
  },
});

const UPLOAD_OPTIONS = {
  name: { kind: 'string', description: 'name to store the file under (default: the file name of PATH)', placeholder: 'NAME' },
  mode: { kind: 'string', description: 'recorded mode, octal (default: the local file\'s mode)', placeholder: 'MODE' },
  overwrite: { kind: 'boolean', description: 'replace a stored file of the same name' },
  secret: { kind: 'boolean', description: 'store it encrypted (admin; at most 256 KiB): never shown without --reveal, delivered with mode 0600 unless the unit names one' },
} as const;

const filesUpload = defineCommand<CliContext, typeof UPLOAD_OPTIONS>({
  name: 'upload',
  aliases: ['push', 'put'],
  summary: 'Upload a local file (at most 1 MiB) so bundles can name it as a file unit `source`',
  usage: 'files upload PATH [--name NAME] [--mode 0644] [--overwrite] [--secret]',
  example: 'clusterctl files upload ./chrony.conf\nclusterctl files upload ./ca.pem --name cluster-ca.pem --mode 0600\nclusterctl files upload ./tls.key --secret',
  options: UPLOAD_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'files upload needs the PATH of a local file' },
  async run({ values, positionals, context }) {
    const path = positionals[0];
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw new InvalidArgumentError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    if (!st.isFile()) throw new InvalidArgumentError(`${path} is not a regular file`);
    // The transport would cut a message this big with a generic error: say it here instead.
    // Anything smaller goes to the coordinator, which owns the 1 MiB rule and its message.
    if (st.size > MAX_GRPC_MESSAGE_BYTES - 64 * 1024) {
      throw new InvalidArgumentError(`file ${values.name ?? basename(path)} is ${(st.size / 1048576).toFixed(1)} MiB; the limit is 1 MiB (etcd's request limit is 1.5 MiB)`);
    }
    const content = await readFile(path);
    const name = values.name ?? basename(path);
    const mode = values.mode ?? (st.mode & 0o777).toString(8).padStart(4, '0');
    const info = await context.client.upload({ name, content, mode, overwrite: values.overwrite, secret: values.secret });
    if (context.format === 'json' || context.format === 'yaml') printInfos(context, [info]);
    else {
      context.out.write(info.secret ? `secret file ${info.name} stored encrypted, edition ${info.sha256}\n` : `file ${info.name} stored: ${formatBytes(info.size)}, sha256 ${info.sha256}\n`);
      // Bundle versions pushed earlier keep the edition they pinned: say which, so nobody expects them to change.
      for (const e of info.editions.filter((x) => !x.current && x.usedBy.length > 0)) {
        context.out.write(`  edition ${e.sha256.slice(0, 12)} kept: ${e.usedBy.join(', ')} still deliver${e.usedBy.length === 1 ? 's' : ''} it; push a new version to deliver this upload\n`);
      }
    }
    return EXIT.ok;
  },
});

const DOWNLOAD_OPTIONS = {
  // Same key as the global -o (output format): for this command -o names the file to write,
  // as in curl/wget, and replaces the format option.
  output: { kind: 'string', short: 'o', description: 'write to FILE (default: stdout; "-" is stdout)', placeholder: 'FILE' },
  reveal: { kind: 'boolean', description: 'print a secret file\'s content (admin only; without it a secret is withheld)' },
} as const;

const filesDownload = defineCommand<CliContext, typeof DOWNLOAD_OPTIONS>({
  name: 'download',
  aliases: ['get', 'cat'],
  summary: 'Download a stored file, byte for byte (to stdout or -o FILE)',
  usage: 'files download NAME [-o FILE] [--reveal]',
  example: 'clusterctl files download chrony.conf\nclusterctl files download cluster-ca.pem -o ./ca.pem',
  options: DOWNLOAD_OPTIONS,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'files download needs the NAME of a stored file (list them with: clusterctl files)' },
  async run({ values, positionals, context }) {
    const res = await context.client.download(positionals[0], values.reveal);
    const out = values.output;
    if (out && out !== '-') {
      // A revealed secret is written readable by its owner only.
      await writeFile(out, res.content, res.info?.secret ? { mode: 0o600 } : {});
      context.note(`wrote ${formatBytes(res.content.length)} to ${out} (sha256 ${res.info?.sha256 ?? ''})`);
    } else {
      // Raw bytes: process.stdout takes a Buffer even though the sink is typed for text.
      (context.out.write as (chunk: string | Buffer) => void)(res.content);
    }
    return EXIT.ok;
  },
});

const filesRm = defineCommand<CliContext, Record<string, never>>({
  name: 'rm',
  aliases: ['delete', 'remove'],
  summary: 'Delete a stored file and all its editions (refused while a bundle version uses any of them)',
  usage: 'files rm NAME',
  example: 'clusterctl files rm old-motd',
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'files rm needs the NAME of a stored file (list them with: clusterctl files)' },
  async run({ positionals, context }) {
    const info = await context.client.deleteFile(positionals[0]);
    context.out.write(`file ${info.name} deleted\n`);
    return EXIT.ok;
  },
});

export const filesGroup = defineCommand<CliContext, Record<string, never>>({
  name: 'files',
  aliases: ['file'],
  summary: 'Distributed files (≤ 1 MiB) that bundles use as file unit `source`',
  usage: 'files [list|upload|download|rm] [flags]',
  example: 'clusterctl files\nclusterctl files upload ./chrony.conf\nclusterctl files download chrony.conf -o /tmp/chrony.conf\nclusterctl files rm chrony.conf',
  subcommands: [filesList, filesUpload, filesDownload, filesRm],
  defaultSubcommand: 'list',
});
