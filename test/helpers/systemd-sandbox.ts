/**
 * A real systemd *user* manager per simulated node, following ../../../shared/TESTBED.md: a
 * process under `unshare --mount` mounts a tmpfs on /run/systemd and creates
 * /run/systemd/system (systemd's "booted with systemd" check), then runs
 * `/lib/systemd/systemd --user` with its own XDG_RUNTIME_DIR and HOME. The manager
 * socket-activates a D-Bus session bus at $XDG_RUNTIME_DIR/bus; that socket lives in the temp
 * dir (not in the private tmpfs), so a test process outside the namespace reaches it by path.
 *
 * Each manager also gets its own cgroup (one directory per cgroup hierarchy, the process moved
 * there before systemd starts). Without it every user manager on the box takes the same cgroup
 * root (they all start in /init.scope, which systemd strips), so they share
 * /app.slice/dbus.service and friends: stopping or killing a unit in one sandbox killed the
 * same-named unit's processes in every other sandbox (seen: SIGKILL of one sandbox's
 * dbus-daemon took down the bus of another, in another test run).
 *
 * Cleanup kills every process in the sandbox's mount namespace (services the manager started
 * included: they inherit it) and cgroups, which also drops the namespace and its tmpfs, then
 * removes the cgroups and the temp dir. It runs on stop(), when the test process exits, and
 * from a watchdog inside the namespace when the test process dies without either (SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Message, sessionBus, type Variant } from 'dbus-next';
import { run, type RunResult } from './processes';
import { waitFor } from './wait';

export const SYSTEMD_BIN = '/lib/systemd/systemd';

export interface SystemdSandbox {
  readonly name: string;
  /** Temp dir holding run/, home/ and the manager's log. */
  readonly dir: string;
  /** `unix:path=<runtimeDir>/bus`: give it to createSystemdManager({ bus: 'session', busAddress }). */
  readonly busAddress: string;
  /** HOME/.config/systemd/user: where the user manager finds unit files. */
  readonly unitDir: string;
  readonly home: string;
  readonly runtimeDir: string;
  /** PID of the user manager (as seen from outside). */
  readonly managerPid: number;
  /** Runs `bash -c command` inside the sandbox's mount namespace with its env (e.g. `systemctl --user show ...`). */
  exec(command: string, options?: { timeoutMs?: number }): Promise<RunResult>;
  /** The manager's console log so far (for failure messages). */
  logs(): string;
  /** Kills the manager and everything in its namespace, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

function mountNamespace(pid: number | string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** PIDs whose mount namespace is `ns`. */
function pidsInNamespace(ns: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (mountNamespace(entry) === ns) pids.push(Number(entry));
  }
  return pids;
}

/** Mounted cgroup hierarchies that track processes (v1 name=systemd, the v2 unified one, or v2 alone). */
function cgroupHierarchies(): string[] {
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'].filter((h) => existsSync(join(h, 'cgroup.procs')));
}

/** PIDs in a cgroup and all cgroups below it. */
function pidsInCgroup(path: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    pids.push(...readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter((l) => l !== '').map(Number));
    entries = readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return pids;
  }
  for (const e of entries) pids.push(...pidsInCgroup(join(path, e)));
  return pids;
}

