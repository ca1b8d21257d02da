/**
 * Pure parts of the package backends, by table (detection, version matching, output parsing),
 * plus the read-only apt query against the host's dpkg database and the command runner's
 * timeout, abort and output bound with real processes.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, DeadlineExceededError } from '../../shared';
import {
  backendForOsRelease, BoundedText, createAptBackend, createPackageBackend, detectPackageBackend, parseOsRelease, runCommand, versionSatisfies,
} from '../../agent/packages';
import { parseRpmQuery } from '../../agent/packages/rpm-database';
import { parseDpkgQuery } from '../../agent/packages/apt-backend';
import { expectReject, run } from '../helpers';

describe('package backends: pure logic', () => {
  it('picks the backend from os-release', () => {
    const table: Array<[string, string | undefined]> = [
      ['ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"', 'dnf'],
      ['ID=rhel\nVERSION_ID=8.9', 'dnf'],
      ['ID="centos"\nID_LIKE="rhel fedora"', 'dnf'],
      ['ID=fedora', 'dnf'],
      ['ID=almalinux\nID_LIKE="rhel centos fedora"', 'dnf'],
      ['ID=debian\nVERSION_ID="12"', 'apt'],
      ['ID=ubuntu\nID_LIKE=debian', 'apt'],
      ['ID=linuxmint\nID_LIKE="ubuntu debian"', 'apt'],
      ['ID=my-rhel-clone\nID_LIKE="rhel"', 'dnf'],
      ['ID=alpine', undefined],
      ['# only a comment', undefined],
      ['', undefined],
    ];
    for (const [text, want] of table) expect(backendForOsRelease(text), text).to.equal(want);
  });

  it('parses os-release quoting', () => {
    expect(parseOsRelease('NAME="Rocky Linux"\nID=\'rocky\'\nPRETTY="a \\"b\\""\n#X=1\nbad line\n')).to.deep.equal({ NAME: 'Rocky Linux', ID: 'rocky', PRETTY: 'a "b"' });
  });

  it('matches versions the way bundles write them', () => {
    const table: Array<[string, string, boolean]> = [
      ['1.0-1', '1.0', true],
      ['1.0-1', '1.0-1', true],
      ['1.0-1', '1.0-2', false],
      ['1.0.1-1', '1.0', false],
      ['10.0-1', '1.0', false],
      ['2:1.0-1', '1.0', true],
      ['2:1.0-1', '2:1.0', true],
      ['2:1.0-1', '1:1.0', false],
      ['1.0-1', '0:1.0', true],
      ['1.2.3-4ubuntu1', '1.2.3', true],
      ['1.2.3-4ubuntu1', '1.2.3-4ubuntu1', true],
      ['1.2.3', '1.2', false],
    ];
    for (const [installed, wanted, want] of table) expect(versionSatisfies(installed, wanted), `${installed} vs ${wanted}`).to.equal(want);
  });

  it('parses rpm and dpkg query output', () => {
    expect(parseRpmQuery('cm-hello\t1.0-1\n', 'cm-hello')).to.deep.equal({ name: 'cm-hello', version: '1.0-1' });
    expect(parseRpmQuery('kernel\t5.14-1\nkernel\t5.14-2\n', 'kernel')).to.deep.equal({ name: 'kernel', version: '5.14-2' });
    expect(parseRpmQuery('', 'x')).to.equal(undefined);
    expect(parseDpkgQuery('installed\t5.2.15-2+b2\n', 'bash')).to.deep.equal({ name: 'bash', version: '5.2.15-2+b2' });
    expect(parseDpkgQuery('config-files\t1.0-1\n', 'gone')).to.equal(undefined);
    expect(parseDpkgQuery('not-installed\t\n', 'never')).to.equal(undefined);
  });

  it('keeps the head and tail of long output', () => {
    const b = new BoundedText(10);
    b.push('0123456789abcdef');
    b.push('XYZ');
    expect(b.result()).to.deep.equal({ text: '01234\n[... output truncated ...]\nefXYZ', truncated: true });
    const small = new BoundedText(10);
    small.push('abc');
    expect(small.result()).to.deep.equal({ text: 'abc', truncated: false });
  });
});

describe('package backends: detection and real commands', function () {
  this.timeout(60_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pkg-detect-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function rootWith(name: string, osRelease: string | undefined, where = 'etc/os-release'): Promise<string> {
    const root = join(dir, name);
    await mkdir(join(root, where, '..'), { recursive: true });
    if (osRelease !== undefined) await writeFile(join(root, where), osRelease);
    return root;
  }

  it('detects from a root\'s os-release file, or takes the configured backend', async () => {
    expect(await detectPackageBackend('auto', await rootWith('rocky', 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'))).to.equal('dnf');
    expect(await detectPackageBackend('auto', await rootWith('deb', 'ID=debian\n'))).to.equal('apt');
    expect(await detectPackageBackend('auto', await rootWith('usrlib', 'ID=fedora\n', 'usr/lib/os-release'))).to.equal('dnf');
    expect(await detectPackageBackend('rpm', await rootWith('forced', 'ID=debian\n'))).to.equal('rpm');
    expect((await createPackageBackend({ backend: 'auto', root: await rootWith('deb2', 'ID=ubuntu\nID_LIKE=debian\n') })).name).to.equal('apt');
    // This machine is Debian.
    expect(await detectPackageBackend('auto')).to.equal('apt');
  });

  it('refuses an unknown choice or an unknown distribution with an actionable message', async () => {
    await expectReject(detectPackageBackend('yum', dir), /^unknown package backend "yum": use auto, dnf, apt or rpm$/);
    await expectReject(detectPackageBackend('auto', await rootWith('alpine', 'ID=alpine\n')), /cannot pick a package backend from .*os-release \(ID=alpine.*set --package-backend dnf, apt or rpm/);
    await expectReject(detectPackageBackend('auto', await rootWith('empty', undefined)), /no os-release under .*set --package-backend/);
  });

  it('apt backend reads the host dpkg database (read-only)', async () => {
    const apt = createAptBackend();
    const bash = await apt.query('bash');
    const expected = (await run('dpkg-query', ['-W', '-f', '${Version}', 'bash'])).stdout.trim();
    expect(bash).to.deep.equal({ name: 'bash', version: expected });
    expect(await apt.query('cm-no-such-package')).to.equal(undefined);
    await expectReject(apt.query('-bad'), /invalid package name/);
  });

  it('runCommand: kills on abort and on timeout, reports exit codes, bounds output', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 200);
    const e1 = await expectReject(runCommand('sh', ['-c', 'sleep 30 & sleep 30; wait'], { signal: ac.signal }), /^cancelled: sh -c/);
    expect(e1).to.be.instanceOf(CancelledError);
    const e2 = await expectReject(runCommand('sleep', ['30'], { timeoutMs: 300 }), /^timed out after 300 ms: sleep 30$/);
    expect(e2).to.be.instanceOf(DeadlineExceededError);
    expect(Date.now() - t0).to.be.lessThan(10_000);
    const r = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.equal('out\n');
    expect(r.output.text).to.contain('err');
    const big = await runCommand('sh', ['-c', 'head -c 200000 /dev/zero | tr "\\0" x'], { maxOutput: 1000 });
    expect(big.output.truncated).to.equal(true);
    expect(big.output.text.length).to.be.lessThan(1100);
    await expectReject(runCommand('cm-no-such-binary', []), /cannot run cm-no-such-binary: not installed/);
  });
});
