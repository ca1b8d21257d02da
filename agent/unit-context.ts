/**
 * Builds the UnitContext the config units run with, from the agent's options: the node root,
 * the environment commands see (NODE_ROOT in a sandbox), and lazily connected systemd and
 * package backends (connected on first use: a bundle of files never touches D-Bus). One
 * context per agent; nothing is shared between agents in one process.
 */
import type { Logger } from '../shared/logger';
import { createPackageBackend } from './packages';
import type { PackageBackend } from './packages/backend';
import type { SystemdManager } from './systemd/manager';
import type { BaseUnitContext, RunObserver } from './units/unit';

export type { BaseUnitContext };

export interface UnitContextOptions {
  /** Node root: '/' in production, a sandbox directory under test (default '/'). */
  root?: string;
  logger: Logger;
  /** Base environment for commands (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** system (production) or session (a user manager under test). Default system. */
  systemdBus?: 'system' | 'session';
  /** Where systemd unit files go (default /etc/systemd/system). */
  systemdUnitDir?: string;
  /** Explicit D-Bus address (default: the bus's usual environment variable). */
  systemdBusAddress?: string;
  /** auto | dnf | apt | rpm (default auto). */
  packageBackend?: string;
  /** Per D-Bus call. @default DEFAULT_SYSTEMD_CALL_TIMEOUT_MS (30 s) */
  systemdCallTimeoutMs?: number;
  /** Per start/stop/restart job. @default DEFAULT_SYSTEMD_JOB_TIMEOUT_MS (5 min) */
  systemdJobTimeoutMs?: number;
  /** Per package-manager command. @default DEFAULT_PACKAGE_COMMAND_TIMEOUT_MS (10 min) */
  packageCommandTimeoutMs?: number;
  /** Told of every unit run and run end (the daemon's metrics). @default none */
  observer?: RunObserver;
}

/** Overridable constructors, for a benchmark sharing one manager or a test pinning a backend. */
export interface UnitContextDeps {
  connectSystemd?: () => Promise<SystemdManager>;
  openPackages?: () => Promise<PackageBackend>;
}

export interface OwnedUnitContext extends BaseUnitContext {
  /** Closes what was opened (the D-Bus connection). */
  close(): void;
}

export function createUnitContext(options: UnitContextOptions, deps: UnitContextDeps = {}): OwnedUnitContext {
  const root = options.root ?? '/';
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
  // Commands of a sandboxed node find their root here (their cwd is under it too).
  if (root !== '/') env.NODE_ROOT = root;
  let systemd: Promise<SystemdManager> | undefined;
  let packages: Promise<PackageBackend> | undefined;
  // Loaded on first use: an agent whose bundles have no systemd unit never loads dbus-next.
  const connectSystemd = deps.connectSystemd ?? (async () => (await import('./systemd')).createSystemdManager({
    bus: options.systemdBus ?? 'system',
    unitDir: options.systemdUnitDir ?? '/etc/systemd/system',
    busAddress: options.systemdBusAddress,
    logger: options.logger,
    callTimeoutMs: options.systemdCallTimeoutMs,
    jobTimeoutMs: options.systemdJobTimeoutMs,
  }));
  const openPackages = deps.openPackages ?? (() => createPackageBackend({ backend: options.packageBackend ?? 'auto', root, env, timeoutMs: options.packageCommandTimeoutMs }));
  return {
    root,
    logger: options.logger,
    env,
    ...(options.observer ? { observer: options.observer } : {}),
    systemd() {
      // A failed connection is not cached: the next unit tries again.
      systemd ??= connectSystemd().catch((err: unknown) => { systemd = undefined; throw err; });
      return systemd;
    },
    packages() {
      packages ??= openPackages().catch((err: unknown) => { packages = undefined; throw err; });
      return packages;
    },
    close() {
      const s = systemd;
      systemd = undefined;
      if (s) s.then((m) => m.close(), () => undefined).catch(() => undefined);
    },
  };
}
