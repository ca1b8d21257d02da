/**
 * Runs one command as a transient service of a real systemd user manager (TESTBED.md), with
 * sandbox properties taken from our unit files, to prove that Node and our bundles actually run
 * under them (a seccomp filter that misses one syscall Node makes kills it with SIGSYS).
 *
 * The manager lives in private mount + PID namespaces (`unshare --kill-child`): killing the
 * returned process kills the manager and the service with it, even when a test fails.
 * A user manager cannot set up mount namespaces for its services (ProtectSystem=, PrivateTmp=...
 * fail with status 226/NAMESPACE there) nor DynamicUser=; only process-level directives are
 * applied here, and systemd-analyze verify covers the rest.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from '../helpers';

/** Unit directives a user manager applies to a transient service (checked one by one here). */
export const PROCESS_LEVEL_DIRECTIVES = [
  'NoNewPrivileges', 'CapabilityBoundingSet', 'AmbientCapabilities', 'RestrictNamespaces', 'RestrictRealtime',
  'RestrictSUIDSGID', 'LockPersonality', 'UMask', 'RestrictAddressFamilies', 'SystemCallArchitectures',
  'SystemCallFilter', 'ProtectKernelModules', 'ProtectClock', 'ProtectHostname', 'RemoveIPC', 'LimitNOFILE',
  'MemoryDenyWriteExecute',
] as const;

const SCRIPT = `set -u
n=$1; shift
props=("\${@:1:$n}"); shift "$n"
mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system
export XDG_RUNTIME_DIR="$SB_DIR/run" HOME="$SB_DIR/home"
/lib/systemd/systemd --user --log-target=console >"$SB_DIR/manager.log" 2>&1 &
for _ in $(seq 200); do [ -S "$XDG_RUNTIME_DIR/bus" ] && [ -S "$XDG_RUNTIME_DIR/systemd/private" ] && break; sleep 0.05; done
export DBUS_SESSION_BUS_ADDRESS="unix:path=$XDG_RUNTIME_DIR/bus"
args=()
for p in "\${props[@]}"; do args+=(-p "$p"); done
systemd-run --user --wait --pipe --unit=sandboxed "\${args[@]}" -- "$@" &
run=$!
echo "sandbox: started"
while [ ! -e "$SB_DIR/stop" ] && kill -0 "$run" 2>/dev/null; do sleep 0.1; done
kill -0 "$run" 2>/dev/null && systemctl --user stop sandboxed.service
wait "$run"
echo "sandbox: systemd-run exited $?"
`;

export interface SandboxedService {
  proc: ManagedProcess;
  /** Stops the service (SIGTERM through systemd) if still running and waits for the sandbox to end. */
  stop(): Promise<void>;
}

/**
 * Starts `command` under `properties` (e.g. `SystemCallFilter=@system-service`,
 * `Environment=K=V`) in a fresh user manager whose runtime dir is under `dir`.
 */
export function runSandboxed(dir: string, properties: readonly string[], command: readonly string[]): SandboxedService {
  mkdirSync(join(dir, 'run'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'home'), { recursive: true });
  const script = join(dir, 'sandbox.sh');
  writeFileSync(script, SCRIPT);
  const proc = new ManagedProcess(
    'user-manager-sandbox', 'unshare',
    ['--mount', '--pid', '--fork', '--kill-child', '--mount-proc', 'bash', script, String(properties.length), ...properties, ...command],
    { env: { SB_DIR: dir }, logFile: join(dir, 'sandbox.log') },
  );
  return {
    proc,
    async stop(): Promise<void> {
      writeFileSync(join(dir, 'stop'), '');
      const t = setTimeout(() => proc.proc.kill('SIGKILL'), 30_000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}
