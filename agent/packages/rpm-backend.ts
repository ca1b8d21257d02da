/**
 * The rpm backend: nodes without a repository manager, fed local .rpm files (`rpm -U`). It
 * cannot resolve a package by name, and says so instead of guessing.
 */
import { FailedPreconditionError } from '../../shared';
import type { InstalledPackage, PackageBackend, PackageOutput } from './backend';
import { checkPackageName } from './package-version';
import { commandEnv, rpmQuery, rpmTargetArgs, type RpmTarget } from './rpm-database';
import { lastLines, runCommand } from './run-command';

export interface RpmBackendOptions {
  /** Node root; default '/'. */
  root?: string;
  /** `--dbpath` inside the root; default rpm's own (see RpmTarget.dbPath). */
  dbPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Per command; default 10 minutes. */
  timeoutMs?: number;
}

export function createRpmBackend(options: RpmBackendOptions = {}): PackageBackend {
  const target: RpmTarget = { root: options.root ?? '/', dbPath: options.dbPath, env: options.env, timeoutMs: options.timeoutMs };

  const rpm = async (what: string, args: string[], signal?: AbortSignal): Promise<PackageOutput> => {
    const r = await runCommand('rpm', [...rpmTargetArgs(target), ...args], { env: commandEnv(options.env), signal, timeoutMs: options.timeoutMs });
    if (r.code !== 0) throw new FailedPreconditionError(`${what} failed (exit ${r.code}): ${lastLines(r.output.text)}`);
    return r.output;
  };

  return {
    name: 'rpm',
    query(name: string, signal?: AbortSignal): Promise<InstalledPackage | undefined> {
      checkPackageName(name);
      return rpmQuery(name, target, signal);
    },
    async install(name: string): Promise<PackageOutput> {
      throw new FailedPreconditionError(
        `cannot install ${name} by name with the rpm backend: give the unit an rpm: file path, or use --package-backend dnf`,
      );
    },
    installFile(path: string, signal?: AbortSignal): Promise<PackageOutput> {
      // --oldpackage: a bundle pinning an older file is a deliberate downgrade, not a mistake.
      return rpm(`rpm -U ${path}`, ['-U', '-v', '--oldpackage', '--', path], signal);
    },
    removePackage(name: string, signal?: AbortSignal): Promise<PackageOutput> {
      checkPackageName(name);
      return rpm(`rpm -e ${name}`, ['-e', '--', name], signal);
    },
  };
}
