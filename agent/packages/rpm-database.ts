/**
 * Reading the rpm database and .rpm headers, shared by the dnf and rpm backends: dnf installs,
 * but `rpm -q` answers "what is installed" faster and without touching repositories.
 */
import { FailedPreconditionError } from '../../shared';
import type { InstalledPackage } from './backend';
import { DEFAULT_PACKAGE_QUERY_TIMEOUT_MS, lastLines, runCommand } from './run-command';

/** Where rpm looks: the node root, and optionally a database path inside it. */
export interface RpmTarget {
  root: string;
  /**
   * rpm database directory inside the root (`--dbpath`). Leave unset to use rpm's own default,
   * which is also what dnf uses (dnf has no dbpath option): /var/lib/rpm on RHEL-like systems,
   * but `~/.rpmdb` in Debian's rpm build, so set it only where dnf is not involved.
   */
  dbPath?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

// Epoch only when set, so versions read like the bundle writes them (2.0-1, or 1:2.0-1).
const QUERY_FORMAT = '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n';

export function rpmTargetArgs(t: RpmTarget): string[] {
  const args: string[] = [];
  if (t.root !== '/') args.push('--root', t.root);
  if (t.dbPath !== undefined) args.push('--dbpath', t.dbPath);
  return args;
}

export function commandEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // Untranslated messages: "is not installed" is matched below.
  return { ...(env ?? process.env), LC_ALL: 'C', LANG: 'C' };
}

/** Pure: the installed package from `rpm -q --qf QUERY_FORMAT` output (the newest line wins for install-only packages). */
export function parseRpmQuery(stdout: string, name: string): InstalledPackage | undefined {
  const lines = stdout.split('\n').map((l) => l.split('\t')).filter((f) => f.length === 2 && f[0] === name);
  const last = lines.at(-1);
  return last ? { name, version: last[1] } : undefined;
}

export async function rpmQuery(name: string, target: RpmTarget, signal?: AbortSignal): Promise<InstalledPackage | undefined> {
  const r = await runCommand('rpm', [...rpmTargetArgs(target), '-q', '--qf', QUERY_FORMAT, '--', name], {
    env: commandEnv(target.env), signal, timeoutMs: target.timeoutMs ?? DEFAULT_PACKAGE_QUERY_TIMEOUT_MS,
  });
  if (r.code === 0) return parseRpmQuery(r.stdout, name);
  if (r.code === 1 && /is not installed/.test(r.output.text)) return undefined;
  throw new FailedPreconditionError(`rpm -q ${name} failed (exit ${r.code}): ${lastLines(r.output.text)}`);
}

/** Name and version recorded in a .rpm file's header (no database involved). */
export async function readRpmFile(path: string, target: Pick<RpmTarget, 'env' | 'timeoutMs'>, signal?: AbortSignal): Promise<InstalledPackage> {
  const r = await runCommand('rpm', ['-qp', '--nosignature', '--nodigest', '--qf', QUERY_FORMAT, '--', path], {
    env: commandEnv(target.env), signal, timeoutMs: target.timeoutMs ?? DEFAULT_PACKAGE_QUERY_TIMEOUT_MS,
  });
  const lines = r.stdout.split('\n').filter((l) => l.includes('\t'));
  if (r.code !== 0 || lines.length !== 1) {
    throw new FailedPreconditionError(`cannot read rpm file ${path}: ${lastLines(r.output.text) || `exit ${r.code}`}`);
  }
  const [name, version] = lines[0].split('\t');
  return { name, version };
}
