/**
 * A two-unit bundle that escapes the sandbox root by a symlink (issue 16 §5), applied by the
 * real agent (`cluster-agent apply --root`): the first unit, a command, makes a symlink under the
 * root that points outside it (`ln -sfn OUTSIDE escape`, as tried in the issue); the second writes
 * through it (a file or a directory unit). The agent refuses the second unit and writes nothing
 * outside the root. node-path.test.ts shows the path check itself; this is the whole apply.
 */
import { expect } from 'chai';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run } from '../helpers';
import { snapshot } from './fs-snapshot';

describe('cluster-agent apply: a unit cannot write outside the sandbox root through a symlink an earlier unit made', function () {
  this.timeout(120_000);
  let dir: string;
  let outside: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'symlink-escape-'));
    outside = join(dir, 'outside');
    mkdirSync(join(outside, 'etc'), { recursive: true });
    writeFileSync(join(outside, 'etc', 'keep.conf'), 'not yours\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** One case: `link` is the first unit's shell command (cwd: the root), `write` the second unit's fields. */
  const cases: { name: string; link: (outside: string) => string; write: string; path: string }[] = [
    { name: 'a file unit through a directory symlink', link: (o) => `ln -sfn '${o}' escape`, write: 'kind: file, content: "pwned\\n"', path: '/escape/x' },
    { name: 'a file unit into a nested directory through it', link: (o) => `ln -sfn '${o}' escape`, write: 'kind: file, content: "pwned\\n"', path: '/escape/etc/new/x.conf' },
    { name: 'a file unit over an existing file through it', link: (o) => `ln -sfn '${o}' escape`, write: 'kind: file, content: "pwned\\n"', path: '/escape/etc/keep.conf' },
    { name: 'a directory unit through a directory symlink', link: (o) => `ln -sfn '${o}' escape`, write: 'kind: directory, mode: "0777"', path: '/escape/made-by-unit' },
    { name: 'a file unit through a relative symlink', link: () => 'mkdir -p opt && ln -sfn ../../outside opt/rel', write: 'kind: file, content: "pwned\\n"', path: '/opt/rel/x' },
    { name: 'a file unit at a dangling file symlink to outside', link: (o) => `mkdir -p etc && ln -sfn '${o}/created.conf' etc/app.conf`, write: 'kind: file, content: "pwned\\n"', path: '/etc/app.conf' },
  ];

  for (const c of cases) {
    it(`${c.name} (${c.path}) is refused; nothing is written outside`, async () => {
      const root = join(dir, 'root');
      const state = join(dir, 'state');
      mkdirSync(root);
      const before = snapshot(outside);
      const bundle = join(dir, 'escape.yaml');
      writeFileSync(bundle, [
        'name: escape',
        'version: 1',
        'units:',
        `  - { id: link, kind: command, run: ${JSON.stringify(c.link(outside))} }`,
        `  - { id: write, ${c.write}, path: ${JSON.stringify(c.path)} }`,
        '',
      ].join('\n'));
      const r = await run(process.execPath, [BIN.agent, 'apply', '--bundle', bundle, '--root', root, '--state-dir', state], { timeoutMs: 60_000 });
      expect(r.code, `${r.stdout}${r.stderr}`).to.equal(1);
      expect(`${r.stdout}${r.stderr}`).to.contain(`path ${JSON.stringify(c.path)} leads out of the node root`);
      expect(`${r.stdout}${r.stderr}`).to.contain('through a symbolic link');
      // The first unit ran (the link is there), the second wrote nothing outside.
      const linkPath = c.path === '/opt/rel/x' ? join(root, 'opt', 'rel') : c.path === '/etc/app.conf' ? join(root, 'etc', 'app.conf') : join(root, 'escape');
      expect(lstatSync(linkPath).isSymbolicLink(), 'the first unit made its link').to.equal(true);
      expect(snapshot(outside)).to.deep.equal(before);
      expect(existsSync(join(outside, 'x'))).to.equal(false);
    });
  }
});
