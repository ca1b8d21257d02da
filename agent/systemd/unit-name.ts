/**
 * systemd unit names as bundles write them. Checked before they reach D-Bus or become a file
 * name in the unit directory (a name with a slash would write outside it).
 */
import { InvalidArgumentError } from '../../shared';

const UNIT_TYPES = ['service', 'socket', 'target', 'timer', 'path', 'mount', 'automount', 'swap', 'slice', 'scope', 'device'];
// systemd's own alphabet (unit_name_is_valid): ASCII letters, digits, ":-_.\" and one "@" for templates;
// stricter on the first character (no "-" or "."), so no name reads like an option or a hidden file.
const UNIT_NAME = new RegExp(`^[A-Za-z0-9:_\\\\][A-Za-z0-9:_.\\\\-]*(@[A-Za-z0-9:_.\\\\-]*)?\\.(${UNIT_TYPES.join('|')})$`);

export function isValidUnitName(name: string): boolean {
  return name.length <= 255 && UNIT_NAME.test(name);
}

export function checkUnitName(name: string): void {
  if (!isValidUnitName(name)) {
    throw new InvalidArgumentError(
      `invalid systemd unit name ${JSON.stringify(name)}: expected NAME.TYPE (e.g. chronyd.service), TYPE one of ${UNIT_TYPES.join(', ')}`,
    );
  }
}

/** Unit kinds whose objects carry org.freedesktop.systemd1.Service properties (Result, MainPID). */
export function isServiceUnit(name: string): boolean {
  return name.endsWith('.service');
}
