/**
 * Runs one command as a transient service of a real systemd user manager (the shared
 * test/helpers startSystemdSandbox: own mount namespace and own cgroup, cleaned up even when a
 * test dies), with sandbox properties taken from our unit files, to prove that Node and our
 * bundles actually run under them: a seccomp filter that misses one syscall Node makes kills it
 * with SIGSYS before it prints anything.
 *
 * A user manager cannot set up mount namespaces for its services (ProtectSystem=, PrivateTmp=,
 * ProtectKernelTunables=... fail there with status 226/NAMESPACE) nor DynamicUser=; only the
 * process-level directives below are applied, and systemd-analyze verify covers the rest.
 */
import { startSystemdSandbox, type RunResult, type SystemdSandbox } from '../helpers';

/** Unit directives a user manager applies to a transient service (each checked here by hand). */
export const PROCESS_LEVEL_DIRECTIVES = [
  'NoNewPrivileges', 'CapabilityBoundingSet', 'AmbientCapabilities', 'RestrictNamespaces', 'RestrictRealtime',
  'RestrictSUIDSGID', 'LockPersonality', 'UMask', 'RestrictAddressFamilies', 'SystemCallArchitectures',
  'SystemCallFilter', 'ProtectKernelModules', 'ProtectClock', 'ProtectHostname', 'RemoveIPC', 'LimitNOFILE',
  'MemoryDenyWriteExecute',
] as const;

const UNIT = 'sandboxed.service';

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

export interface SandboxedService {
  readonly sandbox: SystemdSandbox;
  /** Settles when systemd-run returns: the service's output, then systemd-run's summary on stderr. */
  readonly done: Promise<RunResult>;
  /** True once `done` has settled (the service ended). */
  ended(): boolean;
  /** Stops the service through systemd (SIGTERM, the unit's KillSignal) and waits for `done`. */
  stop(): Promise<RunResult>;
  /** Removes the whole sandbox (manager, services, temp dir). Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Starts `command` under `properties` (e.g. `SystemCallFilter=@system-service`,
 * `Environment=K=V`) in a fresh user manager. The service runs until it exits or `stop()`.
 */
export async function runSandboxed(name: string, properties: readonly string[], command: readonly string[], maxRunMs = 300_000): Promise<SandboxedService> {
  const sandbox = await startSystemdSandbox(name);
  const props = properties.map((p) => `-p ${shellQuote(p)}`).join(' ');
  const done = sandbox.exec(`systemd-run --user --wait --pipe --unit=${UNIT} ${props} -- ${command.map(shellQuote).join(' ')} </dev/null`, { timeoutMs: maxRunMs });
  let settled = false;
  done.then(() => { settled = true; }, () => { settled = true; });
  return {
    sandbox,
    done,
    ended: () => settled,
    async stop(): Promise<RunResult> {
      if (!settled) await sandbox.exec(`systemctl --user stop ${UNIT}`, { timeoutMs: 60_000 });
      return done;
    },
    dispose: () => sandbox.stop(),
  };
}
