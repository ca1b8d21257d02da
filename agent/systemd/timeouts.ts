/**
 * The systemd manager's default deadlines, apart from systemd-manager.ts so that the agent's
 * options can name them without loading dbus-next (~9 MiB resident) at start: the D-Bus
 * connection is made, and dbus-next loaded, when a systemd unit first runs (unit-context.ts).
 */

/** One D-Bus call may take this long. @default 30000 */
export const DEFAULT_SYSTEMD_CALL_TIMEOUT_MS = 30_000;
/** A start/stop/restart job may take this long to finish. @default 300000 (5 min) */
export const DEFAULT_SYSTEMD_JOB_TIMEOUT_MS = 300_000;
