/**
 * SystemdManager over D-Bus (dbus-next): the system bus in production, a user manager's session
 * bus under test — one code path, the bus is an option. Raw messages rather than dbus-next's
 * proxy objects: a proxy introspects every unit object first (one more round trip per call),
 * and a benchmark runs thousands of simulated nodes in one process.
 *
 * Jobs (start/stop/restart) are waited for the way systemctl does (src/shared/bus-wait-for-jobs.c):
 * Subscribe, watch Manager.JobRemoved, match the job path. The signal can arrive before the
 * StartUnit reply is processed, so results of recently removed jobs are kept briefly.
 * A lost connection fails what is pending with UnavailableError; the next call reconnects.
 */
import { EventEmitter } from 'node:events';
import { DBusError, Message, MessageType, sessionBus, systemBus, type MessageBus, type Variant } from 'dbus-next';
import {
  CancelledError, ClusterError, DeadlineExceededError, FailedPreconditionError, InternalError, NotFoundError, UnavailableError,
  type Logger,
} from '../../shared';
import type { SystemdManager, SystemdUnitStatus } from './manager';
import { DEFAULT_SYSTEMD_CALL_TIMEOUT_MS, DEFAULT_SYSTEMD_JOB_TIMEOUT_MS } from './timeouts';
import { checkUnitName, isServiceUnit } from './unit-name';

export interface SystemdManagerOptions {
  /** 'system' in production; 'session' reaches a user manager (tests, simulated nodes). */
  bus: 'system' | 'session';
  /** Where unit files are written: /etc/systemd/system, or ~/.config/systemd/user for a user manager. */
  unitDir: string;
  /** Explicit bus address (e.g. `unix:path=/run/user/0/bus`); default DBUS_SESSION_BUS_ADDRESS / DBUS_SYSTEM_BUS_ADDRESS. */
  busAddress?: string;
  logger?: Logger;
  /** How long a method call may take; default 30 s. */
  callTimeoutMs?: number;
  /** How long a start/stop/restart job may take; default 5 minutes (systemd's own default start timeout is 90 s). */
  jobTimeoutMs?: number;
}

const DEST = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const SERVICE = 'org.freedesktop.systemd1.Service';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const JOB_REMOVED_MATCH = `type='signal',sender='${DEST}',path='${MANAGER_PATH}',interface='${MANAGER}',member='JobRemoved'`;
/** Results kept for jobs nobody waits for yet; only the last few matter (see header). */
const FINISHED_KEPT = 256;

interface Connection {
  bus: MessageBus;
  dead: boolean;
  /** Rejects (with UnavailableError) when the connection is lost; raced against every call. */
  lost: Promise<never>;
  lose(why: string): void;
  /** Job path → who waits for its JobRemoved; all are failed when the connection is lost. */
  waiters: Map<string, { done(result: string): void; fail(err: Error): void }>;
  finished: Map<string, string>;
}

