/**
 * Files that run on other people's machines and cannot run here (the Vagrant cluster, the
 * kickstart installer): checked as far as this box allows. The Vagrantfile is parsed by Ruby
 * and evaluated against a recorder of the few Vagrant calls it makes; the kickstart is parsed
 * for its required sections and its %post is really executed (bash, with dnf and systemctl
 * replaced by recorders and its two host paths redirected to a temp dir); the config renderer
 * the Vagrant provisioning uses runs for real on the shipped config files, and the agent and
 * coordinator option parsers (dist/) must accept what it and the kickstart write.
 */
import { expect } from 'chai';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BIN, REPO_ROOT, run } from '../helpers';
import { AGENT_OPTIONS } from '../../agent/options';

const KICKSTART = join(REPO_ROOT, 'scripts', 'kickstart', 'agent.ks');
const RENDER = join(REPO_ROOT, 'scripts', 'vagrant', 'render-config.sh');

/** Splits a kickstart into its command lines and its %sections (name → body lines). */
export function parseKickstart(text: string): { commands: string[]; sections: { header: string; body: string }[] } {
  const commands: string[] = [];
  const sections: { header: string; body: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('%')) {
      const body: string[] = [];
      let j = i + 1;
      while (j < lines.length && lines[j].trim() !== '%end') body.push(lines[j++]);
      if (j >= lines.length) throw new Error(`section ${line} has no %end`);
      sections.push({ header: line, body: body.join('\n') });
      i = j;
      continue;
    }
    commands.push(line);
  }
  return { commands, sections };
}

const RUBY_RECORDER = `
require "json"
class Bag
  def initialize; @h = {}; end
  def method_missing(name, *args)
    key = name.to_s
    key.end_with?("=") ? @h[key.chomp("=")] = args[0] : super
  end
  def respond_to_missing?(*) = true
  def to_h = @h
end
class VMConfig
  def initialize(rec) = @rec = rec
  def box=(v)
    @rec[:box] = v
  end
  def hostname=(v)
    @rec[:hostname] = v
  end
  def synced_folder(src, dst, **o) = (@rec[:synced] ||= []) << { src: src, dst: dst, opts: o }
  def network(kind, **o) = (@rec[:networks] ||= []) << { kind: kind, opts: o }
  def provision(kind, **o) = (@rec[:provision] ||= []) << { kind: kind, opts: o }
  def provider(name) = (b = Bag.new; yield b; (@rec[:providers] ||= {})[name] = b.to_h)
  def define(name, **o)
    m = { options: o }
    ($machines ||= {})[name] = m
    yield Cfg.new(m)
  end
end
class Cfg
  def initialize(rec) = @vm = VMConfig.new(rec)
  attr_reader :vm
end
module Vagrant
  def self.configure(version)
    $root = { version: version }
    yield Cfg.new($root)
  end
end
ARGV.replace([ENV.fetch("VAGRANT_COMMAND")])
load ENV.fetch("VAGRANTFILE")
puts JSON.generate(root: $root, machines: $machines)
`;

interface VagrantRecord {
  root: { box: string; synced: { src: string; dst: string; opts: Record<string, unknown> }[] };
  machines: Record<string, {
    options: { primary?: boolean };
    hostname: string;
    networks: { kind: string; opts: { ip: string } }[];
    provision: { kind: string; opts: { path: string; env: Record<string, string> } }[];
  }>;
}

