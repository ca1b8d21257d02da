import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import type { Systeminformation } from 'systeminformation';
import type { Facts, NetworkInterface } from '../../shared/facts';
import { collectFacts, collectRuntime, disksFromBlockDevices, factsFingerprint, mergeInterfaces, primaryAddress } from '../../agent/facts-collector';

function blockDevice(name: string, type: string, size: number, extra: Partial<Systeminformation.BlockDevicesData> = {}): Systeminformation.BlockDevicesData {
  return { name, identifier: name, type, fsType: '', mount: '', size, physical: 'HDD', uuid: '', label: '', model: '', serial: '', removable: false, protocol: '', ...extra };
}

function nic(iface: string, extra: Partial<Systeminformation.NetworkInterfacesData> = {}): Systeminformation.NetworkInterfacesData {
  return {
    iface, ifaceName: iface, default: false, ip4: '', ip4subnet: '', ip6: '', ip6subnet: '', mac: '52:54:00:00:00:01', internal: false, virtual: false,
    operstate: 'up', type: 'wired', duplex: 'full', mtu: 1500, speed: 1000, dhcp: false, dnsSuffix: '', ieee8021xAuth: '', ieee8021xState: '', carrierChanges: 0, ...extra,
  };
}

function addr(address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo {
  return family === 'IPv4'
    ? { address, family, netmask: '255.255.255.0', mac: '', internal: false, cidr: null }
    : { address, family, netmask: 'ffff::', mac: '', internal: false, cidr: null, scopeid: 0 };
}

const BASE: Facts = {
  collectedAt: '', hostname: 'h',
  system: { manufacturer: '', model: '', serial: '', uuid: '', sku: '', virtual: false },
  bios: { vendor: '', version: '', releaseDate: '' },
  baseboard: { manufacturer: '', model: '', serial: '' },
  cpu: { manufacturer: '', brand: '', model: '', cores: 1, physicalCores: 1, threads: 1, sockets: 1, speedGHz: 0 },
  memory: { totalBytes: 1, layout: [] },
  disks: [], network: [],
  os: { platform: 'linux', distro: '', release: '', codename: '', kernel: '', arch: '' },
  gpus: [],
};

describe('agent facts collector', () => {
  it('block devices stand in for an empty diskLayout, without pseudo disks', () => {
    const disks = disksFromBlockDevices([
      blockDevice('vda', 'disk', 274877906944, { device: '/dev/vda', model: 'QEMU HARDDISK', serial: '-' }),
      blockDevice('vda1', 'part', 1000),
      blockDevice('zram0', 'disk', 0),
      blockDevice('loop3', 'disk', 4096),
      blockDevice('nvme0n1', 'disk', 512110190592, { physical: 'SSD', protocol: 'nvme', serial: 'S4EWNX0' }),
    ]);
    expect(disks.map((d) => [d.device, d.sizeBytes, d.model, d.serial, d.type])).to.deep.equal([
      ['/dev/vda', 274877906944, 'QEMU HARDDISK', '', 'HDD'],
      ['/dev/nvme0n1', 512110190592, '', 'S4EWNX0', 'SSD'],
    ]);
  });

  it('interfaces: all OS addresses, default flag, loopback dropped', () => {
    const nics = mergeInterfaces(
      [nic('lo', { internal: true, ip4: '127.0.0.1' }), nic('eth0', { ip4: '10.0.0.5' }), nic('eth1', { ip4: '192.168.1.9', speed: 0 })],
      { eth0: [addr('10.0.0.5', 'IPv4'), addr('10.0.0.6', 'IPv4'), addr('fe80::1', 'IPv6')] },
      'eth0',
    );
    expect(nics.map((n) => n.iface)).to.deep.equal(['eth0', 'eth1']);
    expect(nics[0]).to.deep.include({ ipv4: ['10.0.0.5', '10.0.0.6'], ipv6: ['fe80::1'], isDefault: true, speedMbps: 1000 });
    expect(nics[1]).to.deep.include({ ipv4: ['192.168.1.9'], isDefault: false, speedMbps: null });
  });

  it('primary address prefers the default interface', () => {
    const n = (iface: string, ipv4: string[], isDefault: boolean, virtual = false): NetworkInterface =>
      ({ iface, mac: '', ipv4, ipv6: [], speedMbps: null, type: '', virtual, operstate: 'up', isDefault });
    const table: [NetworkInterface[], string][] = [
      [[], ''],
      [[n('a', ['10.1.1.1'], false), n('b', ['10.2.2.2'], true)], '10.2.2.2'],
      [[n('a', ['10.1.1.1'], false, true), n('b', ['10.2.2.2'], false)], '10.2.2.2'],
      [[n('a', [], true), n('b', ['10.2.2.2'], false, true)], '10.2.2.2'],
    ];
    for (const [network, want] of table) expect(primaryAddress({ ...BASE, network })).to.equal(want);
  });

  it('collects real facts from this machine, time-boxed, and the fingerprint ignores the time', async function () {
    this.timeout(60_000);
    const t0 = Date.now();
    const a = await collectFacts({ hostname: 'facts-test', probeTimeoutMs: 20_000, now: () => new Date(1000) });
    expect(Date.now() - t0).to.be.lessThan(25_000);
    expect(a.hostname).to.equal('facts-test');
    expect(a.memory.totalBytes).to.be.greaterThan(0);
    expect(a.cpu.cores).to.be.greaterThan(0);
    expect(a.os.kernel).to.not.equal('');
    expect(a.disks.length).to.be.greaterThan(0);
    expect(a.disks.every((d) => d.sizeBytes > 0)).to.equal(true);
    const b = await collectFacts({ hostname: 'facts-test', probeTimeoutMs: 20_000, now: () => new Date(2000) });
    expect(a.collectedAt).to.not.equal(b.collectedAt);
    expect(factsFingerprint({ ...a, collectedAt: 'x' })).to.equal(factsFingerprint(a));
    expect(factsFingerprint({ ...a, hostname: 'other' })).to.not.equal(factsFingerprint(a));
  });

  it('runtime: PID 1, systemd version and virtualisation as systemd-detect-virt sees this machine', async () => {
    const r = await collectRuntime(10_000);
    expect(r.init).to.equal(readFileSync('/proc/1/comm', 'utf8').trim());
    expect(execFileSync('systemctl', ['--version'], { encoding: 'utf8' })).to.match(new RegExp(`^systemd ${r.systemdVersion.replace(/[()+~.]/g, '\\$&')}`));
    expect(r.virtualization).to.equal(spawnSync('systemd-detect-virt', { encoding: 'utf8' }).stdout.trim());
    const inContainer = spawnSync('systemd-detect-virt', ['--container', '--quiet']).status === 0;
    expect(r.virtualizationType).to.equal(inContainer ? 'container' : r.virtualization === 'none' ? 'none' : 'vm');
  });

  it('a probe that cannot finish in time degrades to empty values instead of failing', async () => {
    // 1 ms is shorter than any probe that shells out or reads /proc: collection still succeeds.
    const f = await collectFacts({ hostname: 'h', probeTimeoutMs: 1 });
    expect(f.hostname).to.equal('h');
    expect(f.disks).to.be.an('array');
    expect(f.gpus).to.be.an('array');
  });
});
