/** Shared fixtures of the trust tests: a CA, certificates per role, a drivable clock. */
import { ClusterCa, type KeyAndCertificate } from '../../shared/pki/cluster-ca';
import type { Role } from '../../shared/pki/roles';
import { ManualClock } from '../../shared/clock';

export async function newCa(): Promise<ClusterCa> {
  return (await ClusterCa.create()).ca;
}

export async function identity(ca: ClusterCa, role: Role, name: string, extra: { validityMs?: number; now?: Date } = {}): Promise<KeyAndCertificate & { serial: string }> {
  return ca.issueKeyAndCertificate({ role, name, ...extra });
}

/** A clock the test moves by hand, starting now (certificates are checked against real time too). */
export function manualClock(): ManualClock {
  return new ManualClock(Date.now());
}