describe('packaging: Vagrantfile, kickstart and provisioning helpers', function () {
  this.timeout(60_000);
  let tmp: string;

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'provisioning-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('ruby -c Vagrantfile: Syntax OK', async () => {
    const r = await run('ruby', ['-c', join(REPO_ROOT, 'Vagrantfile')]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('Syntax OK');
  });

  it('the Vagrantfile defines three Rocky 9 machines on a private network, two coordinators, RPM-based provisioning', async () => {
    const recorder = join(tmp, 'recorder.rb');
    writeFileSync(recorder, RUBY_RECORDER);
    const r = await run('ruby', [recorder], { env: { VAGRANTFILE: join(REPO_ROOT, 'Vagrantfile'), VAGRANT_COMMAND: 'status' } });
    expect(r.code, r.stderr).to.equal(0);
    const rec = JSON.parse(r.stdout) as VagrantRecord;
    expect(rec.root.box).to.match(/rocky/i);
    const synced = Object.fromEntries(rec.root.synced.map((s) => [s.src, s]));
    expect(synced['build/rpm']?.dst).to.equal('/opt/cluster/rpm');
    expect(synced['packaging/config']?.dst).to.equal('/opt/cluster/config');
    expect(synced['scripts/vagrant']?.dst).to.equal('/opt/cluster/provision');
    // The host-made cluster secret every coordinator replica is given.
    expect(synced['build/vagrant']?.dst).to.equal('/opt/cluster/shared');
    expect(Object.keys(rec.machines)).to.deep.equal(['node1', 'node2', 'node3']);
    const ips: string[] = [];
    let coordinators = 0;
    for (const [name, m] of Object.entries(rec.machines)) {
      expect(m.hostname).to.equal(name);
      const net = m.networks.find((n) => n.kind === 'private_network');
      expect(net?.opts.ip, name).to.match(/^192\.168\.(5[6-9]|6[0-3])\.\d+$/); // 192.168.56.0/21
      ips.push(net?.opts.ip ?? '');
      const prov = m.provision[0];
      expect(prov.opts.path).to.equal('scripts/vagrant/provision.sh');
      expect(readFileSync(join(REPO_ROOT, prov.opts.path), 'utf8')).to.match(/^#!\/usr\/bin\/env bash/);
      expect(prov.opts.env.NODE_NAME).to.equal(name);
      expect(prov.opts.env.ETCD_MEMBERS.split(',')).to.have.length(3);
      expect(prov.opts.env.JOIN_ADDRESS).to.equal('192.168.56.11:7400');
      if (prov.opts.env.ROLE_COORDINATOR === '1') coordinators++;
    }
    expect(new Set(ips).size).to.equal(3);
    expect(coordinators).to.equal(2);
    expect(rec.machines.node1.options.primary).to.equal(true);
    expect(rec.machines.node3.provision[0].opts.env.WAIT_FOR_NODES).to.equal('3');
  });

  it('vagrant up without built RPMs stops at once with the fix', async () => {
    const copy = join(tmp, 'no-rpms');
    mkdirSync(copy);
    cpSync(join(REPO_ROOT, 'Vagrantfile'), join(copy, 'Vagrantfile'));
    const recorder = join(tmp, 'recorder.rb');
    writeFileSync(recorder, RUBY_RECORDER);
    const r = await run('ruby', [recorder], { env: { VAGRANTFILE: join(copy, 'Vagrantfile'), VAGRANT_COMMAND: 'up' } });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('run scripts/build-rpm first');
  });

  it('provision.sh runs etcd with TLS and client-certificate auth for clients and peers, and speaks to it only over https (the coordinators refuse plaintext)', () => {
    const text = readFileSync(join(REPO_ROOT, 'scripts', 'vagrant', 'provision.sh'), 'utf8');
    for (const flag of ['--client-cert-auth', '--trusted-ca-file', '--peer-client-cert-auth', '--peer-trusted-ca-file']) expect(text).to.contain(flag);
    expect(text).to.not.match(/http:\/\/|--endpoints (?!https:)/);
    expect(text).to.match(/etcdctl --endpoints https:\/\/127\.0\.0\.1:2379 --cacert /);
  });

  it('bash -n accepts the provisioning scripts', async () => {
    for (const script of ['provision.sh', 'render-config.sh']) {
      const r = await run('bash', ['-n', join(REPO_ROOT, 'scripts', 'vagrant', script)]);
      expect(r.code, `${script}: ${r.stderr}`).to.equal(0);
    }
  });

  it('render-config.sh turns the shipped files into configs the programs accept (table)', async () => {
    const cases: { src: string; args: string[]; expect: Record<string, unknown>; bin: string; configEnv: string }[] = [
      {
        src: 'agent.yaml', args: ['etcd=192.168.56.11:2379,192.168.56.12:2379,192.168.56.13:2379', 'nodeId=node1', 'joinTokenFile=/etc/cluster/join-token', 'joinAddress=192.168.56.11:7400'],
        expect: { etcd: ['192.168.56.11:2379', '192.168.56.12:2379', '192.168.56.13:2379'], nodeId: 'node1', leaseTtl: 45, joinTokenFile: '/etc/cluster/join-token', joinAddress: '192.168.56.11:7400' },
        bin: BIN.agent, configEnv: 'CLUSTER_AGENT_CONFIG',
      },
      {
        src: 'coordinator.yaml', args: ['etcd=192.168.56.11:2379', 'listen=0.0.0.0:7400', 'advertise=192.168.56.11:7400'],
        expect: { etcd: ['192.168.56.11:2379'], listen: '0.0.0.0:7400', advertise: '192.168.56.11:7400' },
        bin: BIN.coordinator, configEnv: 'CLUSTER_COORDINATOR_CONFIG',
      },
    ];
    for (const c of cases) {
      const r = await run('bash', [RENDER, join(REPO_ROOT, 'packaging', 'config', c.src), ...c.args]);
      expect(r.code, r.stderr).to.equal(0);
      const doc = parseYaml(r.stdout) as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.expect)) expect(doc[k], `${c.src}: ${k}`).to.deep.equal(v);
      const out = join(tmp, `rendered-${c.src}`);
      writeFileSync(out, r.stdout);
      const help = await run(process.execPath, [c.bin, '--help'], { env: { [c.configEnv]: out } });
      expect(help.code, `${c.src} refused: ${help.stderr}`).to.equal(0);
    }
  });

  it('render-config.sh refuses a key the shipped file does not have, and a malformed argument', async () => {
    const missing = await run('bash', [RENDER, join(REPO_ROOT, 'packaging', 'config', 'agent.yaml'), 'etcdEndpoints=x:1']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain('no "etcdEndpoints:" line');
    const malformed = await run('bash', [RENDER, join(REPO_ROOT, 'packaging', 'config', 'agent.yaml'), 'etcd']);
    expect(malformed.code).to.equal(2);
  });

  describe('scripts/kickstart/agent.ks', () => {
    const ks = (): ReturnType<typeof parseKickstart> => parseKickstart(readFileSync(KICKSTART, 'utf8'));

    it('has the commands of an unattended install and the %packages and %post sections', () => {
      const { commands, sections } = ks();
      const names = new Set(commands.map((c) => c.split(/\s+/)[0]));
      for (const required of ['text', 'lang', 'keyboard', 'timezone', 'network', 'rootpw', 'url', 'bootloader', 'clearpart', 'autopart', 'reboot']) {
        expect(names, required).to.include(required);
      }
      expect(commands.find((c) => c.startsWith('url '))).to.match(/BaseOS-9/);
      const packages = sections.find((s) => s.header === '%packages');
      expect(packages?.body).to.match(/@nodejs:20/);
      const post = sections.find((s) => s.header.startsWith('%post'));
      expect(post?.header).to.contain('--interpreter=/bin/bash').and.to.contain('--erroronfail');
      expect(sections.map((s) => s.header.split(' ')[0])).to.deep.equal(['%packages', '%post']);
    });

    it('%post: bash -n, the RPM URL variable first, then etcd and the join token', async () => {
      const post = ks().sections.find((s) => s.header.startsWith('%post'))?.body ?? '';
      const file = join(tmp, 'post.sh');
      writeFileSync(file, post);
      const r = await run('bash', ['-n', file]);
      expect(r.code, r.stderr).to.equal(0);
      const assignments = post.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=')[0]);
      expect(assignments.slice(0, 3)).to.deep.equal(['AGENT_RPM_URL', 'ETCD_ENDPOINTS', 'JOIN_TOKEN']);
      expect(post).to.match(/clusterctl token create/);
    });

    it('%post really runs: installs the RPM, writes an agent.yaml the agent accepts, enables the unit; kernel-line overrides win', async () => {
      const post = ks().sections.find((s) => s.header.startsWith('%post'))?.body ?? '';
      const dir = join(tmp, 'ks-run');
      const stubs = join(dir, 'bin');
      mkdirSync(stubs, { recursive: true });
      for (const tool of ['dnf', 'systemctl']) {
        writeFileSync(join(stubs, tool), `#!/bin/sh\necho "${tool} $*" >> "${join(dir, 'calls.log')}"\n`);
        chmodSync(join(stubs, tool), 0o755);
      }
      mkdirSync(join(dir, 'etc-cluster'));
      const token = `K10${'ab'.repeat(32)}::x1y2z3.${'0123456789abcdef'.repeat(2)}`;
      writeFileSync(join(dir, 'cmdline'), `BOOT_IMAGE=vmlinuz inst.ks=http://x/agent.ks cluster.etcd=198.18.0.1:2379,198.18.0.2:2379 cluster.join_token=${token} cluster.join_address=198.18.0.7:7400 quiet\n`);
      // Only the two host paths move; everything else runs as written.
      const script = post
        .replaceAll('/etc/cluster/agent.yaml', join(dir, 'etc-cluster', 'agent.yaml'))
        .replaceAll('/proc/cmdline', join(dir, 'cmdline'));
      expect(script).to.not.equal(post);
      writeFileSync(join(dir, 'post.sh'), script);
      const r = await run('bash', [join(dir, 'post.sh')], { env: { PATH: `${stubs}:${process.env.PATH ?? ''}` } });
      expect(r.code, r.stderr).to.equal(0);

      const calls = readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n');
      expect(calls).to.deep.equal(['dnf -y install http://pxe.example.internal/cluster/cluster-agent-0.1.0-1.noarch.rpm', 'systemctl enable cluster-agent.service']);
      const written = join(dir, 'etc-cluster', 'agent.yaml');
      const doc = parseYaml(readFileSync(written, 'utf8')) as Record<string, unknown>;
      expect(doc.etcd).to.deep.equal(['198.18.0.1:2379', '198.18.0.2:2379']);
      for (const key of Object.keys(doc)) expect(Object.keys(AGENT_OPTIONS), key).to.include(key);
      expect(doc.joinToken).to.equal(token);
      expect(doc.joinAddress).to.equal('198.18.0.7:7400');
      expect(statSync(written).mode & 0o777).to.equal(0o600);
      const help = await run(process.execPath, [BIN.agent, '--help'], { env: { CLUSTER_AGENT_CONFIG: written } });
      expect(help.code, help.stderr).to.equal(0);

      // The placeholder left in place: the install fails at once saying what to set, and installs nothing.
      writeFileSync(join(dir, 'cmdline'), 'BOOT_IMAGE=vmlinuz inst.ks=http://x/agent.ks quiet\n');
      rmSync(join(dir, 'calls.log'));
      const unset = await run('bash', [join(dir, 'post.sh')], { env: { PATH: `${stubs}:${process.env.PATH ?? ''}` } });
      expect(unset.code).to.equal(1);
      expect(unset.stderr).to.match(/JOIN_TOKEN is not set: put the output of 'clusterctl token create'/);
      expect(existsSync(join(dir, 'calls.log'))).to.equal(false);
    });
  });
});
