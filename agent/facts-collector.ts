/**
 * Hardware facts with `systeminformation`, into shared/facts.ts's `Facts`.
 *
 * systeminformation shells out (dmidecode, lsblk, lspci, nvidia-smi...): on real servers some
 * calls take seconds and in containers or VMs some fail or return blanks. Each call is
 * therefore time-boxed on its own and degrades to empty values, so one slow or broken probe
 * never costs the others, and collection never throws.
 *
 * The running agent does not import this module: it collects in a child process
 * (agent/facts-provider.ts, agent/facts-child.ts), so systeminformation never enters its heap.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces as osNetworkInterfaces } from 'node:os';
import * as si from 'systeminformation';
import type { Disk, Facts, Gpu, MemoryModule, NetworkInterface } from '../shared/facts';
import type { Logger } from '../shared/logger';
import { DEFAULT_FACTS_PROBE_TIMEOUT_MS, type FactsProvider } from './facts-provider';

export { DEFAULT_FACTS_PROBE_TIMEOUT_MS, factsFingerprint, primaryAddress, type FactsProvider } from './facts-provider';

export interface FactsCollectorOptions {
  /** Reported hostname (the identity's, which a sandbox may override). */
  hostname: string;
  logger?: Logger;
  /** Per-probe time box (default 10 s). */
  probeTimeoutMs?: number;
  now?: () => Date;
}

/** Resolves with `fallback` when `work` fails or takes longer than `ms`; says which in the log. */
async function timeBoxed<T>(name: string, work: () => Promise<T>, fallback: T, ms: number, logger?: Logger): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    // A hung probe must not keep the process alive at shutdown.
    timer.unref();
  });
  try {
    const result = await Promise.race([work(), timeout]);
    if (result === 'timeout') {
      logger?.warn('facts probe timed out', { probe: name, timeoutMs: ms });
      return fallback;
    }
    return result;
  } catch (err) {
    logger?.warn('facts probe failed', { probe: name, error: err instanceof Error ? err.message : String(err) });
    return fallback;
  } finally {
    clearTimeout(timer);
  }
}

/** systeminformation writes "-" or "Default string" where firmware left a field blank. */
function clean(v: unknown): string {
  if (typeof v !== 'string') return '';
  const s = v.trim();
  if (s === '-' || /^(default string|to be filled by o\.e\.m\.|not specified|none)$/i.test(s)) return '';
  return s;
}

/** The named fields of a systeminformation record, each cleaned (absent → ''), in the order given. */
function cleaned<K extends string>(src: Partial<Record<K, unknown>> | undefined, keys: readonly K[]): Record<K, string> {
  return Object.fromEntries(keys.map((k) => [k, clean(src?.[k])])) as Record<K, string>;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function numOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null;
}

/** Block devices that are not disks a person would count (compressed RAM, loop files). */
const PSEUDO_DISK = /^(zram|loop|ram|sr|fd)\d*/;

export function disksFromBlockDevices(devices: si.Systeminformation.BlockDevicesData[]): Disk[] {
  return devices
    .filter((d) => d.type === 'disk' && !PSEUDO_DISK.test(d.name) && num(d.size) > 0)
    .map((d) => ({
      device: d.device ?? `/dev/${d.name}`,
      name: d.name,
      type: clean(d.physical),
      interfaceType: clean(d.protocol),
      vendor: '',
      model: clean(d.model),
      serial: clean(d.serial),
      sizeBytes: num(d.size),
    }));
}

export function disksFromLayout(layout: si.Systeminformation.DiskLayoutData[]): Disk[] {
  return layout.map((d) => ({
    device: clean(d.device),
    name: clean(d.name),
    type: clean(d.type),
    interfaceType: clean(d.interfaceType),
    vendor: clean(d.vendor),
    model: clean(d.name),
    serial: clean(d.serialNum),
    sizeBytes: num(d.size),
  }));
}

/**
 * systeminformation reports one IPv4 and one IPv6 address per interface; the OS knows all of
 * them (secondary addresses are common on servers), so addresses come from node:os.
 */
export function mergeInterfaces(
  siIfaces: si.Systeminformation.NetworkInterfacesData[],
  osIfaces: ReturnType<typeof osNetworkInterfaces>,
  defaultIface: string,
): NetworkInterface[] {
  return siIfaces
    .filter((n) => !n.internal)
    .map((n) => {
      const addrs = osIfaces[n.iface] ?? [];
      const ipv4 = addrs.filter((a) => a.family === 'IPv4').map((a) => a.address);
      const ipv6 = addrs.filter((a) => a.family === 'IPv6').map((a) => a.address);
      if (ipv4.length === 0 && clean(n.ip4)) ipv4.push(n.ip4);
      if (ipv6.length === 0 && clean(n.ip6)) ipv6.push(n.ip6);
      return {
        iface: n.iface,
        mac: clean(n.mac),
        ipv4,
        ipv6,
        speedMbps: numOrNull(n.speed),
        type: clean(n.type),
        virtual: n.virtual === true,
        operstate: clean(n.operstate),
        isDefault: n.default === true || (defaultIface !== '' && n.iface === defaultIface),
      };
    });
}

