/**
 * The two systemd units: checked by systemd's own parser (`systemd-analyze verify`), read for
 * the directives the operations contract depends on, and the coordinator's sandbox exercised
 * for real: Node must start and serve TCP under its seccomp filter in a real user manager.
 *
 * How `systemd-analyze verify` runs here (systemd 252, not PID 1): it refuses a unit whose
 * ExecStart binary does not exist, and `--root=DIR` would need a whole unit tree (it looks
 * for sysinit.target there). So each unit is copied to a temp dir with ExecStart pointed at an
 * executable stub, and verified by path with --man=no. Its output must be empty: systemd only
 * *warns* (exit 0) about unknown keys or bad values, and a warning is a bug in the unit.
 */
import { expect } from 'chai';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers';
import { AGENT_OPTIONS } from '../../agent/options';
import { COORDINATOR_OPTIONS } from '../../coordinator/options';
import { parseDuration } from '../../shared/options';
import { parseUnitFile, readUnitFile, timeSpanMs, unitWithExecStart, value, values, verifyUnit, type UnitFile } from './unit-file';
import { PROCESS_LEVEL_DIRECTIVES, runSandboxed } from './user-manager-sandbox';

const AGENT_UNIT = join(REPO_ROOT, 'systemd', 'cluster-agent.service');
const COORDINATOR_UNIT = join(REPO_ROOT, 'systemd', 'cluster-coordinator.service');

