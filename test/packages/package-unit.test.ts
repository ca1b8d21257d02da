/**
 * The package unit kind with real package managers on throw-away roots: dnf --installroot
 * against a local repository of RPMs built by the test (install 1.0 → no-op → upgrade to 2.0 →
 * verify → drift → remove), and the rpm-file backend (`rpm -U --root`). No host package is touched.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, InvalidArgumentError } from '../../shared';
import type { PackageUnitSpec } from '../../shared/bundle/types';
import { createPackageBackend, createRpmBackend } from '../../agent/packages';
import { packageUnitHandler as handler } from '../../agent/units/package-unit';
import type { PackageBackend } from '../../agent/packages/backend';
import type { UnitContext } from '../../agent/units/unit';
import { buildRpmFixtures, copyIntoRoot, expectReject, FIXTURE_PACKAGE, run, type RpmFixtures } from '../helpers';

const logger = createLogger({ level: 'silent' });

function context(root: string, backend: PackageBackend): UnitContext {
  return {
    root, logger, signal: new AbortController().signal, changedUnits: new Set(), env: process.env,
    systemd: async () => {
      throw new Error('no systemd in this test');
    },
    packages: async () => backend,
  };
}

async function rpmQ(root: string, dbPath?: string): Promise<string> {
  const r = await run('rpm', ['--root', root, ...(dbPath ? ['--dbpath', dbPath] : []), '-q', FIXTURE_PACKAGE], { env: { LC_ALL: 'C' } });
  return r.stdout.trim();
}

describe('package unit (real dnf and rpm on throw-away roots)', function () {
  this.timeout(180_000);
  let fx: RpmFixtures;
  let hostBefore: string;

  before(async () => {
    hostBefore = (await run('rpm', ['-q', FIXTURE_PACKAGE], { env: { LC_ALL: 'C' } })).stdout.trim();
    fx = await buildRpmFixtures();
  });

  after(async () => {
    await fx?.destroy();
    // The host's rpm database never saw the fixture package.
    expect((await run('rpm', ['-q', FIXTURE_PACKAGE], { env: { LC_ALL: 'C' } })).stdout.trim()).to.equal(hostBefore);
  });

  describe('dnf --installroot with the local repository', () => {
    let root: string;
    let backend: PackageBackend;
    let ctx: UnitContext;
    const spec: PackageUnitSpec = { id: 'hello-pkg', kind: 'package', name: FIXTURE_PACKAGE, version: '1.0' };
    const installedFile = (): string => readFileSync(join(root, 'usr/share/cm-hello/version'), 'utf8').trim();

    before(async () => {
      root = await fx.makeRoot('dnf');
      // auto: the root's os-release says Rocky 9.
      backend = await createPackageBackend({ backend: 'auto', root });
      ctx = context(root, backend);
    });

    it('detects dnf from the root and plans the install without installing', async () => {
      expect(backend.name).to.equal('dnf');
      const plan = await handler.plan(spec, ctx);
      expect(plan).to.deep.include({ action: 'create', changes: [{ field: 'version', before: null, after: '1.0' }] });
      expect(plan.summary).to.equal('install cm-hello: not installed→1.0 [dnf]');
      expect(await rpmQ(root)).to.equal('package cm-hello is not installed');
    });

    it('installs 1.0 into the root', async () => {
      const done = await handler.apply(spec, ctx);
      expect(done.action).to.equal('create');
      expect(done.output?.text).to.match(/cm-hello/);
      expect(await rpmQ(root)).to.equal('cm-hello-1.0-1.noarch');
      expect(installedFile()).to.equal('hello 1.0');
      expect(await backend.query(FIXTURE_PACKAGE)).to.deep.equal({ name: FIXTURE_PACKAGE, version: '1.0-1' });
    });

    it('is a no-op the second time, and says so', async () => {
      const plan = await handler.plan(spec, ctx);
      expect(plan).to.deep.include({ action: 'unchanged', changes: [], summary: 'cm-hello: unchanged, 1.0-1' });
      const again = await handler.apply(spec, ctx);
      expect(again.action).to.equal('unchanged');
      expect(again.output).to.equal(undefined);
    });

    it('upgrades to 2.0', async () => {
      const up: PackageUnitSpec = { ...spec, version: '2.0' };
      const plan = await handler.plan(up, ctx);
      expect(plan.changes).to.deep.equal([{ field: 'version', before: '1.0-1', after: '2.0' }]);
      expect(plan.summary).to.equal('change cm-hello: 1.0-1→2.0 [dnf]');
      expect((await handler.apply(up, ctx)).action).to.equal('update');
      expect(await rpmQ(root)).to.equal('cm-hello-2.0-1.noarch');
      expect(installedFile()).to.equal('hello 2.0');
      spec.version = '2.0';
    });

    it('verifies clean, then reports drift after rpm -e behind its back, and repairs', async () => {
      expect((await handler.verify(spec, ctx)).action).to.equal('unchanged');
      const r = await run('rpm', ['--root', root, '-e', FIXTURE_PACKAGE]);
      expect(r.code, r.stderr).to.equal(0);
      const drift = await handler.verify(spec, ctx);
      expect(drift).to.deep.include({ action: 'update', changes: [{ field: 'version', before: null, after: '2.0' }] });
      expect(drift.summary).to.equal('drift cm-hello: not installed→2.0 [dnf]');
      await handler.apply(spec, ctx);
      expect(await rpmQ(root)).to.equal('cm-hello-2.0-1.noarch');
    });

    it('removes, and a second remove does nothing', async () => {
      const removed = await handler.remove(spec, ctx);
      expect(removed).to.deep.include({ action: 'remove', changes: [{ field: 'version', before: '2.0-1', after: null }] });
      expect(await rpmQ(root)).to.equal('package cm-hello is not installed');
      expect(existsSync(join(root, 'usr/share/cm-hello/version'))).to.equal(false);
      expect((await handler.remove(spec, ctx)).action).to.equal('unchanged');
    });

    it('ensure: absent removes an installed package', async () => {
      await handler.apply({ ...spec, version: '1.0' }, ctx);
      const absent: PackageUnitSpec = { ...spec, version: undefined, ensure: 'absent' };
      expect((await handler.plan(absent, ctx)).summary).to.equal('remove cm-hello: 1.0-1→not installed [dnf]');
      expect((await handler.apply(absent, ctx)).action).to.equal('remove');
      expect(await rpmQ(root)).to.equal('package cm-hello is not installed');
      expect((await handler.apply(absent, ctx)).action).to.equal('unchanged');
    });

    it('bad input: an unknown package fails with dnf\'s reason and installs nothing; a bad name never reaches dnf', async () => {
      await expectReject(handler.apply({ ...spec, name: 'cm-nope', version: undefined }, ctx), /^dnf install cm-nope failed \(exit 1\): .*Unable to find a match: cm-nope/);
      const err = await expectReject(handler.apply({ ...spec, name: '--installroot=/' }, ctx), /^invalid package name "--installroot=\/"/);
      expect(err).to.be.instanceOf(InvalidArgumentError);
      await expectReject(handler.plan({ ...spec, version: '1.0; rm -rf /' }, ctx), /^invalid package version/);
      expect(await rpmQ(root)).to.equal('package cm-hello is not installed');
    });
  });

  describe('rpm backend: a local .rpm file into a throw-away root', () => {
    let root: string;
    let backend: PackageBackend;
    let ctx: UnitContext;
    // rpm --dbpath is relative to --root; pinned so the result does not depend on $HOME (Debian's rpm default is ~/.rpmdb).
    const dbPath = '/var/lib/rpm';

    before(async () => {
      root = await fx.makeRoot('rpm');
      await copyIntoRoot(fx.rpms['1.0'], root, 'srv/pkgs/cm-hello-1.0.rpm');
      await copyIntoRoot(fx.rpms['2.0'], root, 'srv/pkgs/cm-hello-2.0.rpm');
      backend = createRpmBackend({ root, dbPath });
      ctx = context(root, backend);
    });

    it('installs 1.0 from the file, is a no-op again, upgrades from the 2.0 file, removes', async () => {
      const v1: PackageUnitSpec = { id: 'hello-rpm', kind: 'package', name: FIXTURE_PACKAGE, rpm: '/srv/pkgs/cm-hello-1.0.rpm' };
      const plan = await handler.plan(v1, ctx);
      expect(plan.summary).to.equal('install cm-hello: not installed→1.0-1 (from /srv/pkgs/cm-hello-1.0.rpm) [rpm]');
      expect((await handler.apply(v1, ctx)).action).to.equal('create');
      expect(await rpmQ(root, dbPath)).to.equal('cm-hello-1.0-1.noarch');
      expect(existsSync(join(root, dbPath.slice(1)))).to.equal(true);
      expect(readFileSync(join(root, 'usr/share/cm-hello/version'), 'utf8').trim()).to.equal('hello 1.0');
      expect((await handler.apply(v1, ctx)).action).to.equal('unchanged');

      const v2: PackageUnitSpec = { ...v1, rpm: '/srv/pkgs/cm-hello-2.0.rpm' };
      expect((await handler.apply(v2, ctx)).changes).to.deep.equal([{ field: 'version', before: '1.0-1', after: '2.0-1' }]);
      expect(await rpmQ(root, dbPath)).to.equal('cm-hello-2.0-1.noarch');
      // Back to the 1.0 file: a deliberate downgrade.
      expect((await handler.apply(v1, ctx)).action).to.equal('update');
      expect(await rpmQ(root, dbPath)).to.equal('cm-hello-1.0-1.noarch');

      expect((await handler.remove(v1, ctx)).action).to.equal('remove');
      expect(await rpmQ(root, dbPath)).to.equal('package cm-hello is not installed');
    });

    it('bad input: a file with another package, a missing file, a relative path, install by name', async () => {
      const base: PackageUnitSpec = { id: 'x', kind: 'package', name: 'other-name', rpm: '/srv/pkgs/cm-hello-1.0.rpm' };
      await expectReject(handler.plan(base, ctx), /^package x: \/srv\/pkgs\/cm-hello-1\.0\.rpm contains cm-hello, not other-name$/);
      await expectReject(handler.plan({ ...base, name: FIXTURE_PACKAGE, rpm: '/srv/pkgs/missing.rpm' }, ctx), /^cannot read rpm file .*missing\.rpm/);
      await expectReject(handler.plan({ ...base, name: FIXTURE_PACKAGE, rpm: 'srv/pkgs/cm-hello-1.0.rpm' }, ctx), /must be absolute/);
      await expectReject(handler.plan({ ...base, name: FIXTURE_PACKAGE, version: '2.0' }, ctx), /is version 1\.0-1, not 2\.0/);
      await expectReject(handler.apply({ id: 'y', kind: 'package', name: FIXTURE_PACKAGE }, ctx), /cannot install cm-hello by name with the rpm backend/);
      expect(await rpmQ(root, dbPath)).to.equal('package cm-hello is not installed');
    });
  });
});
