/**
 * Builds the PackageBackend for a node from the agent's options: the composition root calls
 * this once per node and hands it to the units through UnitContext.packages().
 */
import type { PackageBackend } from './backend';
import { createAptBackend } from './apt-backend';
import { detectPackageBackend } from './detect-backend';
import { createDnfBackend, type DnfBackendOptions } from './dnf-backend';
import { createRpmBackend } from './rpm-backend';

export interface PackageBackendOptions {
  /** auto (from ROOT/etc/os-release) | dnf | apt | rpm; default auto. */
  backend?: string;
  /** Node root; default '/'. */
  root?: string;
  /** rpm backend only: `--dbpath` inside the root. */
  dbPath?: string;
  /** dnf backend only: overrides of what is otherwise read from the root. */
  dnf?: Pick<DnfBackendOptions, 'configFile' | 'reposDir' | 'releasever'>;
  env?: NodeJS.ProcessEnv;
  /** Per package-manager command; default 10 minutes. */
  timeoutMs?: number;
}

export async function createPackageBackend(options: PackageBackendOptions = {}): Promise<PackageBackend> {
  const root = options.root ?? '/';
  const name = await detectPackageBackend(options.backend ?? 'auto', root);
  const common = { root, env: options.env, timeoutMs: options.timeoutMs };
  switch (name) {
    case 'dnf':
      return createDnfBackend({ ...common, ...options.dnf });
    case 'apt':
      return createAptBackend(common);
    case 'rpm':
      return createRpmBackend({ ...common, dbPath: options.dbPath });
  }
}
