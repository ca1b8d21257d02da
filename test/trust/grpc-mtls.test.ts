/**
 * Mutual TLS over a real grpc-js server on 127.0.0.1:0 with the cluster's credentials, and a
 * tiny service whose method paths are the cluster's own (so the default role table applies).
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ClusterServerCredentials, serverCredentials, clientCredentials, peerIdentity, peerIdentities, fetchPinnedCa, checkServerCertificate } from '../../shared/pki/grpc-credentials';
import { createKeyAndCsr, type ClusterCa, type KeyAndCertificate } from '../../shared/pki/cluster-ca';
import type { PeerIdentity } from '../../shared/pki/roles';
import { newCa, identity } from './fixtures';

const JSON_CODEC = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString()) as unknown,
};

const PATHS = {
  getStatus: '/cluster.v1.ClusterService/GetStatus', // viewer and up
  createToken: '/cluster.v1.PkiService/CreateToken', // admin
  connect: '/cluster.v1.AgentService/Connect', // agents only (unary here: the check is per call)
  join: '/cluster.v1.PkiService/Join', // open: no certificate needed
};

function method(path: string): grpc.MethodDefinition<unknown, unknown> {
  return {
    path, requestStream: false, responseStream: false,
    requestSerialize: JSON_CODEC.serialize, requestDeserialize: JSON_CODEC.deserialize,
    responseSerialize: JSON_CODEC.serialize, responseDeserialize: JSON_CODEC.deserialize,
  };
}

interface Reply { identity?: PeerIdentity; anonymous?: boolean }

class ProbeServer {
  readonly handled: string[] = [];
  readonly revoked = new Set<string>();
  private constructor(readonly server: grpc.Server, readonly creds: ClusterServerCredentials, readonly port: number) {}

  static async start(ca: ClusterCa, serving: KeyAndCertificate, caPem = ca.certPem): Promise<ProbeServer> {
    const server = new grpc.Server();
    const revoked = new Set<string>();
    const creds = serverCredentials({ caPem, certPem: serving.certPem, keyPem: serving.keyPem, openMethods: [PATHS.join], isRevoked: (s) => revoked.has(s) });
    const handled: string[] = [];
    const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, path] of Object.entries(PATHS)) {
      def[name] = method(path);
      impl[name] = (call: grpc.ServerUnaryCall<unknown, Reply>, cb: grpc.sendUnaryData<Reply>) => {
        handled.push(path);
        if (path === PATHS.join) {
          cb(null, { anonymous: call.getAuthContext().sslPeerCertificate === undefined });
          return;
        }
        cb(null, { identity: peerIdentity(call) });
      };
    }
    server.addService(def, impl);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    const probe = new ProbeServer(server, creds, port);
    (probe as { revoked: Set<string> }).revoked = revoked;
    (probe as { handled: string[] }).handled = handled;
    return probe;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

async function call(client: grpc.Client, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, JSON_CODEC.serialize, (b: Buffer) => JSON_CODEC.deserialize(b) as Reply, {}, { deadline: Date.now() + 5000 }, (err, res) => {
      if (err) reject(err);
      else resolve(res as Reply);
    });
  });
}

async function callError(client: grpc.Client, path: string): Promise<grpc.ServiceError> {
  try {
    await call(client, path);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${path} succeeded but should have been refused`);
}

describe('trust: mutual TLS over real grpc-js', function () {
  this.timeout(30_000);
  let ca: ClusterCa;
  let otherCa: ClusterCa;
  let server: ProbeServer;
  const clients: grpc.Client[] = [];
  let creds: Record<'admin' | 'viewer' | 'agent' | 'foreign', KeyAndCertificate & { serial: string }>;

  function client(options: { cert?: KeyAndCertificate; caPem?: string; address?: string; channelOptions?: grpc.ChannelOptions } = {}): grpc.Client {
    const c = new grpc.Client(
      options.address ?? server.address,
      clientCredentials({ caPem: options.caPem ?? ca.certPem, certPem: options.cert?.certPem, keyPem: options.cert?.keyPem }),
      options.channelOptions,
    );
    clients.push(c);
    return c;
  }

  before(async () => {
    ca = await newCa();
    otherCa = await newCa();
    server = await ProbeServer.start(ca, await identity(ca, 'coordinator', 'c1'));
    creds = {
      admin: await identity(ca, 'admin', 'root-user'),
      viewer: await identity(ca, 'viewer', 'alice'),
      agent: await identity(ca, 'agent', 'node-7'),
      foreign: await identity(otherCa, 'admin', 'root-user'),
    };
  });

  after(() => {
    for (const c of clients) c.close();
    server.stop();
  });

  it('a client with a cluster certificate is served and the handler sees its verified identity', async () => {
    const res = await call(client({ cert: creds.admin }), PATHS.getStatus);
    expect(res.identity).to.include({ role: 'admin', name: 'root-user', serial: creds.admin.serial });
    const agent = await call(client({ cert: creds.agent }), PATHS.connect);
    expect(agent.identity).to.include({ role: 'agent', name: 'node-7' });
  });

  it('a client without a certificate is refused on every method but the open join method', async () => {
    const anon = client();
    for (const path of [PATHS.getStatus, PATHS.createToken, PATHS.connect]) {
      const err = await callError(anon, path);
      expect(err.code, path).to.equal(grpc.status.UNAUTHENTICATED);
      expect(err.details).to.match(/no client certificate/);
    }
    expect(await call(anon, PATHS.join)).to.deep.equal({ anonymous: true });
  });

  it('a certificate from another CA is refused (the handshake completes, no call gets through)', async () => {
    const before = server.handled.length;
    const err = await callError(client({ cert: creds.foreign }), PATHS.getStatus);
    expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(server.handled.length).to.equal(before);
  });

  it('a plaintext client is refused', async () => {
    const plain = new grpc.Client(server.address, grpc.credentials.createInsecure());
    clients.push(plain);
    const err = await callError(plain, PATHS.getStatus);
    expect(err.code).to.equal(grpc.status.UNAVAILABLE);
  });

  it('TLS 1.2 is refused at the handshake', async () => {
    const err = await new Promise<Error>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.port, maxVersion: 'TLSv1.2', ca: ca.certPem, ALPNProtocols: ['h2'] });
      s.once('secureConnect', () => { s.destroy(); reject(new Error('TLS 1.2 handshake succeeded')); });
      s.once('error', resolve);
    });
    expect(err.message).to.match(/version|protocol/i);
  });

  it('a role below the method’s requirement gets PERMISSION_DENIED naming the role needed', async () => {
    const err = await callError(client({ cert: creds.viewer }), PATHS.createToken);
    expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(err.details).to.equal('permission denied: CreateToken needs the admin role; you are alice (viewer)');
    const agentErr = await callError(client({ cert: creds.agent }), PATHS.getStatus);
    expect(agentErr.code).to.equal(grpc.status.PERMISSION_DENIED);
    const userErr = await callError(client({ cert: creds.admin }), PATHS.connect);
    expect(userErr.details).to.match(/Connect needs an agent certificate; you are root-user \(admin\)/);
    expect(await call(client({ cert: creds.admin }), PATHS.createToken)).to.have.property('identity');
  });

  it('a revoked serial is refused from the next call on', async () => {
    const c = client({ cert: creds.viewer });
    await call(c, PATHS.getStatus);
    server.revoked.add(creds.viewer.serial);
    try {
      const err = await callError(c, PATHS.getStatus);
      expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(err.details).to.equal(`certificate ${creds.viewer.serial} of viewer alice has been revoked`);
    } finally {
      server.revoked.delete(creds.viewer.serial);
    }
  });

  it('a certificate is parsed once for all its calls, and revoking it still refuses the next call on the same and on a new connection', async () => {
    const bob = await identity(ca, 'viewer', 'bob');
    const c = client({ cert: bob });
    const before = peerIdentities.parseCount;
    for (let i = 0; i < 5; i++) expect((await call(c, PATHS.getStatus)).identity).to.include({ name: 'bob', serial: bob.serial });
    // Five calls, each read by the interceptor and the handler: one parse.
    expect(peerIdentities.parseCount - before).to.equal(1);
    server.revoked.add(bob.serial);
    try {
      for (const conn of [c, client({ cert: bob })]) {
        const err = await callError(conn, PATHS.getStatus);
        expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
        expect(err.details).to.equal(`certificate ${bob.serial} of viewer bob has been revoked`);
      }
    } finally {
      server.revoked.delete(bob.serial);
    }
    expect((await call(c, PATHS.getStatus)).identity).to.include({ name: 'bob' });
    expect(peerIdentities.parseCount - before).to.equal(1);
  });

  it('a client accepts a coordinator certificate whatever name it dialled', async () => {
    const c = client({ cert: creds.admin, channelOptions: { 'grpc.ssl_target_name_override': 'not-in-the-certificate.example' } });
    expect((await call(c, PATHS.getStatus)).identity?.role).to.equal('admin');
  });

  it('a client refuses a server whose certificate another CA issued', async () => {
    const rogue = await ProbeServer.start(otherCa, await identity(otherCa, 'coordinator', 'c1'), ca.certPem);
    try {
      const err = await callError(client({ cert: creds.admin, address: rogue.address }), PATHS.getStatus);
      expect(err.code).to.equal(grpc.status.UNAVAILABLE);
      expect(rogue.handled).to.deep.equal([]);
    } finally {
      rogue.stop();
    }
  });

  // The client's cache of verified server certificates must not keep an expired one usable.
  // (Node's TLS stack also refuses it, against the CA, before checkServerIdentity runs.)
  it('a server certificate the client verified before is refused once it expired', async () => {
    const serving = await identity(ca, 'coordinator', 'c-short', { validityMs: 4000 });
    const short = await ProbeServer.start(ca, serving);
    try {
      expect((await call(client({ cert: creds.admin, address: short.address }), PATHS.getStatus)).identity?.role).to.equal('admin');
      const expiresAt = new X509Certificate(serving.certPem).validTo;
      // validTo has whole seconds: wait until it is past.
      while (Date.now() <= Date.parse(expiresAt) + 1000) await new Promise((r) => setTimeout(r, 200));
      const err = await callError(client({ cert: creds.admin, address: short.address }), PATHS.getStatus);
      expect(err.code).to.equal(grpc.status.UNAVAILABLE);
      expect(err.details).to.match(/expired/);
    } finally {
      short.stop();
    }
  });

  it('a client refuses a server whose cluster certificate is not for the coordinator role', async () => {
    const keys = await createKeyAndCsr('node-7');
    const agentCert = await ca.issueForCsr(keys.csrPem, { role: 'agent', name: 'node-7' });
    expect(checkServerCertificate(ca.certPem, 'coordinator', new X509Certificate(agentCert.certPem).raw)?.message).to.match(/is for agent node-7, not a coordinator/);
    const rogue = await ProbeServer.start(ca, { certPem: agentCert.certPem, keyPem: keys.keyPem });
    try {
      const err = await callError(client({ cert: creds.admin, address: rogue.address }), PATHS.getStatus);
      expect(err.code).to.equal(grpc.status.UNAVAILABLE);
      expect(rogue.handled).to.deep.equal([]);
    } finally {
      rogue.stop();
    }
  });

  it('fetchPinnedCa returns the CA when the pinned hash matches, and refuses another CA', async () => {
    expect((await fetchPinnedCa(server.address, ca.publicKeyHash)).trim()).to.equal(ca.certPem.trim());
    let err: Error | undefined;
    try {
      await fetchPinnedCa(server.address, otherCa.publicKeyHash);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/does not present the CA this join token pins .*another cluster, or someone is in the middle/);
  });

  it('rotate() serves a new certificate to new connections', async () => {
    const next = await identity(ca, 'coordinator', 'c1');
    server.creds.rotate(next.certPem, next.keyPem);
    const serial = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.port, ca: ca.certPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      s.once('secureConnect', () => { resolve(s.getPeerCertificate().serialNumber.toLowerCase()); s.destroy(); });
      s.once('error', reject);
    });
    expect(serial).to.equal(next.serial);
    expect((await call(client({ cert: creds.admin }), PATHS.getStatus)).identity?.name).to.equal('root-user');
  });
});
