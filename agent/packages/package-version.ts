/**
 * Package names and versions as bundles write them, checked before any package manager sees
 * them (they become argv words, and `-foo` would be read as an option), and compared with
 * what the backend reports as installed.
 */
import { InvalidArgumentError } from '../../shared';

// rpm and Debian package names share this alphabet; a leading letter or digit keeps option-like words out.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/;
// Versions may carry an epoch (2:1.0-3) and Debian's ~ and +.
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+~:^-]*$/;

export function checkPackageName(name: string): void {
  if (!NAME.test(name)) {
    throw new InvalidArgumentError(`invalid package name ${JSON.stringify(name)}: use letters, digits and . _ + ~ - (starting with a letter or digit)`);
  }
}

export function checkPackageVersion(version: string): void {
  if (!VERSION.test(version)) {
    throw new InvalidArgumentError(`invalid package version ${JSON.stringify(version)}: use letters, digits and . _ + ~ : ^ - (e.g. 2.0 or 2.0-1)`);
  }
}

function dropZeroEpoch(v: string): string {
  return v.startsWith('0:') ? v.slice(2) : v;
}

/**
 * Whether the installed full version satisfies the wanted one. A bundle usually names only the
 * upstream version ("2.0") while the backend reports version-release ("2.0-1.el9"), so a wanted
 * version without a release matches any release; an epoch is compared only when the bundle gives one.
 */
export function versionSatisfies(installed: string, wanted: string): boolean {
  const hasEpoch = /^\d+:/.test(wanted);
  const inst = hasEpoch ? (/^\d+:/.test(installed) ? installed : `0:${installed}`) : installed.replace(/^\d+:/, '');
  const want = hasEpoch ? wanted : dropZeroEpoch(wanted);
  return inst === want || inst.startsWith(`${want}-`);
}
