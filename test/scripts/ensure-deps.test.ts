/**
 * scripts/ensure-deps leaves a node_modules that is a link to a shared install alone (git
 * worktrees of one repository share one install that way): `npm ci` there first emptied the
 * directory the link points to, under every other checkout using it, and then installed into
 * this checkout only. Run on a copy of the script in a scratch checkout whose package-lock.json
 * is newer than the install's, which is what made it reinstall.
 */
import { expect } from 'chai';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, run } from '../helpers';

describe('scripts/ensure-deps: a shared node_modules', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ensure-deps-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not reinstalled when it is a link, and what it holds stays', async () => {
    const checkout = join(dir, 'checkout');
    const shared = join(dir, 'shared-node_modules');
    mkdirSync(join(checkout, 'scripts'), { recursive: true });
    copyFileSync(join(REPO_ROOT, 'scripts', 'ensure-deps'), join(checkout, 'scripts', 'ensure-deps'));
    mkdirSync(join(shared, 'some-package'), { recursive: true });
    writeFileSync(join(shared, 'some-package', 'index.js'), 'module.exports = 1;\n');
    writeFileSync(join(shared, '.package-lock.json'), '{}\n');
    symlinkSync(shared, join(checkout, 'node_modules'));
    writeFileSync(join(checkout, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true, scripts: { build: 'true' } }));
    writeFileSync(join(checkout, 'package-lock.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'scratch', version: '1.0.0' } } }));
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(shared, '.package-lock.json'), old, old);

    const r = await run('bash', [join(checkout, 'scripts', 'ensure-deps'), '--runtime-only']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.include(`node_modules links to ${shared}, an install shared with other checkouts: not reinstalling it here`);
    expect(r.stderr).to.not.include('installing npm packages');
    expect(existsSync(join(shared, 'some-package', 'index.js')), 'the shared install is untouched').to.equal(true);
  });
});