/** Collects facts once; every probe is time-boxed and degrades to empty values. */
export async function collectFacts(options: FactsCollectorOptions): Promise<Facts> {
  const ms = options.probeTimeoutMs ?? DEFAULT_FACTS_PROBE_TIMEOUT_MS;
  const log = options.logger;
  const box = <T>(name: string, work: () => Promise<T>, fallback: T): Promise<T> => timeBoxed(name, work, fallback, ms, log);

  // In parallel: the slowest probe bounds the whole collection, not their sum.
  const [system, bios, baseboard, cpu, mem, memLayout, diskLayout, blockDevices, ifaces, defaultIface, os, graphics] = await Promise.all([
    box('system', () => si.system(), undefined),
    box('bios', () => si.bios(), undefined),
    box('baseboard', () => si.baseboard(), undefined),
    box('cpu', () => si.cpu(), undefined),
    box('mem', () => si.mem(), undefined),
    box('memLayout', () => si.memLayout(), []),
    box('diskLayout', () => si.diskLayout(), []),
    box('blockDevices', () => si.blockDevices(), []),
    box('networkInterfaces', async () => {
      const r = await si.networkInterfaces();
      return Array.isArray(r) ? r : [r];
    }, []),
    box('networkInterfaceDefault', () => si.networkInterfaceDefault(), ''),
    box('osInfo', () => si.osInfo(), undefined),
    box('graphics', () => si.graphics(), undefined),
  ]);
  const runtime = await box('runtime', () => collectRuntime(ms), { init: '', systemdVersion: '', virtualization: '', virtualizationType: '' });

  const layout: MemoryModule[] = memLayout.map((m) => ({
    bank: clean(m.bank),
    sizeBytes: num(m.size),
    type: clean(m.type),
    clockSpeedMHz: numOrNull(m.clockSpeed),
    formFactor: clean(m.formFactor),
    manufacturer: clean(m.manufacturer),
    partNum: clean(m.partNum),
    serial: clean(m.serialNum),
  }));

  // VMs and containers often have no diskLayout (no SMART, no by-id links): fall back to lsblk's view.
  const disks = diskLayout.length > 0 ? disksFromLayout(diskLayout) : disksFromBlockDevices(blockDevices);

  const gpus: Gpu[] = (graphics?.controllers ?? []).map((g) => ({
    vendor: clean(g.vendor),
    model: clean(g.model),
    vramMB: numOrNull(g.vram),
    bus: clean(g.bus),
  }));

  return {
    collectedAt: (options.now ?? (() => new Date()))().toISOString(),
    hostname: options.hostname,
    system: {
      ...cleaned(system, ['manufacturer', 'model', 'serial']),
      uuid: clean(system?.uuid).toLowerCase(),
      sku: clean(system?.sku),
      virtual: system?.virtual === true,
    },
    bios: cleaned(bios, ['vendor', 'version', 'releaseDate']),
    baseboard: cleaned(baseboard, ['manufacturer', 'model', 'serial']),
    cpu: {
      ...cleaned(cpu, ['manufacturer', 'brand', 'model']),
      cores: num(cpu?.cores),
      physicalCores: num(cpu?.physicalCores),
      threads: num(cpu?.cores),
      sockets: num(cpu?.processors),
      speedGHz: num(cpu?.speed),
    },
    memory: { totalBytes: num(mem?.total), layout },
    disks,
    network: mergeInterfaces(ifaces, osNetworkInterfaces(), clean(defaultIface)),
    os: cleaned(os, ['platform', 'distro', 'release', 'codename', 'kernel', 'arch']),
    gpus,
    runtime,
  };
}

/** Runs a program; its stdout and exit code ('' and -1 when it cannot run). */
function probe(file: string, args: readonly string[], timeoutMs: number): Promise<{ code: number; stdout: string }> {
  return new Promise((res) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, stdout: String(stdout ?? '') });
    });
  });
}

/**
 * PID 1, systemd's version and the virtualisation, as systemd itself sees them. systeminformation
 * has no container detection (its system().virtual is false in a systemd-nspawn container):
 * `systemd-detect-virt` answers from /run/systemd/container, cgroups and CPUID.
 */
export async function collectRuntime(timeoutMs: number): Promise<NonNullable<Facts['runtime']>> {
  let init = '';
  try {
    init = readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    // not readable (hidepid): left empty
  }
  const [version, virt, container, vm] = await Promise.all([
    probe('systemctl', ['--version'], timeoutMs),
    probe('systemd-detect-virt', [], timeoutMs),
    probe('systemd-detect-virt', ['--container', '--quiet'], timeoutMs),
    probe('systemd-detect-virt', ['--vm', '--quiet'], timeoutMs),
  ]);
  const systemdVersion = version.code === 0 ? (/^systemd (\S+(?: \([^)]*\))?)/.exec(version.stdout)?.[1] ?? '') : '';
  const virtualization = virt.code === -1 ? '' : virt.stdout.trim();
  const virtualizationType = virt.code === -1 ? '' : container.code === 0 ? 'container' : vm.code === 0 ? 'vm' : 'none';
  return { init, systemdVersion, virtualization, virtualizationType };
}

/** A FactsProvider that collects from this machine, in this process, each time it is called (benchmarks, tests). */
export function systemFactsProvider(options: FactsCollectorOptions): FactsProvider {
  return () => collectFacts(options);
}
