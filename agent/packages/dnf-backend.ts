/**
 * The dnf backend (RHEL-like nodes, the target). Installs and removes with dnf, queries with rpm.
 * With a node root other than '/', everything happens inside it: `--installroot ROOT`, repository
 * files and dnf.conf taken from the root (dnf would otherwise fall back to the host's), and
 * `--releasever` from the root's os-release, since a bare root has no system-release package
 * for dnf to read it from.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../shared';
import type { InstalledPackage, PackageBackend, PackageOutput } from './backend';
import { parseOsRelease } from './detect-backend';
import { checkPackageName, checkPackageVersion } from './package-version';
import { commandEnv, rpmQuery, type RpmTarget } from './rpm-database';
import { lastLines, runCommand } from './run-command';

export interface DnfBackendOptions {
  /** Node root; default '/'. */
  root?: string;
  /** dnf.conf; default ROOT/etc/dnf/dnf.conf when the root is not '/' and that file exists. */
  configFile?: string;
  /** Repository directory; default ROOT/etc/yum.repos.d when the root is not '/'. */
  reposDir?: string;
  /** Release version; default VERSION_ID of ROOT/etc/os-release when the root is not '/'. */
  releasever?: string;
  env?: NodeJS.ProcessEnv;
  /** Per command; default 10 minutes. */
  timeoutMs?: number;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

export function createDnfBackend(options: DnfBackendOptions = {}): PackageBackend {
  const root = options.root ?? '/';
  const target: RpmTarget = { root, env: options.env };
  let rootArgs: Promise<string[]> | undefined;

  const computeRootArgs = async (): Promise<string[]> => {
    if (root === '/') return [];
    const args = ['--installroot', root, `--setopt=reposdir=${options.reposDir ?? join(root, 'etc/yum.repos.d')}`];
    const config = options.configFile ?? join(root, 'etc/dnf/dnf.conf');
    if (options.configFile !== undefined || (await exists(config))) args.push('--config', config);
    let releasever = options.releasever;
    if (releasever === undefined) {
      const text = await readFile(join(root, 'etc/os-release'), 'utf8').catch(() => '');
      releasever = parseOsRelease(text).VERSION_ID;
    }
    if (releasever) args.push('--releasever', releasever);
    return args;
  };

  const dnf = async (verb: string, words: string[], signal?: AbortSignal): Promise<PackageOutput> => {
    rootArgs ??= computeRootArgs();
    const args = ['-y', ...(await rootArgs), verb, '--', ...words];
    const r = await runCommand('dnf', args, { env: commandEnv(options.env), signal, timeoutMs: options.timeoutMs });
    if (r.code !== 0) {
      throw new FailedPreconditionError(`dnf ${verb} ${words.join(' ')} failed (exit ${r.code}): ${lastLines(r.output.text)}`);
    }
    return r.output;
  };

  return {
    name: 'dnf',
    query(name: string, signal?: AbortSignal): Promise<InstalledPackage | undefined> {
      checkPackageName(name);
      return rpmQuery(name, target, signal);
    },
    install(name: string, version: string | undefined, signal?: AbortSignal): Promise<PackageOutput> {
      checkPackageName(name);
      if (version !== undefined) checkPackageVersion(version);
      // `dnf install name-version` also upgrades or downgrades an installed package to that version.
      return dnf('install', [version === undefined ? name : `${name}-${version}`], signal);
    },
    installFile(path: string, signal?: AbortSignal): Promise<PackageOutput> {
      return dnf('install', [path], signal);
    },
    removePackage(name: string, signal?: AbortSignal): Promise<PackageOutput> {
      checkPackageName(name);
      return dnf('remove', [name], signal);
    },
  };
}
