/**
 * Distributed files end to end: the built clusterctl as a process against a real coordinator
 * process and a real etcd. Upload/list/download round trip (bytes identical, binary too); a
 * file over 1 MiB refused with its size and the limit, nothing stored; `files rm` refused while
 * a stored bundle names the file (the bundle named); a bundle naming a missing file refused;
 * editions: a bundle version delivers the edition it was pushed with, whatever is uploaded later.
 * Size formatting and the limit check are pure and tested by table.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdSnapshot, expectReject, type RunResult } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { formatBytes, MAX_FILE_BYTES, MAX_GRPC_MESSAGE_BYTES, sizeProblem } from '../../coordinator/files/file-store';
import { MAX_MESSAGE_BYTES } from '../../coordinator/grpc-server';
import { BundleStore } from '../../coordinator/config/bundle-store';
import { EventLog } from '../../coordinator/event-log';
import { createLogger, Keyspace, NotFoundError, systemClock } from '../../shared';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function expectOk(r: RunResult): RunResult {
  expect(r.code, `exit ${r.code}; stdout ${r.stdout.slice(0, 2000)}; stderr ${r.stderr.slice(0, 2000)}`).to.equal(0);
  return r;
}

describe('files: sizes and limits (table)', () => {
  const rows: [number, string][] = [
    [0, '0 bytes'],
    [1, '1 byte'],
    [2048, '2.0 KiB'],
    [MAX_FILE_BYTES, '1 MiB'],
    [Math.round(1.4 * MAX_FILE_BYTES), '1.4 MiB'],
    [MAX_FILE_BYTES + 3, '1.000003 MiB (1048579 bytes)'],
  ];
  for (const [n, text] of rows) it(`${n} bytes → ${text}`, () => expect(formatBytes(n)).to.equal(text));

  it('the limit is 1 MiB inclusive, with the message an operator can act on', () => {
    expect(sizeProblem('a', MAX_FILE_BYTES)).to.equal(undefined);
    expect(sizeProblem('big.bin', Math.round(1.4 * MAX_FILE_BYTES))).to.equal("file big.bin is 1.4 MiB; the limit is 1 MiB (etcd's request limit is 1.5 MiB)");
    expect(sizeProblem('edge', MAX_FILE_BYTES + 1)).to.match(/^file edge is 1\.000001 MiB \(1048577 bytes\); the limit is 1 MiB/);
  });

  it('the gRPC message limit is the same on both ends and leaves room for a maximal file', () => {
    expect(MAX_MESSAGE_BYTES).to.equal(MAX_GRPC_MESSAGE_BYTES);
    expect(MAX_GRPC_MESSAGE_BYTES).to.be.greaterThan(MAX_FILE_BYTES * 1.5);
  });
});

describe('files: clusterctl against a real coordinator and etcd', function () {
  this.timeout(180_000);
  const suite = e2eSuite('files');

  it('upload, list, download: bytes identical (binary and text); a re-upload of the same bytes is a no-op', async () => {
    const cluster = suite.cluster({ name: 'files-roundtrip' });
    await cluster.startCoordinator();
    const bin = randomBytes(300 * 1024);
    const binPath = join(cluster.baseDir, 'blob.bin');
    writeFileSync(binPath, bin);
    const textPath = join(cluster.baseDir, 'motd.txt');
    writeFileSync(textPath, 'hello from the files API\n', { mode: 0o640 });

    let r = await cluster.ctl(['files', 'upload', binPath]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(new RegExp(`^file blob\\.bin stored: 300(\\.0)? KiB, sha256 ${sha(bin)}\n$`));
    r = await cluster.ctl(['files', 'upload', textPath, '--name', 'motd']);
    expect(r.code, r.stderr).to.equal(0);
    r = await cluster.ctl(['files', 'upload', textPath, '--name', 'motd']);
    expect(r.code, `idempotent re-upload: ${r.stderr}`).to.equal(0);

    r = await cluster.ctl(['files', '-o', 'json']);
    expect(r.code, r.stderr).to.equal(0);
    const listed = JSON.parse(r.stdout) as { name: string; size: number; sha256: string; mode: string; usedBy: string[] }[];
    expect(listed.map((f) => f.name)).to.deep.equal(['blob.bin', 'motd']);
    expect(listed[0]).to.include({ size: bin.length, sha256: sha(bin) });
    expect(listed[1]).to.include({ size: 25, mode: '0640' });
    r = await cluster.ctl(['files']);
    expect(r.stdout).to.match(/^NAME\s+SIZE\s+SHA256\s+AGE\s+USED BY/);

    const out = join(cluster.baseDir, 'blob.out');
    r = await cluster.ctl(['files', 'download', 'blob.bin', '-o', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(Buffer.compare(readFileSync(out), bin)).to.equal(0);
    r = await cluster.ctl(['files', 'download', 'motd']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('hello from the files API\n');

    // Same name, other content: refused unless --overwrite.
    writeFileSync(textPath, 'changed\n');
    r = await cluster.ctl(['files', 'upload', textPath, '--name', 'motd']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/file motd exists with other content.*--overwrite/);
    r = await cluster.ctl(['files', 'upload', textPath, '--name', 'motd', '--overwrite']);
    expect(r.code, r.stderr).to.equal(0);
    expect((await cluster.ctl(['files', 'download', 'motd'])).stdout).to.equal('changed\n');

    r = await cluster.ctl(['files', 'download', 'nope']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.equal('error: file nope not found (list files with `clusterctl files`)');
  });

  it('a file over 1 MiB is refused with its size and the limit, and nothing is stored', async () => {
    const cluster = suite.cluster({ name: 'files-too-large' });
    await cluster.startCoordinator();
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const before = await etcdSnapshot(client, ks.prefix);
    const big = join(cluster.baseDir, 'big.bin');
    writeFileSync(big, randomBytes(Math.round(1.4 * 1024 * 1024)));
    const r = await cluster.ctl(['files', 'upload', big]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.equal("error: file big.bin is 1.4 MiB; the limit is 1 MiB (etcd's request limit is 1.5 MiB)");
    const after = await etcdSnapshot(client, ks.prefix);
    expect(after).to.deep.equal(before);
    expect(Object.keys(after).filter((k) => k.startsWith(ks.filesPrefix()) || k.startsWith(ks.fileInfoPrefix()))).to.deep.equal([]);
  });

  it('rm is refused while a bundle uses the file (naming it); a bundle naming a missing file is refused', async () => {
    const cluster = suite.cluster({ name: 'files-in-use' });
    await cluster.startCoordinator();
    const client = suite.etcd.client();
    const keyspace = new Keyspace();
    const logger = createLogger({ level: 'silent' });
    const events = new EventLog({ client, keyspace, clock: systemClock, logger, actor: 'test' });
    const bundles = new BundleStore({ client, keyspace, events, clock: systemClock });
    const bundleText = (v: string, source: string): string =>
      `name: base\nversion: "${v}"\nunits:\n  - id: conf\n    kind: file\n    path: /etc/app.conf\n    source: ${source}\n`;

    // Missing source: refused, nothing stored.
    const missing = await expectReject(bundles.push(bundleText('1', 'app.conf')), /source file "app\.conf" not found; upload/);
    expect(missing).to.be.instanceOf(NotFoundError);
    expect(await etcdSnapshot(client, keyspace.configsPrefix())).to.deep.equal({});

    const path = join(cluster.baseDir, 'app.conf');
    writeFileSync(path, 'key = value\n');
    expect((await cluster.ctl(['files', 'upload', path])).code).to.equal(0);
    await bundles.push(bundleText('1', 'app.conf'));
    await bundles.push(bundleText('2', 'app.conf'));

    const r = await cluster.ctl(['files', 'rm', 'app.conf']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.match(/^error: file app\.conf is used by bundles base@1, base@2; /);
    expect(await client.get(keyspace.file('app.conf')).string()).to.equal('key = value\n');
    const listed = JSON.parse((await cluster.ctl(['files', '-o', 'json'])).stdout) as { usedBy: string[] }[];
    expect(listed[0].usedBy).to.deep.equal(['base@1', 'base@2']);

    // An unused file goes.
    writeFileSync(path, 'spare\n');
    expect((await cluster.ctl(['files', 'upload', path, '--name', 'spare'])).code).to.equal(0);
    const rm = await cluster.ctl(['files', 'rm', 'spare']);
    expect(rm.code, rm.stderr).to.equal(0);
    expect(await client.get(keyspace.file('spare')).string()).to.equal(null);
    expect(await client.get(keyspace.fileInfo('spare')).string()).to.equal(null);
    await events.stop();
  });

  it('a bundle whose file unit names an uploaded file, commissioned onto a real agent, writes the uploaded content', async () => {
    const cluster = suite.cluster({ name: 'files-commission' });
    await cluster.startCoordinator();
    const root = join(cluster.baseDir, 'root-n1');
    mkdirSync(root, { recursive: true });
    await cluster.startAgent('n1', { extraArgs: ['--root', root] });
    await cluster.waitForNodes('n1 connected', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);

    // JSON-looking content with a "content" key: it must arrive as is, not be unwrapped.
    const payload = '{"content": "not a wrapper", "list": [1, 2]}\nsecond line ünïcode\n';
    const src = join(cluster.baseDir, 'app.json');
    writeFileSync(src, payload);
    let r = await cluster.ctl(['files', 'upload', src]);
    expect(r.code, r.stderr).to.equal(0);
    const cfg = join(cluster.baseDir, 'cluster.yaml');
    writeFileSync(cfg, [
      'bundles:',
      '  - name: app',
      '    version: "1"',
      '    units:',
      '      - {id: conf, kind: file, path: /etc/app/app.json, source: app.json, mode: "0640"}',
      'groups:',
      '  worker: {bundle: app@1}',
      '',
    ].join('\n'));
    r = await cluster.ctl(['apply', '-f', cfg]);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    r = await cluster.ctl(['node', 'commission', 'n1', '-g', 'worker', '--wait'], 120_000);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(readFileSync(join(root, 'etc', 'app', 'app.json'), 'utf8')).to.equal(payload);
    const n1 = await cluster.node('n1');
    expect(n1?.state).to.equal('Commissioned');
    // Now in use: rm names the bundle.
    r = await cluster.ctl(['files', 'rm', 'app.json']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/used by bundle app@1/);
  });
});

describe('files: editions (an immutable bundle version delivers the same bytes forever)', function () {
  this.timeout(240_000);
  const suite = e2eSuite('file-editions');

  it('upload, push ntp@1, upload --overwrite, commission: the node gets the first content, ntp@1 keeps its digest; ntp@2 delivers the new one', async () => {
    const cluster = suite.cluster({ name: 'files-editions' });
    await cluster.startCoordinator();
    const root = join(cluster.baseDir, 'root-n1');
    mkdirSync(root, { recursive: true });
    await cluster.startAgent('n1', { extraArgs: ['--root', root] });
    await cluster.waitForNodes('n1 connected', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);

    const conf = join(cluster.baseDir, 'chrony.conf');
    writeFileSync(conf, 'server first.example iburst\n');
    expectOk(await cluster.ctl(['files', 'upload', conf]));
    const ntp = (v: string): string => {
      const p = join(cluster.baseDir, `ntp-${v}.yaml`);
      writeFileSync(p, `name: ntp\nversion: "${v}"\nunits:\n  - {id: conf, kind: file, path: /etc/chrony.conf, source: chrony.conf}\n`);
      return p;
    };
    expectOk(await cluster.ctl(['bundle', 'push', ntp('1')]));
    const digestBefore = (JSON.parse(expectOk(await cluster.ctl(['bundle', 'get', 'ntp@1', '-o', 'json'])).stdout) as { digest: string }).digest;

    writeFileSync(conf, 'server second.example iburst\n');
    const up = expectOk(await cluster.ctl(['files', 'upload', conf, '--overwrite']));
    expect(up.stdout).to.match(/edition [0-9a-f]{12} kept: ntp@1 still delivers it/);
    // Re-pushing ntp@1 cannot move it to the new edition.
    const again = await cluster.ctl(['bundle', 'push', ntp('1')]);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/ntp@1 exists and delivers chrony\.conf edition .*push a new version/);
    const digestAfter = (JSON.parse(expectOk(await cluster.ctl(['bundle', 'get', 'ntp@1', '-o', 'json'])).stdout) as { digest: string }).digest;
    expect(digestAfter).to.equal(digestBefore);

    expectOk(await cluster.ctl(['group', 'set', 'time', '--bundle', 'ntp@1']));
    expectOk(await cluster.ctl(['node', 'commission', 'n1', '-g', 'time', '--wait'], 120_000));
    expect(readFileSync(join(root, 'etc', 'chrony.conf'), 'utf8')).to.equal('server first.example iburst\n');

    // A push after the upload pins the new edition, with another digest.
    expectOk(await cluster.ctl(['bundle', 'push', ntp('2')]));
    const v2 = JSON.parse(expectOk(await cluster.ctl(['bundle', 'get', 'ntp@2', '-o', 'json'])).stdout) as { digest: string };
    expect(v2.digest).to.not.equal(digestBefore);
    expectOk(await cluster.ctl(['group', 'set', 'time', '--bundle', 'ntp@2']));
    expectOk(await cluster.ctl(['node', 'upgrade', 'n1', '--wait'], 120_000));
    expect(readFileSync(join(root, 'etc', 'chrony.conf'), 'utf8')).to.equal('server second.example iburst\n');

    // `files` shows both editions and who delivers each.
    const listed = JSON.parse(expectOk(await cluster.ctl(['files', '-o', 'json'])).stdout) as {
      name: string; editions: { current: boolean; usedBy: string[] }[];
    }[];
    expect(listed[0].editions.map((e) => [e.current, e.usedBy])).to.deep.equal([[true, ['ntp@2']], [false, ['ntp@1']]]);
    const table = expectOk(await cluster.ctl(['files'])).stdout;
    expect(table).to.match(/chrony\.conf .*ntp@2\s+current/);
    expect(table).to.match(/chrony\.conf .*ntp@1\s+kept/);
  });

  it('an edition nothing uses is deleted by the next upload; one a bundle pins is kept', async () => {
    const cluster = suite.cluster({ name: 'files-editions-prune' });
    await cluster.startCoordinator();
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const path = join(cluster.baseDir, 'motd');
    const editionKeys = async (): Promise<string[]> => Object.keys(await etcdSnapshot(client, ks.fileEditionsPrefix('motd')));
    writeFileSync(path, 'one\n');
    expectOk(await cluster.ctl(['files', 'upload', path]));
    writeFileSync(path, 'two\n');
    expectOk(await cluster.ctl(['files', 'upload', path, '--overwrite']));
    // "one" was used by nothing: gone.
    expect(await editionKeys()).to.deep.equal([ks.fileEdition('motd', sha(Buffer.from('two\n')))]);
    const b = join(cluster.baseDir, 'm.yaml');
    writeFileSync(b, 'name: m\nversion: "1"\nunits:\n  - {id: motd, kind: file, path: /etc/motd, source: motd}\n');
    expectOk(await cluster.ctl(['bundle', 'push', b]));
    writeFileSync(path, 'three\n');
    expectOk(await cluster.ctl(['files', 'upload', path, '--overwrite']));
    expect((await editionKeys()).sort()).to.deep.equal([ks.fileEdition('motd', sha(Buffer.from('two\n'))), ks.fileEdition('motd', sha(Buffer.from('three\n')))].sort());
    expect(await client.get(ks.fileEdition('motd', sha(Buffer.from('two\n')))).string()).to.equal('two\n');
  });
});
