/**
 * What of a node's facts an operator cares to see change (issue 12 §6): disks, memory, CPU,
 * interfaces, GPUs, OS, system identity. The leader keeps this digest on the node record and
 * writes a `node.facts-changed` event naming the difference when new facts differ from it. The
 * volatile parts of the facts (collectedAt, addresses' order, operstate) are left out so that
 * an agent re-sending the same hardware is no change.
 */
import type { Facts } from './facts';

export interface FactsDigest {
  /** "sdb 500 GB", sorted. */
  disks: string[];
  memoryBytes: number;
  /** "Xeon, 2 cores / 4 threads". */
  cpu: string;
  /** "eth0 52:54:00:12:34:56", sorted. */
  interfaces: string[];
  gpus: string[];
  /** "Rocky Linux 9.3, kernel 5.14". */
  os: string;
  /** "Dell Inc. R650 serial S". */
  system: string;
}

const GIB = 1024 ** 3;

function bytes(n: number): string {
  if (n >= GIB) return `${Math.round((n / GIB) * 10) / 10} GiB`;
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MiB`;
  return `${n} B`;
}

export function factsDigest(f: Partial<Facts>): FactsDigest {
  const arr = <T>(v: T[] | undefined): T[] => (Array.isArray(v) ? v : []);
  return {
    disks: arr(f.disks).map((d) => `${d.name || d.device} ${bytes(d.sizeBytes || 0)}`).sort(),
    memoryBytes: f.memory?.totalBytes ?? 0,
    cpu: f.cpu ? `${f.cpu.brand}, ${f.cpu.physicalCores} cores / ${f.cpu.threads} threads` : '',
    interfaces: arr(f.network).map((n) => `${n.iface} ${n.mac}`.trim()).sort(),
    gpus: arr(f.gpus).map((g) => `${g.vendor} ${g.model}`.trim()).sort(),
    os: f.os ? `${f.os.distro} ${f.os.release}, kernel ${f.os.kernel}`.trim() : '',
    system: f.system ? `${f.system.manufacturer} ${f.system.model} serial ${f.system.serial}`.trim() : '',
  };
}

/** "+sdb 500 GiB, -sda 1 GiB" for two sorted lists; '' when equal. */
function listChange(before: readonly string[], after: readonly string[]): string {
  const added = after.filter((x) => !before.includes(x)).map((x) => `+${x}`);
  const removed = before.filter((x) => !after.includes(x)).map((x) => `-${x}`);
  return [...added, ...removed].join(', ');
}

/**
 * What changed, for an event message: "disks: +sdb 500 GiB; memory 16 GiB → 32 GiB"; '' when
 * the digests are the same.
 */
export function describeFactsChange(before: FactsDigest, after: FactsDigest): string {
  const parts: string[] = [];
  const list = (name: string, b: readonly string[], a: readonly string[]): void => {
    const c = listChange(b ?? [], a);
    if (c) parts.push(`${name}: ${c}`);
  };
  const scalar = (name: string, b: string, a: string): void => {
    if ((b ?? '') !== a) parts.push(`${name} ${b || '(none)'} → ${a || '(none)'}`);
  };
  list('disks', before.disks, after.disks);
  if ((before.memoryBytes ?? 0) !== after.memoryBytes) parts.push(`memory ${bytes(before.memoryBytes ?? 0)} → ${bytes(after.memoryBytes)}`);
  scalar('cpu', before.cpu, after.cpu);
  list('interfaces', before.interfaces, after.interfaces);
  list('gpus', before.gpus, after.gpus);
  scalar('os', before.os, after.os);
  scalar('system', before.system, after.system);
  return parts.join('; ');
}

/** A digest for the first event of a node ("disks sda 1 GiB; memory 16 GiB; ..."). */
export function describeFacts(d: FactsDigest): string {
  return [
    `disks ${d.disks.join(', ') || '(none)'}`, `memory ${bytes(d.memoryBytes)}`, d.cpu && `cpu ${d.cpu}`,
    `interfaces ${d.interfaces.join(', ') || '(none)'}`, d.os && `os ${d.os}`,
  ].filter(Boolean).join('; ');
}
