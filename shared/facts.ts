/**
 * Hardware facts: what the agent reports to `facts/<id>` (collected with systeminformation in
 * agent/facts-collector.ts) and the summary the coordinator shows in node lists.
 */
import type { FactsSummary } from '../generated/cluster/v1/FactsSummary';

export interface MemoryModule {
  bank: string;
  sizeBytes: number;
  type: string;
  clockSpeedMHz: number | null;
  formFactor: string;
  manufacturer: string;
  partNum: string;
  serial: string;
}

export interface Disk {
  device: string;
  name: string;
  type: string;
  interfaceType: string;
  vendor: string;
  model: string;
  serial: string;
  sizeBytes: number;
}

export interface NetworkInterface {
  iface: string;
  mac: string;
  ipv4: string[];
  ipv6: string[];
  speedMbps: number | null;
  type: string;
  virtual: boolean;
  operstate: string;
  isDefault: boolean;
}

export interface Gpu {
  vendor: string;
  model: string;
  vramMB: number | null;
  bus: string;
}

export interface Facts {
  collectedAt: string;
  hostname: string;
  system: { manufacturer: string; model: string; serial: string; uuid: string; sku: string; virtual: boolean };
  bios: { vendor: string; version: string; releaseDate: string };
  baseboard: { manufacturer: string; model: string; serial: string };
  cpu: { manufacturer: string; brand: string; model: string; cores: number; physicalCores: number; threads: number; sockets: number; speedGHz: number };
  memory: { totalBytes: number; layout: MemoryModule[] };
  disks: Disk[];
  network: NetworkInterface[];
  os: { platform: string; distro: string; release: string; codename: string; kernel: string; arch: string };
  gpus: Gpu[];
  /**
   * What runs the machine: PID 1's name (`systemd`), systemd's version, and
   * `systemd-detect-virt`'s answer (`systemd-nspawn`, `kvm`, `none`) with its class
   * (`container`, `vm`, `none`). Absent from agents older than this field.
   */
  runtime?: { init: string; systemdVersion: string; virtualization: string; virtualizationType: string };
}

/** The fields shown in `clusterctl nodes`; tolerant of partial facts from older agents. */
export function summariseFacts(f: Partial<Facts> | undefined): FactsSummary {
  if (!f) return {};
  const disks = f.disks ?? [];
  const nics = f.network ?? [];
  const primary = nics.find((n) => n.isDefault) ?? nics.find((n) => !n.virtual && n.ipv4.length > 0) ?? nics[0];
  return {
    manufacturer: f.system?.manufacturer ?? '',
    model: f.system?.model ?? '',
    serial: f.system?.serial ?? '',
    systemUuid: f.system?.uuid ?? '',
    cpuModel: f.cpu?.brand ?? '',
    cpuCores: f.cpu?.physicalCores ?? 0,
    cpuThreads: f.cpu?.threads ?? f.cpu?.cores ?? 0,
    memoryBytes: String(f.memory?.totalBytes ?? 0),
    diskCount: disks.length,
    diskBytes: String(disks.reduce((sum, d) => sum + (d.sizeBytes || 0), 0)),
    os: f.os ? `${f.os.distro} ${f.os.release}`.trim() : '',
    kernel: f.os?.kernel ?? '',
    primaryMac: primary?.mac ?? '',
    primaryIp: primary?.ipv4[0] ?? '',
    gpuCount: (f.gpus ?? []).length,
    hostname: f.hostname ?? '',
  };
}