describe('packaging: systemd units', function () {
  this.timeout(60_000);
  let dir: string;
  let stub: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'units-'));
    stub = join(dir, 'program-stub');
    writeFileSync(stub, '#!/bin/sh\nexit 0\n');
    chmodSync(stub, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const unit of [AGENT_UNIT, COORDINATOR_UNIT]) {
    it(`systemd-analyze verify accepts ${unit.split('/').pop()} without a warning`, async () => {
      const r = await verifyUnit(unitWithExecStart(unit, dir, stub));
      expect(r.output, r.output).to.equal('');
      expect(r.code).to.equal(0);
    });
  }

  it('the verify check can fail: a missing binary is an error, an unknown key a warning', async () => {
    const missing = await verifyUnit(unitWithExecStart(AGENT_UNIT, mkdtempSync(join(dir, 'missing-')), join(dir, 'nope')));
    expect(missing.code).to.not.equal(0);
    expect(missing.output).to.match(/is not executable/);
    const typoDir = mkdtempSync(join(dir, 'typo-'));
    const copy = unitWithExecStart(AGENT_UNIT, typoDir, stub);
    writeFileSync(copy, readFileSync(copy, 'utf8').replace('[Service]\n', '[Service]\nRestartSecs=5s\n'));
    const typo = await verifyUnit(copy);
    expect(typo.output).to.match(/Unknown key 'RestartSecs'/);
  });

  describe('directives both units need', () => {
    const table: { unit: string; env: string }[] = [
      { unit: AGENT_UNIT, env: '-/etc/sysconfig/cluster-agent' },
      { unit: COORDINATOR_UNIT, env: '-/etc/sysconfig/cluster-coordinator' },
    ];
    for (const row of table) {
      it(`${row.unit.split('/').pop()}: restart on failure, sysconfig, journal, network-online, installable`, () => {
        const u = readUnitFile(row.unit);
        expect(value(u, 'Service', 'Restart')).to.equal('on-failure');
        expect(timeSpanMs(value(u, 'Service', 'RestartSec') ?? '')).to.be.greaterThan(0);
        expect(values(u, 'Service', 'EnvironmentFile')).to.deep.equal([row.env]);
        expect(value(u, 'Service', 'StandardOutput')).to.equal('journal');
        expect(value(u, 'Service', 'StandardError')).to.equal('journal');
        expect(values(u, 'Unit', 'After').join(' ')).to.contain('network-online.target');
        expect(values(u, 'Unit', 'Wants').join(' ')).to.contain('network-online.target');
        expect(value(u, 'Service', 'KillSignal')).to.equal('SIGTERM');
        expect(value(u, 'Install', 'WantedBy')).to.equal('multi-user.target');
        expect(value(u, 'Service', 'MemoryDenyWriteExecute'), 'V8 JIT needs W+X memory').to.equal(undefined);
      });
    }
  });

  it('agent: root, its state directory, and no sandboxing that would stop it configuring the machine', () => {
    const u = readUnitFile(AGENT_UNIT);
    expect(value(u, 'Service', 'User')).to.equal(undefined);
    expect(value(u, 'Service', 'DynamicUser')).to.equal(undefined);
    expect(value(u, 'Service', 'StateDirectory')).to.equal('cluster-agent');
    for (const forbidden of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'NoNewPrivileges', 'RestrictSUIDSGID', 'ProtectKernelTunables',
      'ProtectKernelModules', 'PrivateDevices', 'SystemCallFilter', 'RestrictAddressFamilies', 'ReadOnlyPaths']) {
      expect(value(u, 'Service', forbidden), `${forbidden} would stop the agent's job`).to.equal(undefined);
    }
    // A self-upgrade restarts the agent from inside the package transaction it started.
    expect(value(u, 'Service', 'KillMode')).to.equal('process');
  });

  it('coordinator: unprivileged and strongly sandboxed', () => {
    const u = readUnitFile(COORDINATOR_UNIT);
    const expected: Record<string, string> = {
      DynamicUser: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '', RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX', PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes', ProtectKernelModules: 'yes', ProtectControlGroups: 'yes', RestrictNamespaces: 'yes',
      LockPersonality: 'yes', SystemCallArchitectures: 'native',
    };
    for (const [key, want] of Object.entries(expected)) expect(value(u, 'Service', key), key).to.equal(want);
    expect(values(u, 'Service', 'SystemCallFilter')[0]).to.match(/^@system-service\b/);
    expect(value(u, 'Service', 'User')).to.equal(undefined);
    // The pki dir must be writable by the dynamic user under ProtectSystem=strict: its own state directory.
    expect(value(u, 'Service', 'StateDirectory')?.split(' ')).to.include('cluster-coordinator/pki');
    expect(values(u, 'Service', 'Environment')).to.include('CLUSTER_PKI_DIR=/var/lib/cluster-coordinator/pki');
  });

  it('TimeoutStopSec leaves room above each program\'s own graceful-shutdown limit', () => {
    // Both options count bare numbers in seconds (parseDuration's default unit).
    const agentGrace = parseDuration(String(AGENT_OPTIONS.shutdownGrace.default));
    const coordinatorForce = parseDuration(String(COORDINATOR_OPTIONS.shutdownForce.default));
    const rows: [UnitFile, number][] = [[readUnitFile(AGENT_UNIT), agentGrace], [readUnitFile(COORDINATOR_UNIT), coordinatorForce]];
    for (const [u, programLimit] of rows) {
      expect(timeSpanMs(value(u, 'Service', 'TimeoutStopSec') ?? '0')).to.be.greaterThan(programLimit + 5000);
    }
  });

  it('unit-file reader: repeated keys, empty values, comments (table)', () => {
    const u = parseUnitFile('# c\n[Service]\nSystemCallFilter=@a\nSystemCallFilter=~@b\nCapabilityBoundingSet=\n; x\n[Install]\nWantedBy=m\n');
    expect(values(u, 'Service', 'SystemCallFilter')).to.deep.equal(['@a', '~@b']);
    expect(value(u, 'Service', 'CapabilityBoundingSet')).to.equal('');
    expect(value(u, 'Install', 'WantedBy')).to.equal('m');
    const spans: [string, number][] = [['30s', 30_000], ['2min', 120_000], ['1min 30s', 90_000], ['45', 45_000], ['500ms', 500]];
    for (const [text, ms] of spans) expect(timeSpanMs(text), text).to.equal(ms);
  });

  it('Node starts and serves TCP under the coordinator unit\'s seccomp and process sandbox (real user manager)', async function () {
    this.timeout(60_000);
    const u = readUnitFile(COORDINATOR_UNIT);
    const props: string[] = [];
    for (const key of PROCESS_LEVEL_DIRECTIVES) for (const v of values(u, 'Service', key)) props.push(`${key}=${v}`);
    // Without the unit's SystemCallErrorNumber=EPERM, a syscall missing from the filter kills
    // Node with SIGSYS instead of failing softly: this proves the allow-list is complete.
    expect(props.filter((p) => p.startsWith('SystemCallFilter='))).to.have.length.greaterThan(0);
    const script = 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log("listening on",s.address().port);s.close()});'
      + 'require("child_process").execFileSync("/bin/true");require("fs").writeFileSync("/dev/null","x");';
    const svc = await runSandboxed('units-seccomp', props, [process.execPath, '-e', script]);
    try {
      const r = await svc.done;
      expect(r.stdout, r.stderr).to.match(/listening on \d+/);
      expect(r.stderr).to.match(/Finished with result: success/);
      expect(r.code).to.equal(0);
    } finally {
      await svc.dispose();
    }
  });

  it('the sandbox check can fail: a filter Node cannot live with kills it with SIGSYS', async function () {
    this.timeout(60_000);
    const svc = await runSandboxed('units-seccomp-fail', ['NoNewPrivileges=yes', 'SystemCallFilter=@basic-io'], [process.execPath, '-e', 'console.log("alive")']);
    try {
      const r = await svc.done;
      expect(r.stdout).to.not.match(/alive/);
      expect(r.stderr).to.match(/status=31\/SYS|result: signal/);
    } finally {
      await svc.dispose();
    }
  });
});
