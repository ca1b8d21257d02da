/**
 * Secrets encrypted at rest (docs/secrets.md), end to end: the built clusterctl, a real
 * coordinator process, a real agent process and a real etcd with TLS and client certificates.
 *
 * - delivery: a secret file, a named registry secret, a file unit marked `secret: true` and a
 *   secret group variable reach the node (files mode 0600), while a command unit printing the
 *   variable and the secret unit's file fails; then every log file
 *   of the run, every event, every job record (GetJob and the raw jobs/ keys), the node's
 *   lastError and every raw etcd value are searched for each secret's bytes and base64: none;
 * - rotation: rotate-key re-encrypts every envelope (key id changed in etcd), the old key is
 *   dropped, and the values still decrypt and deliver;
 * - a secret in the bundle: stored sealed, shown redacted, admin only, its digest follows the
 *   cleartext (a changed secret is a changed version, the same one pushed again is not);
 * - reload: an agent restarted after applying secrets finds drift on their units and puts no
 *   secret in its log, the drift event, the node record or any job record;
 * - roles and bad input: a viewer or operator cannot --reveal or store a secret; an empty,
 *   too-short or oversized secret is refused.
 * The envelope, the redactor and the refusals are pure and tested by table.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdSnapshot, waitFor, type RunResult, type TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import {
  commandRedactor, comparable, ENVELOPE_PATTERN, fingerprint, isEnvelope, open, parseEnvelope, Redactor, REDACTED, seal,
} from '../../shared/secret-envelope';
import { comparableBundle, hasSecretUnits, openBundle, redactedBundle } from '../../coordinator/secrets/secret-content';
import { recordRedactor } from '../../agent/applied-record';
import { bundleProblems, canonicalJson, renderBundle, templateReferences, type Bundle } from '../../shared/bundle';
import { secretValueProblem } from '../../coordinator/secrets/secret-store';
import { sealVariables } from '../../coordinator/secrets/secret-variables';
import { InvalidArgumentError } from '../../shared';
import { registryAuth } from '../../cli/commands/secrets';
import { withSecretExtraVars } from '../../cli/commands/node-job';

function expectOk(r: RunResult, what = ''): RunResult {
  expect(r.code, `${what} exit ${r.code}; stdout ${r.stdout.slice(0, 2000)}; stderr ${r.stderr.slice(0, 2000)}`).to.equal(0);
  return r;
}

/** Each secret as it could leak: its bytes and its base64. */
function needles(secrets: readonly string[]): string[] {
  return secrets.flatMap((s) => [s, Buffer.from(s).toString('base64').replace(/=+$/, '')]);
}

function leaks(where: string, text: string, secrets: readonly string[]): string[] {
  return needles(secrets).filter((n) => text.includes(n)).map((n) => `${where} holds ${n.slice(0, 6)}…`);
}

