/**
 * Which package manager a node uses: configured (`--package-backend dnf|apt|rpm`) or detected
 * (`auto`) from the node root's os-release, the file every systemd-era distribution ships.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, FailedPreconditionError } from '../../shared';

export type PackageBackendName = 'dnf' | 'apt' | 'rpm';
export type PackageBackendChoice = PackageBackendName | 'auto';

const RPM_FAMILY = new Set(['rhel', 'fedora', 'centos', 'rocky', 'almalinux', 'ol', 'amzn', 'suse', 'opensuse', 'sles', 'mageia']);
const DEB_FAMILY = new Set(['debian', 'ubuntu', 'raspbian', 'linuxmint', 'pop']);

/** Parses os-release (KEY=value lines, values optionally quoted). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    out[line.slice(0, eq)] = value.replace(/\\(["'$`\\])/g, '$1');
  }
  return out;
}

/** Pure: the backend for an os-release text, or undefined when neither family is named. */
export function backendForOsRelease(text: string): PackageBackendName | undefined {
  const os = parseOsRelease(text);
  const ids = [os.ID ?? '', ...(os.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase()).filter((s) => s !== '');
  // ID first, then ID_LIKE in order: a derivative names its closest parent first.
  for (const id of ids) {
    if (RPM_FAMILY.has(id)) return 'dnf';
    if (DEB_FAMILY.has(id)) return 'apt';
  }
  return undefined;
}

export function isPackageBackendChoice(s: string): s is PackageBackendChoice {
  return s === 'auto' || s === 'dnf' || s === 'apt' || s === 'rpm';
}

/** Resolves `auto` by reading ROOT/etc/os-release (then ROOT/usr/lib/os-release). */
export async function detectPackageBackend(choice: string, root = '/'): Promise<PackageBackendName> {
  if (!isPackageBackendChoice(choice)) {
    throw new InvalidArgumentError(`unknown package backend ${JSON.stringify(choice)}: use auto, dnf, apt or rpm`);
  }
  if (choice !== 'auto') return choice;
  for (const rel of ['etc/os-release', 'usr/lib/os-release']) {
    const path = join(root, rel);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      continue;
    }
    const found = backendForOsRelease(text);
    if (found) return found;
    const os = parseOsRelease(text);
    throw new FailedPreconditionError(
      `cannot pick a package backend from ${path} (ID=${os.ID ?? '?'}, ID_LIKE=${os.ID_LIKE ?? ''}): set --package-backend dnf, apt or rpm`,
    );
  }
  throw new FailedPreconditionError(`cannot pick a package backend: no os-release under ${root}: set --package-backend dnf, apt or rpm`);
}