/** cgroup directories are removed with rmdir, deepest first, once empty. */
function removeCgroup(path: string): void {
  let entries: string[];
  try {
    entries = readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return;
  }
  for (const e of entries) removeCgroup(join(path, e));
  try {
    rmdirSync(path);
  } catch {
    // Still busy or gone; the watchdog or a later stop() retries.
  }
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

function killNamespace(ns: string | undefined, child: ChildProcess): void {
  // Never our own namespace: that would kill the test run and every other engineer's processes.
  if (ns !== undefined && ns !== mountNamespace('self')) {
    for (const pid of pidsInNamespace(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Asks the manager over the bus, from outside the namespace, whether it finished starting up. */
async function managerState(busAddress: string): Promise<string> {
  const bus = sessionBus({ busAddress });
  bus.on('error', () => undefined);
  try {
    const reply = await Promise.race([
      bus.call(new Message({
        destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.DBus.Properties',
        member: 'Get', signature: 'ss', body: ['org.freedesktop.systemd1.Manager', 'SystemState'],
      })),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 2 s')), 2000)),
    ]);
    return String((reply?.body[0] as Variant<string> | undefined)?.value ?? '');
  } finally {
    bus.disconnect();
  }
}

export async function startSystemdSandbox(name = 'node', options: { timeoutMs?: number } = {}): Promise<SystemdSandbox> {
  // Short prefix: the bus socket path must fit a sockaddr_un (108 bytes).
  const dir = mkdtempSync(join(tmpdir(), `sd-${name.slice(0, 12)}-`));
  const runtimeDir = join(dir, 'run');
  const home = join(dir, 'home');
  const unitDir = join(home, '.config', 'systemd', 'user');
  mkdirSync(runtimeDir);
  chmodSync(runtimeDir, 0o700); // systemd and dbus refuse a runtime dir others can read
  mkdirSync(unitDir, { recursive: true });
  const busAddress = `unix:path=${join(runtimeDir, 'bus')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: runtimeDir, HOME: home, DBUS_SESSION_BUS_ADDRESS: busAddress };
  delete env.NOTIFY_SOCKET;
  // Named after the temp dir: unique on the box, and recognisable (cm-sandbox-sd-NAME-XXXXXX).
  const cgroupName = `cm-sandbox-${basename(dir)}`;
  const cgroups = cgroupHierarchies().map((h) => join(h, cgroupName));
  const shellEnv: NodeJS.ProcessEnv = { ...env, SANDBOX_OWNER: String(process.pid), SANDBOX_DIR: dir, SANDBOX_CGROUPS: cgroups.join(' ') };
  const script = join(dir, 'node.sh');
  writeFileSync(script, [
    'set -e',
    'mount -t tmpfs tmpfs /run/systemd',
    'mkdir -p /run/systemd/system',
    // Watchdog: if the test process dies without cleaning up (SIGKILL, a timeout), empty the
    // namespace and the cgroups and remove the temp dir from inside. Started before the move
    // into the sandbox cgroups, so it is not in them; it skips itself while killing.
    '(',
    '  set +e',
    '  ns=$(readlink /proc/self/ns/mnt)',
    '  while kill -0 "$SANDBOX_OWNER" 2>/dev/null; do sleep 1; done',
    '  for p in /proc/[0-9]*; do',
    '    pid=${p#/proc/}',
    '    [ "$pid" != "$BASHPID" ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -9 "$pid" 2>/dev/null',
    '  done',
    '  for cg in $SANDBOX_CGROUPS; do for p in $(cat $(find "$cg" -name cgroup.procs) 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; done',
    '  sleep 1',
    '  for cg in $SANDBOX_CGROUPS; do find "$cg" -depth -type d -exec rmdir {} \\; 2>/dev/null; done',
    '  rm -rf "$SANDBOX_DIR"',
    ') </dev/null >/dev/null 2>&1 &',
    'for cg in $SANDBOX_CGROUPS; do mkdir -p "$cg"; echo $$ > "$cg/cgroup.procs"; done',
    `exec ${SYSTEMD_BIN} --user --log-target=console`,
    '',
  ].join('\n'));

  let log = '';
  const child = spawn('unshare', ['--mount', 'bash', script], { env: shellEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const onData = (b: Buffer): void => {
    log += b.toString();
    if (log.length > 1_000_000) log = log.slice(-500_000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ns: string | undefined;
  let stopped = false;

  /**
   * An open descriptor of the sandbox's mount namespace, held until stop() has emptied it. A
   * namespace's inode number is given to the next namespace made once it is freed (the kernel
   * takes the lowest free one), so without it a stop() that goes on killing "the processes in
   * mnt:[N]" after its sandbox's last process died could kill a sandbox another test worker was
   * starting meanwhile (seen: a user manager of systemd-manager.test "exited (signal SIGKILL):
   * no output" while starting, twice in CI). Held open, the namespace and its number stay.
   */
  let pin: number | undefined;
  const unpin = (): void => {
    if (pin !== undefined) closeSync(pin);
    pin = undefined;
  };
  // Before the manager answered, its namespace may exist already: read it from the child then.
  const sandboxNamespace = (): string | undefined => {
    if (ns !== undefined) return ns;
    // Only while the child lives: once it is reaped its pid can be another process's (pid_max
    // is 32768 here and wraps), and this would kill that process's whole namespace.
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return undefined;
    const seen = mountNamespace(child.pid);
    if (seen === undefined || seen === mountNamespace('self')) return undefined;
    if (pin === undefined) {
      try {
        pin = openSync(`/proc/${child.pid}/ns/mnt`, 'r');
      } catch {
        return undefined;
      }
      // The child is not reaped yet (its pid is still its own), so this is its namespace, now held.
      if (mountNamespace(child.pid) !== seen) {
        unpin();
        return undefined;
      }
    }
    return seen;
  };
  const killEverything = (target: string | undefined): void => {
    killNamespace(target, child);
    for (const cg of cgroups) killAll(pidsInCgroup(cg));
  };
  const cleanupSync = (): void => {
    killEverything(sandboxNamespace());
    unpin();
    for (const cg of cgroups) removeCgroup(cg);
    rmSync(dir, { recursive: true, force: true });
  };
  // Last resort when a test process ends without stop() (mocha --exit, an uncaught error).
  process.once('exit', cleanupSync);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', cleanupSync);
    const target = sandboxNamespace();
    for (let i = 0; i < 50; i++) {
      killEverything(target);
      const left = (target === undefined ? 0 : pidsInNamespace(target).length) + cgroups.reduce((n, cg) => n + pidsInCgroup(cg).length, 0);
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    unpin();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    // An emptied cgroup can be removed only once the kernel has reaped its last task.
    for (let i = 0; i < 20 && cgroups.some((cg) => existsSync(cg)); i++) {
      for (const cg of cgroups) removeCgroup(cg);
      if (cgroups.some((cg) => existsSync(cg))) await new Promise((r) => setTimeout(r, 100));
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(`systemd user manager ${name} to answer on ${busAddress}`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`manager exited (${child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`}): ${log.slice(-2000) || 'no output'}`);
      const state = await managerState(busAddress);
      // "starting" until default.target is reached; "degraded" when some user unit failed, still usable.
      return state === 'running' || state === 'degraded' ? state : false;
    }, { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 200 });
    ns = sandboxNamespace();
    if (ns === undefined || ns === mountNamespace('self')) {
      throw new Error(`systemd sandbox ${name}: the manager is not in a private mount namespace (${String(ns)})`);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    name, dir, busAddress, unitDir, home, runtimeDir,
    managerPid: child.pid ?? -1,
    exec(command: string, execOptions: { timeoutMs?: number } = {}): Promise<RunResult> {
      return run('nsenter', [`--target=${child.pid ?? -1}`, '--mount', '--', 'bash', '-c', command], { env, timeoutMs: execOptions.timeoutMs ?? 30_000 });
    },
    logs: () => log,
    stop,
  };
}