describe('secrets: envelopes, redaction and refusals (table)', () => {
  const key = { id: '0a1b2c3d', key: randomBytes(32) };
  const fpKey = randomBytes(32);

  it('an envelope opens with its key, names it, and fails when any byte or its header is changed', () => {
    const clear = Buffer.from('s3cret-value');
    const env = seal(key, fingerprint(fpKey, clear), clear);
    expect(isEnvelope(env)).to.equal(true);
    expect(env).to.not.include('s3cret');
    const parts = parseEnvelope(env);
    if (!parts) throw new Error('no parts');
    expect(parts.keyId).to.equal(key.id);
    expect(open(parts, key.key).toString()).to.equal('s3cret-value');
    const flipped = Buffer.from(parts.sealed);
    flipped[0] ^= 1;
    expect(() => open({ ...parts, sealed: flipped }, key.key)).to.throw();
    expect(() => open({ ...parts, fingerprint: '0000000000000000' }, key.key)).to.throw();
    expect(() => open(parts, randomBytes(32))).to.throw();
    expect(`{"a":"${env}","b":"${env}"}`.match(ENVELOPE_PATTERN)).to.have.length(2);
  });

  it('the same secret sealed twice differs but compares equal; another secret does not', () => {
    const a = Buffer.from('same-secret');
    const e1 = seal(key, fingerprint(fpKey, a), a);
    const e2 = seal(key, fingerprint(fpKey, a), a);
    expect(e1).to.not.equal(e2);
    expect(comparable(e1)).to.equal(comparable(e2));
    const b = Buffer.from('other-secret');
    expect(comparable(seal(key, fingerprint(fpKey, b), b))).to.not.equal(comparable(e1));
    expect(comparable('plain')).to.equal('plain');
  });

  const rows: [string, string[], string, string][] = [
    ['the value', ['hunter22'], 'password hunter22 rejected', `password ${REDACTED} rejected`],
    ['its base64', ['hunter22'], 'auth aHVudGVyMjI=', `auth ${REDACTED}`],
    ['each line of a multi-line secret', ['-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----'], 'line 2: AAAABBBBCCCC', `line 2: ${REDACTED}`],
    ['the longer of two overlapping secrets first', ['abcd', 'abcdefgh'], 'x abcdefgh y', `x ${REDACTED} y`],
    ['nothing for a value under 4 bytes', ['ab'], 'ab ab', 'ab ab'],
  ];
  for (const [what, secrets, text, want] of rows) {
    it(`the redactor replaces ${what}`, () => expect(new Redactor(secrets).redact(text)).to.equal(want));
  }

  it('the redactor reaches every string of a result, keeps other values', () => {
    const r = new Redactor(['topsecret']);
    expect(r.redactDeep({ error: 'x topsecret', exitCode: 3, report: { units: [{ error: 'topsecret!' }] } }))
      .to.deep.equal({ error: `x ${REDACTED}`, exitCode: 3, report: { units: [{ error: `${REDACTED}!` }] } });
  });

  it('refuses empty, too short and oversized secrets with a message that does not echo them', () => {
    expect(secretValueProblem('secret x', 0, 10)).to.match(/is empty/);
    expect(secretValueProblem('secret x', 3, 10)).to.match(/at least 4/);
    expect(secretValueProblem('secret x', 11, 10)).to.equal('secret x is 11 bytes; the limit is 10');
    expect(secretValueProblem('secret x', 4, 10)).to.equal(undefined);
  });

  it('a secret variable name must be one of the given variables: `constructor` or `toString` is refused, not looked up on Object.prototype (the fuzz run got INTERNAL)', async () => {
    for (const name of ['constructor', 'toString', 'missing']) {
      const err = await sealVariables(undefined, { a: 'value1' }, [name], {}).then(() => undefined, (e: unknown) => e as Error);
      expect(err, name).to.be.instanceOf(InvalidArgumentError);
      expect(err?.message, name).to.equal(`secret variable ${name} has no value: give it with --secret-var ${name}=VALUE`);
    }
  });

  it('a command redacts its secret variables and its bundle\'s secret units; an applied record redacts the same after a restart', () => {
    const bundleJson = JSON.stringify({ name: 'b', version: '1', variables: {}, verify: [], units: [
      { id: 't', kind: 'file', path: '/t', content: 'unit-secret-1', secret: true },
      { id: 'p', kind: 'file', path: '/p', content: 'plain-content' },
    ] });
    const r = commandRedactor({ variables: { pw: 'var-secret-1', x: 'visible' }, secretVariables: ['pw'], bundleJson });
    expect(r.redact('unit-secret-1 var-secret-1 visible plain-content')).to.equal(`${REDACTED} ${REDACTED} visible plain-content`);
    // A name that only Object.prototype has is no secret value.
    expect(commandRedactor({ variables: {}, secretVariables: ['constructor'] }).empty).to.equal(true);
    const record = {
      bundle: { name: 'b', version: '1', variables: { pw: 'var-secret-1', x: 'visible' }, verify: [], units: (JSON.parse(bundleJson) as Bundle).units },
      secretVariables: ['pw'],
    };
    expect(recordRedactor(record).redact('run "echo var-secret-1" and unit-secret-1, visible')).to.equal(`run "echo ${REDACTED}" and ${REDACTED}, visible`);
    expect(recordRedactor({ ...record, secretVariables: undefined }).redact('var-secret-1')).to.equal('var-secret-1');
  });

  it('a bundle\'s secret content: compared by fingerprint, shown redacted, opened for the command; not templated', async () => {
    const fpKey = randomBytes(32);
    const sealed = (clear: string): string => seal(key, fingerprint(fpKey, Buffer.from(clear)), Buffer.from(clear));
    const b = (content: string): Bundle => ({ name: 'b', version: '1', variables: {}, verify: [], units: [
      { id: 't', kind: 'file', path: '/t', content, secret: true }, { id: 'p', kind: 'file', path: '/p', content: 'x {{ vars.y }}' },
    ] });
    expect(canonicalJson(comparableBundle(b(sealed('same-secret'))))).to.equal(canonicalJson(comparableBundle(b(sealed('same-secret')))));
    expect(canonicalJson(comparableBundle(b(sealed('same-secret'))))).to.not.equal(canonicalJson(comparableBundle(b(sealed('other-secret')))));
    expect(JSON.stringify(redactedBundle(b(sealed('same-secret'))))).to.include(REDACTED).and.not.include('secret:v1:');
    const opened = await openBundle(b(sealed('same-secret')), async (e) => { const p = parseEnvelope(e); if (!p) throw new Error('no envelope'); return open(p, key.key).toString(); });
    expect(opened.secrets).to.deep.equal(['same-secret']);
    expect(opened.bundle.units[0]).to.include({ content: 'same-secret' });
    expect(hasSecretUnits(b('x'))).to.equal(true);
    expect(hasSecretUnits({ units: [{ id: 'p', kind: 'file', path: '/p', content: 'x' }] })).to.equal(false);
    // Rendered as written, and its references are not the bundle's.
    const rendered = renderBundle(b('{{ vars.nope }} stays'), { extraVars: { y: '1' } });
    expect(rendered.units.map((u) => (u.kind === 'file' ? u.content : ''))).to.deep.equal(['{{ vars.nope }} stays', 'x 1']);
    expect([...templateReferences(b('{{ vars.nope }}')).variables.keys()]).to.deep.equal(['y']);
    expect(bundleProblems({ name: 'b', version: 1, units: [{ id: 's', kind: 'file', path: '/s', source: 'f', secret: true }] }))
      .to.deep.equal(['units[0].secret: marks inline content secret; this unit has none (a source is secret when it was uploaded with --secret)']);
  });

  it('registry credentials become a containers auth.json; secret extra vars join -e with their names', () => {
    expect(JSON.parse(registryAuth('reg.example', 'ci', 'pw'))).to.deep.equal({ auths: { 'reg.example': { auth: Buffer.from('ci:pw').toString('base64') } } });
    expect(withSecretExtraVars('{"a":"1"}', { tok: 'xyz1' })).to.deep.equal({ extraVarsJson: '{"a":"1","tok":"xyz1"}', secretExtraVars: ['tok'] });
    expect(withSecretExtraVars('', {})).to.deep.equal({ extraVarsJson: '', secretExtraVars: [] });
  });
});

