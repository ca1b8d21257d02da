/**
 * Bundle and unit spec types (../../../shared/DESIGN.md, "Config units and bundles").
 * The JSON Schema in shared/bundle/bundle.schema.json describes the same shapes for editors and
 * for validation; keep the two in step (a test checks every example bundle against both).
 */

/** Octal mode text such as "0644". */
export type ModeString = string;

interface UnitBase {
  /** Unique within the bundle; used by restartWhenChanged and in reports. */
  id: string;
  /** Per-unit timeout (ms after compile; YAML may say "30s"). */
  timeoutMs?: number;
}

export interface FileUnitSpec extends UnitBase {
  kind: 'file';
  path: string;
  /** Inline content (templated). Exactly one of content / source. */
  content?: string;
  /** Name of a distributed file (files/<name> in etcd), resolved by the coordinator before sending. */
  source?: string;
  /**
   * `content` is a secret (docs/secrets.md): stored as an envelope, opened by the leader for the
   * command only, not templated, written 0600 unless `mode` is given, redacted from all output.
   * The leader also sets it on a unit whose `source` is a secret, so the agent knows.
   */
  secret?: boolean;
  mode?: ModeString;
  owner?: string;
  group?: string;
  /** present (default) or absent. */
  ensure?: 'present' | 'absent';
}

export interface DirectoryUnitSpec extends UnitBase {
  kind: 'directory';
  path: string;
  mode?: ModeString;
  owner?: string;
  group?: string;
  ensure?: 'present' | 'absent';
}

export interface PackageUnitSpec extends UnitBase {
  kind: 'package';
  name: string;
  version?: string;
  ensure?: 'present' | 'absent';
  /** A local .rpm file path to install from (backend rpm-file). */
  rpm?: string;
}

export interface SystemdUnitSpec extends UnitBase {
  kind: 'systemd';
  /** e.g. chronyd.service */
  unit: string;
  /** Unit file content (templated); written to the unit directory when given. */
  content?: string;
  enabled?: boolean;
  state?: 'running' | 'stopped';
  /** Restart this unit when any of these unit ids changed earlier in the same run. */
  restartWhenChanged?: string[];
}

export interface CommandUnitSpec extends UnitBase {
  kind: 'command';
  run: string;
  /** Skip when this path exists (under the node root). */
  creates?: string;
  /** Skip when this command exits 0. */
  unless?: string;
  /** Run only when this command exits 0. */
  onlyIf?: string;
  /** Removal: run this command (in reverse order at decommission). */
  undo?: string;
  env?: Record<string, string>;
  cwd?: string;
}

export type UnitSpec = FileUnitSpec | DirectoryUnitSpec | PackageUnitSpec | SystemdUnitSpec | CommandUnitSpec;
export type UnitKind = UnitSpec['kind'];

export type VerifyProbe =
  | { id: string; command: string; expectExit?: number; timeoutMs?: number }
  | { id: string; tcp: string; timeoutMs?: number }
  | { id: string; http: string; expectStatus?: number; timeoutMs?: number }
  | { id: string; systemdActive: string; timeoutMs?: number };

export interface Bundle {
  name: string;
  /** Versions are strings ("3", "1.2.0"); YAML numbers are converted. */
  version: string;
  description?: string;
  variables: Record<string, string | number | boolean>;
  units: UnitSpec[];
  verify: VerifyProbe[];
}
