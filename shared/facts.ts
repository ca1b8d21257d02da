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

/**
 * The shape of Facts at run time, for checking `{{ facts.PATH }}` in a bundle when it is pushed
 * (shared/bundle/template-references.ts): 'scalar' is a text, number or boolean field; an array
 * holds its item's shape (indexed by number in a path: facts.disks.0.sizeBytes). Keep it in step
 * with the interfaces above (test/bundle/template-references.test.ts compares it with real facts).
 */
export type FactShape = 'scalar' | { readonly [field: string]: FactShape } | readonly [FactShape];

const MEMORY_MODULE: FactShape = {
  bank: 'scalar', sizeBytes: 'scalar', type: 'scalar', clockSpeedMHz: 'scalar', formFactor: 'scalar', manufacturer: 'scalar', partNum: 'scalar', serial: 'scalar',
};
const DISK: FactShape = {
  device: 'scalar', name: 'scalar', type: 'scalar', interfaceType: 'scalar', vendor: 'scalar', model: 'scalar', serial: 'scalar', sizeBytes: 'scalar',
};
const NIC: FactShape = {
  iface: 'scalar', mac: 'scalar', ipv4: ['scalar'], ipv6: ['scalar'], speedMbps: 'scalar', type: 'scalar', virtual: 'scalar', operstate: 'scalar', isDefault: 'scalar',
};

export const FACTS_SHAPE: FactShape = {
  collectedAt: 'scalar',
  hostname: 'scalar',
  system: { manufacturer: 'scalar', model: 'scalar', serial: 'scalar', uuid: 'scalar', sku: 'scalar', virtual: 'scalar' },
  bios: { vendor: 'scalar', version: 'scalar', releaseDate: 'scalar' },
  baseboard: { manufacturer: 'scalar', model: 'scalar', serial: 'scalar' },
  cpu: { manufacturer: 'scalar', brand: 'scalar', model: 'scalar', cores: 'scalar', physicalCores: 'scalar', threads: 'scalar', sockets: 'scalar', speedGHz: 'scalar' },
  memory: { totalBytes: 'scalar', layout: [MEMORY_MODULE] },
  disks: [DISK],
  network: [NIC],
  os: { platform: 'scalar', distro: 'scalar', release: 'scalar', codename: 'scalar', kernel: 'scalar', arch: 'scalar' },
  gpus: [{ vendor: 'scalar', model: 'scalar', vramMB: 'scalar', bus: 'scalar' }],
};

/** Why `path` (after "facts.") names no text or number field of FACTS_SHAPE, or undefined when it does. */
export function factPathProblem(path: readonly string[], shape: FactShape = FACTS_SHAPE): string | undefined {
  let cur: FactShape = shape;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const at = ['facts', ...path.slice(0, i)].join('.');
    if (cur === 'scalar') return `${at} is a value, it has no field ${seg}`;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg)) return `${at} is a list: index it with a number (${at}.0)`;
      cur = (cur as readonly [FactShape])[0];
      continue;
    }
    const fields = cur as { readonly [field: string]: FactShape };
    if (!Object.prototype.hasOwnProperty.call(fields, seg)) return `${at} has no field ${seg} (fields: ${Object.keys(fields).join(', ')})`;
    cur = fields[seg];
  }
  if (cur === 'scalar') return undefined;
  const at = ['facts', ...path].join('.');
  return Array.isArray(cur) ? `${at} is a list; name one item's field (${at}.0...)` : `${at} is an object; name one of its fields (${Object.keys(cur).join(', ')})`;
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
