/**
 * The apt backend (Debian-family nodes): dpkg-query to read, apt-get to change. With a node root
 * other than '/', apt and dpkg are pointed at it (RootDir, dpkg --root / --admindir).
 */
import { join } from 'node:path';
import { FailedPreconditionError } from '../../shared';
import type { InstalledPackage, PackageBackend, PackageOutput } from './backend';
import { checkPackageName, checkPackageVersion } from './package-version';
import { commandEnv } from './rpm-database';
import { DEFAULT_PACKAGE_QUERY_TIMEOUT_MS, lastLines, runCommand } from './run-command';

export interface AptBackendOptions {
  /** Node root; default '/'. */
  root?: string;
  env?: NodeJS.ProcessEnv;
  /** Per command; default 10 minutes. */
  timeoutMs?: number;
}

/** Pure: `dpkg-query -W -f '${db:Status-Status}\t${Version}\n'` output → installed version. */
export function parseDpkgQuery(stdout: string, name: string): InstalledPackage | undefined {
  for (const line of stdout.split('\n')) {
    const [status, version] = line.split('\t');
    // "config-files" (removed, configuration kept) and "not-installed" count as absent.
    if (status === 'installed' && version) return { name, version };
  }
  return undefined;
}

export function createAptBackend(options: AptBackendOptions = {}): PackageBackend {
  const root = options.root ?? '/';
  const env = { ...commandEnv(options.env), DEBIAN_FRONTEND: 'noninteractive' };
  const dpkgRootArgs = root === '/' ? [] : [`--admindir=${join(root, 'var/lib/dpkg')}`];
  const aptRootArgs = root === '/' ? [] : ['-o', `RootDir=${root}`, '-o', `DPkg::Options::=--root=${root}`];

  const aptGet = async (verb: string, flags: string[], words: string[], signal?: AbortSignal): Promise<PackageOutput> => {
    const run = (): ReturnType<typeof runCommand> => runCommand('apt-get', [...aptRootArgs, verb, '-y', '-q', ...flags, '--', ...words], { env, signal, timeoutMs: options.timeoutMs });
    let r = await run();
    // A node that lost power (or an agent killed) in the middle of dpkg: apt refuses everything
    // until `dpkg --configure -a` finishes the interrupted run, as its message says. Do that
    // once, then try again; if it fails too, the error says so.
    if (r.code !== 0 && /dpkg was interrupted/.test(r.output.text)) {
      const fix = await runCommand('dpkg', [...dpkgRootArgs, ...(root === '/' ? [] : [`--root=${root}`]), '--configure', '-a'], { env, signal, timeoutMs: options.timeoutMs });
      if (fix.code !== 0) throw new FailedPreconditionError(`apt-get ${verb} ${words.join(' ')}: dpkg was interrupted, and dpkg --configure -a failed (exit ${fix.code}): ${lastLines(fix.output.text)}`);
      r = await run();
    }
    if (r.code !== 0) throw new FailedPreconditionError(`apt-get ${verb} ${words.join(' ')} failed (exit ${r.code}): ${lastLines(r.output.text)}`);
    return r.output;
  };

  return {
    name: 'apt',
    async query(name: string, signal?: AbortSignal): Promise<InstalledPackage | undefined> {
      checkPackageName(name);
      const r = await runCommand('dpkg-query', [...dpkgRootArgs, '-W', '-f', '${db:Status-Status}\t${Version}\n', '--', name], {
        env, signal, timeoutMs: options.timeoutMs ?? DEFAULT_PACKAGE_QUERY_TIMEOUT_MS,
      });
      if (r.code === 0) return parseDpkgQuery(r.stdout, name);
      if (/no packages found/.test(r.output.text)) return undefined;
      throw new FailedPreconditionError(`dpkg-query ${name} failed (exit ${r.code}): ${lastLines(r.output.text)}`);
    },
    install(name: string, version: string | undefined, signal?: AbortSignal): Promise<PackageOutput> {
      checkPackageName(name);
      if (version !== undefined) checkPackageVersion(version);
      // apt wants the exact Debian version (1.2-3), and installs an older one only when told to.
      return version === undefined
        ? aptGet('install', [], [name], signal)
        : aptGet('install', ['--allow-downgrades'], [`${name}=${version}`], signal);
    },
    removePackage(name: string, signal?: AbortSignal): Promise<PackageOutput> {
      checkPackageName(name);
      return aptGet('remove', [], [name], signal);
    },
  };
}
