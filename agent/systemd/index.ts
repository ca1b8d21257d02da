/** systemd over D-Bus: what the agent's composition root and the systemd unit may use. */
export { createSystemdManager, type SystemdManagerOptions } from './systemd-manager';
export { checkUnitName, isValidUnitName, isServiceUnit } from './unit-name';
