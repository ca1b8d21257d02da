/** Package backends for package units: what the agent's composition root may use. */
export { createPackageBackend, type PackageBackendOptions } from './package-backend';
export { detectPackageBackend, backendForOsRelease, parseOsRelease, isPackageBackendChoice, type PackageBackendName, type PackageBackendChoice } from './detect-backend';
export { createDnfBackend, type DnfBackendOptions } from './dnf-backend';
export { createAptBackend, type AptBackendOptions } from './apt-backend';
export { createRpmBackend, type RpmBackendOptions } from './rpm-backend';
export { readRpmFile } from './rpm-database';
export { versionSatisfies, checkPackageName, checkPackageVersion } from './package-version';
export { runCommand, BoundedText, type RunCommandOptions, type CommandResult } from './run-command';