describe('secrets: real coordinator, agent and etcd', function () {
  this.timeout(300_000);
  const suite = e2eSuite('secrets');

  async function startWithNode(name: string): Promise<{ cluster: TestCluster; root: string }> {
    const cluster = suite.cluster({ name });
    // Debug logging: the most the processes ever write is what the grep searches.
    await cluster.startCoordinator({ extraArgs: ['--log-level', 'debug'] });
    const root = join(cluster.baseDir, 'root-n1');
    mkdirSync(root, { recursive: true });
    await cluster.startAgent('n1', { extraArgs: ['--root', root, '--log-level', 'debug'] });
    await cluster.waitForNodes('n1 connected', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);
    return { cluster, root };
  }

  function write(cluster: TestCluster, name: string, content: string | Buffer, mode = 0o600): string {
    const p = join(cluster.baseDir, name);
    writeFileSync(p, content, { mode });
    return p;
  }

  /** Every envelope in etcd: key → key ids. */
  async function envelopes(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const [k, v] of Object.entries(await etcdSnapshot(suite.etcd.client()))) {
      const ids = (v.match(ENVELOPE_PATTERN) ?? []).map((e) => parseEnvelope(e)?.keyId ?? '?');
      if (ids.length) out.set(k, ids);
    }
    return out;
  }

  it('delivers a secret file, a registry secret and a secret variable (mode 0600); a failing command that prints the variable leaves it in no log, event, job record, lastError or etcd value', async () => {
    const { cluster, root } = await startWithNode('secrets-grep');
    const fileSecret = `-----BEGIN KEY-----\n${randomBytes(24).toString('hex')}\n-----END KEY-----\n`;
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const varSecret = `var-${randomBytes(12).toString('hex')}`;
    const inlineSecret = `inline-${randomBytes(12).toString('hex')}`;

    expectOk(await cluster.ctl(['files', 'upload', write(cluster, 'tls.key', fileSecret), '--secret']), 'upload --secret');
    expectOk(await cluster.ctl(['secret', 'set', 'registry/reg.example', '--username', 'ci', '--from-file', write(cluster, 'pw', `${password}\n`)]), 'secret set');
    write(cluster, 'bundle.yaml', [
      'name: sec',
      'version: 1',
      'units:',
      '  - {id: key, kind: file, path: /etc/app/tls.key, source: tls.key}',
      '  - {id: auth, kind: file, path: /etc/containers/auth.json, source: "secret:registry/reg.example"}',
      `  - {id: inline, kind: file, path: /etc/app/inline, content: "${inlineSecret}", secret: true}`,
      '  - id: use',
      '    kind: command',
      '    run: \'echo "connecting with {{ vars.db_password }}"; cat etc/app/inline; echo "login failed for {{ vars.db_password }}" >&2; exit 3\'',
      '',
    ].join('\n'));
    expectOk(await cluster.ctl(['bundle', 'push', '-f', join(cluster.baseDir, 'bundle.yaml')]), 'bundle push');
    expectOk(await cluster.ctl(['group', 'set', 'sec', '--bundle', 'sec@1', '--secret-var', `db_password=@${write(cluster, 'db', varSecret)}`]), 'group set');

    const commission = await cluster.ctl(['node', 'commission', 'n1', '-g', 'sec', '--wait'], 120_000);
    expect(commission.code, commission.stdout + commission.stderr).to.equal(1);

    // Delivered: the file units ran before the failing command.
    const key = join(root, 'etc/app/tls.key');
    expect(readFileSync(key, 'utf8')).to.equal(fileSecret);
    expect((statSync(key).mode & 0o777).toString(8)).to.equal('600');
    const auth = join(root, 'etc/containers/auth.json');
    expect(JSON.parse(readFileSync(auth, 'utf8'))).to.deep.equal({ auths: { 'reg.example': { auth: Buffer.from(`ci:${password}`).toString('base64') } } });
    expect((statSync(auth).mode & 0o777).toString(8)).to.equal('600');
    const inline = join(root, 'etc/app/inline');
    expect(readFileSync(inline, 'utf8')).to.equal(inlineSecret);
    expect((statSync(inline).mode & 0o777).toString(8)).to.equal('600');

    // The failure was recorded, with the variable replaced where the command printed it.
    const { node } = JSON.parse(expectOk(await cluster.ctl(['node', 'describe', 'n1', '-o', 'json'])).stdout) as { node: { state: string; lastError: string } };
    expect(node.state).to.equal('Failed');
    expect(node.lastError).to.include(REDACTED);
    const jobs = JSON.parse(expectOk(await cluster.ctl(['jobs', '-o', 'json'])).stdout) as { id: string }[];
    expect(jobs.length).to.be.greaterThan(0);
    const details: string[] = [];
    // describe exits 1 for a failed job: what matters is what it prints.
    for (const j of jobs) details.push((await cluster.ctl(['job', 'describe', j.id, '-o', 'json'])).stdout);
    expect(details.join('\n')).to.include(REDACTED);

    const secrets = [fileSecret.split('\n')[1], password, varSecret, inlineSecret];
    const found: string[] = [];
    found.push(...leaks('commission output', commission.stdout + commission.stderr, secrets));
    found.push(...leaks('node describe', JSON.stringify(node), secrets));
    details.forEach((d, i) => found.push(...leaks(`job ${jobs[i].id}`, d, secrets)));
    found.push(...leaks('events', expectOk(await cluster.ctl(['events', '-o', 'json', '--limit', '1000'])).stdout, secrets));
    found.push(...leaks('files list', expectOk(await cluster.ctl(['files', '-o', 'json'])).stdout, secrets));
    found.push(...leaks('group show', expectOk(await cluster.ctl(['group', 'show', 'sec', '-o', 'json'])).stdout, secrets));
    found.push(...leaks('bundle show', expectOk(await cluster.ctl(['bundle', 'show', 'sec@1', '-o', 'json'])).stdout, secrets));
    for (const f of readdirSync(cluster.logDir)) found.push(...leaks(`log ${f}`, readFileSync(join(cluster.logDir, f), 'utf8'), secrets));
    // Raw etcd: every key (jobs/, nodes/, events/, groups/, files/, secrets/ and the rest).
    for (const [k, v] of Object.entries(await etcdSnapshot(suite.etcd.client()))) found.push(...leaks(`etcd ${k}`, v, secrets));
    expect(found).to.deep.equal([]);
    // And the secrets are there, sealed: the group, the job record, the node's applied inputs are not (failed), files, secrets.
    const sealed = [...(await envelopes()).keys()].map((k) => k.replace(/^\/[^/]+\/v1\//, '').split('/')[0]);
    expect(sealed).to.include.members(['groups', 'jobs', 'files', 'file-editions', 'secrets', 'configs']);
  });

  it('rotate-key re-encrypts every envelope under a new key id, drops the old key, and the values still decrypt and deliver', async () => {
    const { cluster, root } = await startWithNode('secrets-rotate');
    const fileSecret = `file-${randomBytes(16).toString('hex')}`;
    const varSecret = `var-${randomBytes(16).toString('hex')}`;
    expectOk(await cluster.ctl(['files', 'upload', write(cluster, 'token', fileSecret), '--secret']));
    expectOk(await cluster.ctl(['secret', 'set', 'api', '--from-file', write(cluster, 'api', 'api-secret-value')]));
    write(cluster, 'bundle.yaml', [
      'name: rot',
      'version: 1',
      'units:',
      '  - {id: token, kind: file, path: /etc/app/token, source: token}',
      '  - {id: pw, kind: file, path: /etc/app/pw, content: "{{ vars.pw }}", mode: "0640"}',
      '',
    ].join('\n'));
    expectOk(await cluster.ctl(['bundle', 'push', '-f', join(cluster.baseDir, 'bundle.yaml')]));
    expectOk(await cluster.ctl(['group', 'set', 'rot', '--bundle', 'rot@1', '--secret-var', `pw=@${write(cluster, 'pw', varSecret)}`]));

    const before = await envelopes();
    const oldIds = new Set([...before.values()].flat());
    expect(oldIds.size).to.equal(1);
    const rotated = JSON.parse(expectOk(await cluster.ctl(['secrets', 'rotate-key', '-o', 'json'])).stdout) as {
      oldKeyIds: string; newKeyId: string; keysRewritten: number; valuesReencrypted: number; keysDropped: number;
    };
    expect(rotated.oldKeyIds).to.equal([...oldIds][0]);
    expect(rotated.newKeyId).to.not.equal(rotated.oldKeyIds);
    // files/token, file-editions/token/<sha>, secrets/api, groups/rot.
    expect(rotated.keysRewritten).to.equal(before.size);
    expect(rotated.keysRewritten).to.equal(4);
    expect(rotated.keysDropped).to.equal(1);
    const after = await envelopes();
    expect([...after.keys()].sort()).to.deep.equal([...before.keys()].sort());
    expect(new Set([...after.values()].flat())).to.deep.equal(new Set([rotated.newKeyId]));
    const keyring = JSON.parse(Object.values(await etcdSnapshot(suite.etcd.client(), '/')).find((v) => v.includes('"active"')) ?? '{}') as { active: string; keys: { id: string }[] };
    expect(keyring.active).to.equal(rotated.newKeyId);
    expect(keyring.keys.map((k) => k.id)).to.deep.equal([rotated.newKeyId]);

    // Still usable: revealed by an admin, and delivered by a commission.
    expect(expectOk(await cluster.ctl(['files', 'download', 'token', '--reveal'])).stdout).to.equal(fileSecret);
    expectOk(await cluster.ctl(['node', 'commission', 'n1', '-g', 'rot', '--wait'], 120_000), 'commission after rotation');
    expect(readFileSync(join(root, 'etc/app/token'), 'utf8')).to.equal(fileSecret);
    expect((statSync(join(root, 'etc/app/token')).mode & 0o777).toString(8)).to.equal('600');
    expect(readFileSync(join(root, 'etc/app/pw'), 'utf8')).to.equal(varSecret);
    // The node is up to date: its applied secret (sealed) compares equal to the group's by fingerprint.
    const sealedNow = await envelopes();
    const again = JSON.parse(expectOk(await cluster.ctl(['secrets', 'rotate-key', '-o', 'json'])).stdout) as { keysRewritten: number };
    // Now also the commission's job record (its variables), the node's applied inputs and the
    // node history entries that hold them: every key with an envelope, none left on the old key.
    expect([...sealedNow.keys()].filter((k) => k.includes('/history/')).length, 'history entries hold the sealed inputs').to.be.greaterThan(0);
    // (At least: a history entry written while it ran is sealed under the new key or rewritten too.)
    expect(again.keysRewritten).to.be.at.least(sealedNow.size);
    const idsAfter = new Set([...(await envelopes()).values()].flat());
    expect(idsAfter.size, 'one key for every envelope').to.equal(1);
    expect(idsAfter.has(rotated.newKeyId), 'the second rotation moved everything off the first one\'s key').to.equal(false);
    const { node: n1 } = JSON.parse(expectOk(await cluster.ctl(['node', 'describe', 'n1', '-o', 'json'])).stdout) as { node: { state: string; outOfDate: boolean; outOfDateReasons: string[] } };
    expect(n1.state).to.equal('Commissioned');
    expect(n1.outOfDate, n1.outOfDateReasons.join('; ')).to.equal(false);

    // A secret extra var: delivered, and sealed in the job record (and the node's applied inputs).
    const extraSecret = `extra-${randomBytes(16).toString('hex')}`;
    expectOk(await cluster.ctl(['node', 'repair', 'n1', '--secret-var', `pw=@${write(cluster, 'extra', extraSecret)}`, '--wait'], 120_000), 'repair with a secret extra var');
    expect(readFileSync(join(root, 'etc/app/pw'), 'utf8')).to.equal(extraSecret);
    const raw = Object.entries(await etcdSnapshot(suite.etcd.client()));
    expect(raw.filter(([, v]) => v.includes(extraSecret)).map(([k]) => k)).to.deep.equal([]);
    expect(raw.some(([k, v]) => k.includes('/jobs/') && (v.match(ENVELOPE_PATTERN) ?? []).length > 0 && v.includes('"repair"'))).to.equal(true);
  });

  it('a file unit marked secret: stored sealed, shown as [secret], admin only to push; the digest follows the cleartext; rotation re-encrypts it', async () => {
    const { cluster, root } = await startWithNode('secrets-in-bundle');
    const secretA = `unit-a-${randomBytes(12).toString('hex')}`;
    const secretB = `unit-b-${randomBytes(12).toString('hex')}`;
    const bundle = (secret: string, mode = ''): string => write(cluster, 'bundle.yaml', [
      'name: sb',
      'version: 1',
      'units:',
      `  - {id: token, kind: file, path: /etc/app/token, content: "${secret}", secret: true${mode}}`,
      '  - {id: plain, kind: file, path: /etc/app/plain, content: "not secret {{ vars.x }}"}',
      'variables: {x: "1"}',
      '',
    ].join('\n'));
    const operator = join(cluster.baseDir, 'operator.yaml');
    expectOk(await cluster.ctl(['user', 'add', 'op', '--role', 'operator', '-f', operator]));
    const denied = await cluster.ctl(['--credentials', operator, 'bundle', 'push', '-f', bundle(secretA)]);
    expect(denied.code).to.equal(1);
    expect(denied.stderr).to.match(/permission denied: PushBundle\(secret\) needs the admin role/);

    const pushed = JSON.parse(expectOk(await cluster.ctl(['bundle', 'push', '-f', bundle(secretA), '-o', 'json'])).stdout) as { digest: string };
    // Stored sealed: the configs/ key holds an envelope, no key holds the cleartext.
    const raw = Object.entries(await etcdSnapshot(suite.etcd.client()));
    expect(raw.filter(([, v]) => v.includes(secretA)).map(([k]) => k)).to.deep.equal([]);
    expect(raw.some(([k, v]) => k.includes('/configs/sb/1') && (v.match(ENVELOPE_PATTERN) ?? []).length === 1)).to.equal(true);
    // Shown redacted, in every form.
    for (const o of [[], ['-o', 'json'], ['-o', 'yaml']]) {
      const shown = expectOk(await cluster.ctl(['bundle', 'show', 'sb@1', ...o])).stdout;
      expect(shown, o.join(' ')).to.include(REDACTED);
      expect(shown, o.join(' ')).to.not.match(/secret:v1:|unit-a-/);
    }
    // The same cleartext again: the same version (sealed anew, compared by fingerprint); another: a changed version, refused.
    const again = JSON.parse(expectOk(await cluster.ctl(['bundle', 'push', '-f', bundle(secretA), '-o', 'json'])).stdout) as { digest: string };
    expect(again.digest).to.equal(pushed.digest);
    const changed = await cluster.ctl(['bundle', 'push', '-f', bundle(secretB)]);
    expect(changed.code).to.equal(1);
    expect(changed.stderr).to.match(/bundle sb@1 exists with different content; bump version/);
    expect(changed.stdout + changed.stderr).to.not.include(secretB);
    // Not templated, and not in a cluster file (which is stored as written).
    write(cluster, 'cluster.yaml', 'bundles:\n  - file: bundle.yaml\n');
    const applied = await cluster.ctl(['apply', '-f', join(cluster.baseDir, 'cluster.yaml')]);
    expect(applied.code).to.equal(1);
    expect(applied.stderr).to.match(/bundle sb@1 has a unit with secret: true; a cluster file is stored as written/);

    expectOk(await cluster.ctl(['group', 'set', 'sb', '--bundle', 'sb@1']));
    expectOk(await cluster.ctl(['node', 'commission', 'n1', '-g', 'sb', '--wait'], 120_000), 'commission');
    expect(readFileSync(join(root, 'etc/app/token'), 'utf8')).to.equal(secretA);
    expect((statSync(join(root, 'etc/app/token')).mode & 0o777).toString(8)).to.equal('600');
    expect((statSync(join(root, 'etc/app/plain')).mode & 0o777).toString(8)).to.equal('644');
    expect(readFileSync(join(root, 'etc/app/plain'), 'utf8')).to.equal('not secret 1');

    // Rotation re-encrypts the stored bundle's envelope; the digest stays, the value still delivers.
    const before = (await envelopes()).get([...(await envelopes()).keys()].find((k) => k.includes('/configs/sb/1')) ?? '');
    expect(before).to.have.length(1);
    const rotated = JSON.parse(expectOk(await cluster.ctl(['secrets', 'rotate-key', '-o', 'json'])).stdout) as { newKeyId: string };
    const after = [...(await envelopes()).entries()].find(([k]) => k.includes('/configs/sb/1'))?.[1];
    expect(after).to.deep.equal([rotated.newKeyId]);
    const shownAfter = JSON.parse(expectOk(await cluster.ctl(['bundle', 'show', 'sb@1', '-o', 'json'])).stdout) as { digest: string };
    expect(shownAfter.digest).to.equal(pushed.digest);
    writeFileSync(join(root, 'etc/app/token'), 'changed by hand');
    expectOk(await cluster.ctl(['node', 'repair', 'n1', '--wait'], 120_000), 'repair after rotation');
    expect(readFileSync(join(root, 'etc/app/token'), 'utf8')).to.equal(secretA);
  });

  it('an agent restarted after applying a secret variable and a secret unit, finding drift on both, puts neither in its log, the drift event, the node record or a job record', async () => {
    const { cluster, root } = await startWithNode('secrets-reload');
    const varSecret = `reload-var-${randomBytes(10).toString('hex')}`;
    const unitSecret = `reload-unit-${randomBytes(10).toString('hex')}`;
    write(cluster, 'bundle.yaml', [
      'name: rl',
      'version: 1',
      'units:',
      `  - {id: token, kind: file, path: /etc/app/token, content: "${unitSecret}", secret: true}`,
      // The rendered command is what a command unit's drift names ("... would run").
      '  - {id: seed, kind: command, run: \'echo "{{ vars.pw }}" > seeded\', creates: /seeded}',
      '',
    ].join('\n'));
    expectOk(await cluster.ctl(['bundle', 'push', '-f', join(cluster.baseDir, 'bundle.yaml')]));
    expectOk(await cluster.ctl(['group', 'set', 'rl', '--bundle', 'rl@1', '--secret-var', `pw=@${write(cluster, 'pw', varSecret)}`]));
    expectOk(await cluster.ctl(['node', 'commission', 'n1', '-g', 'rl', '--wait'], 120_000), 'commission');
    expect(readFileSync(join(root, 'seeded'), 'utf8')).to.equal(`${varSecret}\n`);

    // Drift on both units while the agent is down, then a restart: it re-verifies its record.
    const agent = cluster.agent('n1');
    await agent.kill();
    rmSync(join(root, 'seeded'));
    writeFileSync(join(root, 'etc/app/token'), `${unitSecret}-edited\n`);
    await agent.restart();
    await agent.proc.waitForLog(/"msg":"drift found"/, 60_000);
    const node = await waitFor('the drift recorded on the node', async () => {
      const { node: n } = JSON.parse(expectOk(await cluster.ctl(['node', 'describe', 'n1', '-o', 'json'])).stdout) as { node: { driftSummary?: string } };
      return n.driftSummary ? n : undefined;
    }, { timeoutMs: 60_000 });
    // The command unit's drift was reported, with the variable replaced.
    expect(node.driftSummary).to.match(/seed \(drift: /);
    expect(node.driftSummary).to.include(REDACTED);

    const secrets = [varSecret, unitSecret];
    const found: string[] = [];
    found.push(...leaks('node describe', JSON.stringify(node), secrets));
    found.push(...leaks('events', expectOk(await cluster.ctl(['events', '-o', 'json', '--limit', '1000'])).stdout, secrets));
    const jobs = JSON.parse(expectOk(await cluster.ctl(['jobs', '-o', 'json'])).stdout) as { id: string }[];
    for (const j of jobs) found.push(...leaks(`job ${j.id}`, (await cluster.ctl(['job', 'describe', j.id, '-o', 'json'])).stdout, secrets));
    for (const f of readdirSync(cluster.logDir)) found.push(...leaks(`log ${f}`, readFileSync(join(cluster.logDir, f), 'utf8'), secrets));
    for (const [k, v] of Object.entries(await etcdSnapshot(suite.etcd.client()))) found.push(...leaks(`etcd ${k}`, v, secrets));
    expect(found).to.deep.equal([]);
  });

  it('a viewer or operator cannot reveal or store a secret; a secret is withheld without --reveal; bad input is refused', async () => {
    const cluster = suite.cluster({ name: 'secrets-roles' });
    await cluster.startCoordinator();
    const secret = `only-admins-${randomBytes(8).toString('hex')}`;
    expectOk(await cluster.ctl(['files', 'upload', write(cluster, 'cred', secret), '--secret']));
    const users: Record<string, string> = {};
    for (const role of ['viewer', 'operator']) {
      users[role] = join(cluster.baseDir, `${role}.yaml`);
      expectOk(await cluster.ctl(['user', 'add', role, '--role', role, '-f', users[role]]));
    }
    const as = (role: string, args: string[]): Promise<RunResult> => cluster.ctl(['--credentials', users[role], ...args]);

    for (const role of ['viewer', 'operator']) {
      const reveal = await as(role, ['files', 'download', 'cred', '--reveal']);
      expect(reveal.code, role).to.equal(1);
      expect(reveal.stderr, role).to.equal(`error: permission denied: Download(secret) needs the admin role; you are ${role} (${role})\n`);
      expect(reveal.stdout + reveal.stderr).to.not.include(secret);
      const plain = await as(role, ['files', 'download', 'cred']);
      expect(plain.code, role).to.equal(1);
      expect(plain.stderr).to.match(/file cred is secret: its content is withheld/);
      expect(plain.stdout + plain.stderr).to.not.include(secret);
      const set = await as(role, ['secret', 'set', 'x', '--from-file', write(cluster, 'x', 'xxxxxxxx')]);
      expect(set.code, role).to.equal(1);
      expect(set.stderr).to.match(/permission denied: SetSecret needs the admin role/);
    }
    // The list shows that it is secret, not its size.
    const listed = JSON.parse(expectOk(await as('viewer', ['files', '-o', 'json'])).stdout) as { name: string; size: number; secret: boolean }[];
    expect(listed).to.have.length(1);
    expect(listed[0]).to.include({ name: 'cred', size: 0, secret: true });
    expect(expectOk(await as('viewer', ['files'])).stdout).to.match(/^cred\s+secret\s/m);
    expect(expectOk(await cluster.ctl(['files', 'download', 'cred', '--reveal'])).stdout).to.equal(secret);

    // An operator may change a group holding a secret variable, not add one.
    write(cluster, 'bundle.yaml', 'name: g\nversion: 1\nunits:\n  - {id: f, kind: file, path: /etc/g, content: "{{ vars.pw }}"}\n');
    expectOk(await cluster.ctl(['bundle', 'push', '-f', join(cluster.baseDir, 'bundle.yaml')]));
    expectOk(await cluster.ctl(['group', 'set', 'g', '--bundle', 'g@1', '--secret-var', `pw=@${write(cluster, 'pw', 'group-secret-1')}`]));
    expectOk(await as('operator', ['group', 'set', 'g', '--min-size', '0']), 'operator keeps the sealed value');
    const denied = await as('operator', ['group', 'set', 'g', '--secret-var', `pw=@${write(cluster, 'pw2', 'group-secret-2')}`]);
    expect(denied.code).to.equal(1);
    expect(denied.stderr).to.match(/permission denied: SetGroup\(secret\) needs the admin role/);
    const shown = expectOk(await as('viewer', ['group', 'show', 'g'])).stdout;
    expect(shown).to.include('pw=(secret)');
    expect(shown).to.not.include('group-secret');

    // Bad input: refused with INVALID_ARGUMENT, nothing stored, the value not echoed.
    const empty = await cluster.ctl(['files', 'upload', write(cluster, 'empty', ''), '--secret']);
    expect(empty.code).to.equal(1);
    expect(empty.stderr).to.match(/secret file empty is empty/);
    const big = await cluster.ctl(['files', 'upload', write(cluster, 'big', randomBytes(300 * 1024)), '--secret']);
    expect(big.code).to.equal(1);
    expect(big.stderr).to.match(/secret file big is 307200 bytes; the limit is 262144/);
    const short = await cluster.ctl(['secret', 'set', 'short', '--from-file', write(cluster, 'short', 'ab')]);
    expect(short.code).to.equal(1);
    expect(short.stderr).to.match(/at least 4/);
    const shortVar = await cluster.ctl(['group', 'set', 'g', '--secret-var', 'pw=xy']);
    expect(shortVar.code).to.equal(1);
    expect(shortVar.stderr).to.match(/secret variable pw is 2 byte\(s\)/);
    const names = JSON.parse(expectOk(await cluster.ctl(['files', '-o', 'json'])).stdout) as { name: string }[];
    expect(names.map((n) => n.name)).to.deep.equal(['cred']);
  });
});
