/**
 * What the systemd unit kind needs from a systemd manager. Implemented over D-Bus by
 * systemd-manager.ts; units/ depends on this interface, not the other way round.
 */

export interface SystemdUnitStatus {
  name: string;
  /** LoadState: loaded | not-found | error | masked */
  loadState: string;
  /** ActiveState: active | inactive | failed | activating | deactivating | reloading */
  activeState: string;
  subState: string;
  /** UnitFileState: enabled | disabled | static | masked | '' when not found */
  unitFileState: string;
  /** Result of the last run for services (success, exit-code, signal, timeout, ...). */
  result: string;
}

export interface SystemdManager {
  /** Directory where unit files are written (/etc/systemd/system, or ~/.config/systemd/user). */
  readonly unitDir: string;
  status(unit: string): Promise<SystemdUnitStatus>;
  /** daemon-reload (after unit files changed). */
  reload(): Promise<void>;
  /** Start/stop/restart and wait for the job to finish; resolves with the job result ("done", "failed", ...). */
  start(unit: string, signal?: AbortSignal): Promise<string>;
  stop(unit: string, signal?: AbortSignal): Promise<string>;
  restart(unit: string, signal?: AbortSignal): Promise<string>;
  enable(unit: string): Promise<void>;
  disable(unit: string): Promise<void>;
  close(): void;
}