interface CallSpec {
  /** Default org.freedesktop.systemd1. */
  destination?: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

/** dbus-next's MessageBus does not re-emit its stream's 'end'; the connection object does. */
function connectionEvents(bus: MessageBus): EventEmitter | undefined {
  const conn = (bus as unknown as { _connection?: unknown })._connection;
  return conn instanceof EventEmitter ? conn : undefined;
}

/** The properties read here are all strings ('s'); anything else reads as ''. */
function propertyValue(reply: Message): string {
  const v = reply.body[0] as Variant<unknown> | undefined;
  return typeof v?.value === 'string' ? v.value : '';
}

export { DEFAULT_SYSTEMD_CALL_TIMEOUT_MS, DEFAULT_SYSTEMD_JOB_TIMEOUT_MS } from './timeouts';

export function createSystemdManager(options: SystemdManagerOptions): SystemdManager {
  const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_SYSTEMD_CALL_TIMEOUT_MS;
  const jobTimeoutMs = options.jobTimeoutMs ?? DEFAULT_SYSTEMD_JOB_TIMEOUT_MS;
  const where = options.bus === 'system'
    ? `the system bus${options.busAddress ? ` (${options.busAddress})` : ''}`
    : `the session bus ${options.busAddress ?? process.env.DBUS_SESSION_BUS_ADDRESS ?? '(no DBUS_SESSION_BUS_ADDRESS)'}`;
  const log = options.logger?.child({ component: 'systemd', bus: options.bus });
  let current: Promise<Connection> | undefined;
  let closed = false;

  const rawCall = (c: Connection, spec: CallSpec, timeoutMs = callTimeoutMs): Promise<Message> => {
    if (c.dead) return c.lost;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceededError(`systemd did not answer ${spec.member} within ${timeoutMs} ms on ${where}`)), timeoutMs);
    });
    let reply: Promise<Message>;
    try {
      reply = c.bus.call(new Message({ ...spec, destination: spec.destination ?? DEST })).then((m) => {
        if (!m) throw new InternalError(`systemd sent no reply to ${spec.member}`);
        return m;
      });
    } catch (err) {
      // dbus-next throws synchronously when the stream is already closed.
      c.lose(err instanceof Error ? err.message : String(err));
      reply = c.lost;
    }
    return Promise.race([reply, c.lost, timeout]).finally(() => clearTimeout(timer));
  };

  const open = async (): Promise<Connection> => {
    let bus: MessageBus;
    try {
      bus = options.bus === 'system'
        ? systemBus()
        : sessionBus(options.busAddress ? { busAddress: options.busAddress } : undefined);
    } catch (err) {
      throw new UnavailableError(`cannot connect to systemd on ${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
    let fail: (err: Error) => void = () => undefined;
    const lost = new Promise<never>((_, reject) => {
      fail = reject;
    });
    lost.catch(() => undefined); // observed through the races; never unhandled on its own
    const c: Connection = {
      bus, dead: false, lost, waiters: new Map(), finished: new Map(),
      lose(why: string): void {
        if (c.dead) return;
        c.dead = true;
        if (closed) log?.debug('systemd bus connection closed', { why });
        else log?.warn('systemd bus connection lost', { why });
        const err = new UnavailableError(`lost the connection to systemd on ${where}: ${why}`);
        fail(err);
        for (const w of [...c.waiters.values()]) w.fail(err);
        c.waiters.clear();
        try {
          bus.disconnect();
        } catch {
          // Already closed.
        }
      },
    };
    // Without an 'error' listener a refused socket would throw out of the event loop.
    bus.on('error', (err: unknown) => c.lose(err instanceof Error ? err.message : String(err)));
    connectionEvents(bus)?.on('end', () => c.lose('the bus closed the connection'));
    bus.on('message', (msg: Message) => {
      if (msg.type !== MessageType.SIGNAL || msg.member !== 'JobRemoved' || msg.interface !== MANAGER || msg.path !== MANAGER_PATH) return;
      const [, job, , result] = msg.body as [number, string, string, string];
      const waiter = c.waiters.get(job);
      if (waiter) {
        c.waiters.delete(job);
        waiter.done(result);
        return;
      }
      c.finished.set(job, result);
      if (c.finished.size > FINISHED_KEPT) {
        const oldest = c.finished.keys().next();
        if (!oldest.done) c.finished.delete(oldest.value);
      }
    });
    try {
      // AddMatch before Subscribe: no JobRemoved may slip between the two.
      await rawCall(c, { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [JOB_REMOVED_MATCH] });
      await rawCall(c, { path: MANAGER_PATH, interface: MANAGER, member: 'Subscribe' });
    } catch (err) {
      c.lose('setup failed');
      throw mapError(err, 'connect', undefined);
    }
    log?.debug('connected to systemd', { where });
    return c;
  };

  const connection = async (): Promise<Connection> => {
    if (closed) throw new FailedPreconditionError('systemd manager is closed');
    if (current) {
      const c = await current.catch(() => undefined);
      if (c && !c.dead) return c;
    }
    const attempt = open();
    current = attempt;
    attempt.catch(() => {
      if (current === attempt) current = undefined;
    });
    return attempt;
  };

  function mapError(err: unknown, action: string, unit: string | undefined): Error {
    if (err instanceof ClusterError) return err;
    if (err instanceof DBusError) {
      const name = err.type;
      const text = err.text;
      if (unit && (name === 'org.freedesktop.systemd1.NoSuchUnit' || name === 'org.freedesktop.DBus.Error.FileNotFound')) {
        return new NotFoundError(`systemd unit ${unit} not found`);
      }
      if (name === 'org.freedesktop.DBus.Error.ServiceUnknown' || name === 'org.freedesktop.DBus.Error.NoReply' || name === 'org.freedesktop.DBus.Error.Disconnected') {
        return new UnavailableError(`systemd is not reachable on ${where}: ${text}`);
      }
      if (name.startsWith('org.freedesktop.systemd1.')) {
        return new FailedPreconditionError(`systemd refused to ${action}${unit ? ` ${unit}` : ''}: ${text}`);
      }
      return new InternalError(`systemd ${action}${unit ? ` ${unit}` : ''} failed: ${name}: ${text}`);
    }
    const message = err instanceof Error ? err.message : String(err);
    return new UnavailableError(`systemd ${action}${unit ? ` ${unit}` : ''} on ${where}: ${message}`);
  }

  const call = async (spec: CallSpec, action: string, unit?: string, timeoutMs?: number): Promise<Message> => {
    const c = await connection();
    try {
      return await rawCall(c, spec, timeoutMs);
    } catch (err) {
      throw mapError(err, action, unit);
    }
  };

  const getProperty = async (path: string, iface: string, prop: string, unit: string): Promise<string> =>
    propertyValue(await call({ path, interface: PROPERTIES, member: 'Get', signature: 'ss', body: [iface, prop] }, `read ${prop} of`, unit));

  const waitForJob = (c: Connection, job: string, verb: string, unit: string, signal?: AbortSignal): Promise<string> => {
    const done = c.finished.get(job);
    if (done !== undefined) {
      c.finished.delete(job);
      return Promise.resolve(done);
    }
    return new Promise<string>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        c.waiters.delete(job);
      };
      const cancelJob = (): void => {
        // Best effort: a job that finished meanwhile has no object any more.
        rawCall(c, { path: job, interface: 'org.freedesktop.systemd1.Job', member: 'Cancel' }).catch(() => undefined);
      };
      const onAbort = (): void => {
        cleanup();
        cancelJob();
        // Cancelling a start job that already runs leaves the unit "activating" with its
        // processes alive (seen with a oneshot ExecStart); a cancelled start must not leave a
        // half-started service behind, so stop it as well (not waited for).
        if (verb !== 'stop') {
          rawCall(c, { path: MANAGER_PATH, interface: MANAGER, member: 'StopUnit', signature: 'ss', body: [unit, 'replace'] }).catch(() => undefined);
        }
        reject(new CancelledError(`cancelled while waiting for systemd to ${verb} ${unit}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        cancelJob();
        reject(new DeadlineExceededError(`systemd did not finish ${verb} ${unit} within ${jobTimeoutMs} ms`));
      }, jobTimeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      c.waiters.set(job, {
        done(result: string): void {
          cleanup();
          resolve(result);
        },
        fail(err: Error): void {
          cleanup();
          reject(err);
        },
      });
      if (c.dead) c.lost.catch((err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
    });
  };

  const runJob = async (member: 'StartUnit' | 'StopUnit' | 'RestartUnit', verb: string, unit: string, signal?: AbortSignal): Promise<string> => {
    checkUnitName(unit);
    if (signal?.aborted) throw new CancelledError(`cancelled before systemd could ${verb} ${unit}`);
    const c = await connection();
    let reply: Message;
    try {
      reply = await rawCall(c, { path: MANAGER_PATH, interface: MANAGER, member, signature: 'ss', body: [unit, 'replace'] });
    } catch (err) {
      throw mapError(err, verb, unit);
    }
    const job = String(reply.body[0]);
    const result = await waitForJob(c, job, verb, unit, signal);
    log?.debug('systemd job finished', { unit, verb, job, result });
    return result;
  };

  const reload = async (): Promise<void> => {
    // Reload returns once the manager has re-read every unit file; it can take a while on a busy host.
    await call({ path: MANAGER_PATH, interface: MANAGER, member: 'Reload' }, 'reload', undefined, Math.max(callTimeoutMs, 90_000));
  };

  return {
    unitDir: options.unitDir,

    async status(unit: string): Promise<SystemdUnitStatus> {
      checkUnitName(unit);
      // LoadUnit, unlike GetUnit, also answers for units not loaded yet (and for unknown ones: LoadState not-found).
      const path = String((await call({ path: MANAGER_PATH, interface: MANAGER, member: 'LoadUnit', signature: 's', body: [unit] }, 'load', unit)).body[0]);
      const [loadState, activeState, subState, unitFileState] = await Promise.all(
        ['LoadState', 'ActiveState', 'SubState', 'UnitFileState'].map((p) => getProperty(path, UNIT, p, unit)),
      );
      const result = isServiceUnit(unit) && loadState === 'loaded' ? await getProperty(path, SERVICE, 'Result', unit) : '';
      return { name: unit, loadState, activeState, subState, unitFileState, result };
    },

    reload,

    start: (unit, signal) => runJob('StartUnit', 'start', unit, signal),
    stop: (unit, signal) => runJob('StopUnit', 'stop', unit, signal),
    restart: (unit, signal) => runJob('RestartUnit', 'restart', unit, signal),

    async enable(unit: string): Promise<void> {
      checkUnitName(unit);
      // runtime=false: persistent (/etc, not /run); force=true: replace stale symlinks.
      await call({ path: MANAGER_PATH, interface: MANAGER, member: 'EnableUnitFiles', signature: 'asbb', body: [[unit], false, true] }, 'enable', unit);
      await reload();
    },

    async disable(unit: string): Promise<void> {
      checkUnitName(unit);
      await call({ path: MANAGER_PATH, interface: MANAGER, member: 'DisableUnitFiles', signature: 'asb', body: [[unit], false] }, 'disable', unit);
      await reload();
    },

    close(): void {
      closed = true;
      const c = current;
      current = undefined;
      void c?.then((conn) => conn.lose('closed by the agent'), () => undefined);
    },
  };
}
