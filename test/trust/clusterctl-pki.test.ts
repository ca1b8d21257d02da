/**
 * Bootstrap and the trust commands through the real programs: a cluster-coordinator process on
 * an empty cluster creates the CA and writes ca.crt, admin.yaml and join-token to its
 * --pki-dir; the built clusterctl, given only that admin.yaml, manages join tokens and users
 * (it takes the coordinator's address from the file), and a revoked user is refused from the
 * next call on.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, clusterctl, EtcdServer, freePort, spawnNode, testPki, TestPki, waitFor, type ManagedProcess, type RunResult } from '../helpers';
import { parseCredentials } from '../../shared/pki';
import { ClusterCa } from '../../shared/pki/cluster-ca';

describe('trust: clusterctl token and user commands against a coordinator process', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let coordinator: ManagedProcess;
  let dir: string;
  let admin: string;
  // HOME points nowhere so a developer's own clusterctl config cannot change the result.
  const env = { HOME: '/nonexistent' };

  before(async () => {
    etcd = await EtcdServer.start('trust-ctl');
    dir = mkdtempSync(join(tmpdir(), 'trust-ctl-'));
    const port = await freePort();
    await (await testPki()).writePkiDir(join(dir, 'pki'));
    coordinator = spawnNode('coordinator', BIN.coordinator, [
      '--etcd', etcd.endpoint, '--listen', `127.0.0.1:${port}`, '--pki-dir', join(dir, 'pki'), '--replica-id', 'c1', '--log-level', 'info',
    ]);
    await coordinator.waitForLog(`wrote ca.crt, admin.yaml, join-token to ${join(dir, 'pki')}`, 30_000);
    admin = join(dir, 'pki', 'admin.yaml');
  });
  after(async () => {
    await coordinator?.stop(5000);
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ctl = (credentials: string, ...args: string[]): Promise<RunResult> => clusterctl(['--credentials', credentials, ...args], { env });

  it('the first start writes ca.crt (0644), admin.yaml and join-token (0600) and the cluster secret (0600)', () => {
    const mode = (f: string): string => (statSync(join(dir, 'pki', f)).mode & 0o777).toString(8);
    expect([mode('ca.crt'), mode('admin.yaml'), mode('join-token'), mode('cluster-secret')]).to.deep.equal(['644', '600', '600', '600']);
    const creds = parseCredentials(readFileSync(admin, 'utf8'));
    expect(creds).to.include({ user: 'admin', role: 'admin', ca: readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8') });
    expect(readFileSync(join(dir, 'pki', 'join-token'), 'utf8')).to.match(/^K10[0-9a-f]{64}::[a-z0-9]{6}\.\S+\n$/);
  });

  it('token create prints the token once; token list shows it (no secret); token revoke marks it revoked', async () => {
    const created = await ctl(admin, 'token', 'create', '--ttl', '1h', '--uses', '2', '--description', 'rack 12');
    expect(created.code, created.stderr).to.equal(0);
    const token = created.stdout.trim();
    expect(token).to.match(/^K10[0-9a-f]{64}::[a-z0-9]{6}\.\S+$/);
    const id = /::([a-z0-9]{6})\./.exec(token)?.[1] ?? '';
    expect(created.stderr).to.include(`join token ${id} expires`);

    const listed = await ctl(admin, 'token', 'list', '-o', 'json');
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout).to.not.include(token.split('.')[1]);
    const tokens = JSON.parse(listed.stdout) as { id: string; usesLeft: number | null; description: string; revoked: boolean }[];
    expect(tokens.find((t) => t.id === id)).to.include({ usesLeft: 2, description: 'rack 12', revoked: false });
    expect(tokens.map((t) => t.description)).to.include('created by the first coordinator');

    const revoked = await ctl(admin, 'token', 'revoke', id);
    expect(revoked.code, revoked.stderr).to.equal(0);
    expect(revoked.stdout).to.equal(`join token ${id} revoked\n`);
    const after = JSON.parse((await ctl(admin, 'token', 'list', '-o', 'json')).stdout) as { id: string; revoked: boolean }[];
    expect(after.find((t) => t.id === id)?.revoked).to.equal(true);
  });

  it('user add writes a 0600 credentials file that works as is; a viewer is refused admin calls; user revoke refuses it from the next call', async () => {
    const bob = join(dir, 'bob.yaml');
    const added = await ctl(admin, 'user', 'add', 'bob', '--role', 'viewer', '-f', bob);
    expect(added.code, added.stderr).to.equal(0);
    expect(added.stdout).to.include(`credentials written to ${bob} (mode 0600`);
    expect((statSync(bob).mode & 0o777).toString(8)).to.equal('600');

    const nodes = await ctl(bob, 'nodes');
    expect(nodes.code, nodes.stderr).to.equal(0);
    const denied = await ctl(bob, 'token', 'list');
    expect(denied.code).to.equal(1);
    expect(denied.stderr).to.equal('error: permission denied: ListTokens needs the admin role; you are bob (viewer)\n');

    const users = JSON.parse((await ctl(admin, 'user', 'list', '-o', 'json')).stdout) as { name: string; role: string; revoked: boolean }[];
    expect(users.map((u) => `${u.name}:${u.role}:${String(u.revoked)}`)).to.deep.equal(['admin:admin:false', 'bob:viewer:false']);

    const revoked = await ctl(admin, 'user', 'revoke', 'bob', '--reason', 'left');
    expect(revoked.code, revoked.stderr).to.equal(0);
    const refused = await waitFor('bob refused', async () => {
      const r = await ctl(bob, 'nodes');
      return r.code === 1 ? r : undefined;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    expect(refused.stderr).to.match(/^error: certificate [0-9a-f]+ of viewer bob has been revoked\n$/);
  });

  it('credentials of another cluster: the failed TLS handshake is named, not reported as an unreachable coordinator', async () => {
    // Another cluster's CA (this coordinator stores the process's test CA, the one etcd trusts).
    const made = await ClusterCa.create();
    const foreign = new TestPki(made.ca, made.keyPem);
    const address = parseCredentials(readFileSync(admin, 'utf8')).coordinator[0];
    const file = foreign.writeCredentialsFile(await foreign.identity('admin'), [address]);
    const r = await clusterctl(['--credentials', file, '--timeout', '1s', 'nodes'], { env });
    foreign.cleanup();
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(new RegExp(`^error: the TLS handshake with the coordinator at ${address} failed \\(.+\\): check that ${file} is a credentials file of this cluster\n$`));
  });

  it('without credentials: one line naming the three ways to give them', async () => {
    const r = await clusterctl(['--credentials', join(dir, 'missing.yaml'), 'nodes'], { env });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(
      `error: cannot read credentials file ${join(dir, 'missing.yaml')}: no such file; give one with --credentials FILE, the CLUSTERCTL_CREDENTIALS environment variable, or \`credentials: FILE\` in the config file\n`,
    );
  });
});
