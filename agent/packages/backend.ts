/**
 * What the package unit kind needs from a package manager. Implemented by the dnf, apt and rpm
 * backends here; units/ depends on this interface, not the other way round.
 */

export interface InstalledPackage {
  name: string;
  /** Full version as the backend prints it (rpm: [epoch:]version-release). */
  version: string;
}

/** Output of a package-manager command, bounded (head and tail kept); a unit's UnitOutput. */
export interface PackageOutput {
  text: string;
  truncated: boolean;
}

export interface PackageBackend {
  readonly name: 'dnf' | 'apt' | 'rpm';
  /** undefined when not installed. */
  query(name: string, signal?: AbortSignal): Promise<InstalledPackage | undefined>;
  install(name: string, version: string | undefined, signal?: AbortSignal): Promise<PackageOutput>;
  /** Install from a local .rpm file (rpm and dnf backends). */
  installFile?(path: string, signal?: AbortSignal): Promise<PackageOutput>;
  removePackage(name: string, signal?: AbortSignal): Promise<PackageOutput>;
}
