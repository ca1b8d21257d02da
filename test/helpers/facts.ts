/**
 * The facts an in-process test agent reports: a small machine that every field the coordinator
 * reads (hostname, system, cpu, memory, os) is set on, so templates and selectors have values.
 */
import type { Facts } from '../../shared/facts';

export const SANDBOX_FACTS = {
  collectedAt: '2024-01-01T00:00:00.000Z', hostname: 'sandbox',
  system: { manufacturer: 'Dell Inc.', model: 'R650', serial: 'S', uuid: 'u', sku: '', virtual: false },
  cpu: { manufacturer: 'Intel', brand: 'Xeon', model: '1', cores: 4, physicalCores: 2, threads: 4, sockets: 1, speedGHz: 2 },
  memory: { totalBytes: 1024, layout: [] }, disks: [], network: [], gpus: [],
  os: { platform: 'linux', distro: 'Rocky Linux', release: '9.3', codename: '', kernel: '5.14', arch: 'x64' },
} as unknown as Facts;
