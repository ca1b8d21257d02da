/**
 * The coordinator client's rules for moving to the next replica, against real gRPC servers on
 * loopback ports that answer as a test needs (UNAVAILABLE, or a node list) and count calls: a
 * read that fails UNAVAILABLE is retried on the next replica, a write that was sent is not
 * (it may have been done), and an error after trying several names them.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { loadProto } from '../../shared/proto';
import { UnavailableError } from '../../shared/errors';
import { CoordinatorClient } from '../../cli/coordinator-client';
import type { ListNodesResponse } from '../../generated/cluster/v1/ListNodesResponse';
import type { Node } from '../../generated/cluster/v1/Node';
import { serverCredentials, type Credentials } from '../../shared/pki';
import { testPki } from '../helpers/pki';

interface Replica {
  address: string;
  calls: string[];
  server: grpc.Server;
}

/** A ClusterService that answers ListNodes and SetLabels with `answer`, recording each call. */
async function replica(answer: 'unavailable' | 'ok', nodeId = 'n1'): Promise<Replica> {
  const calls: string[] = [];
  const reply = <T>(name: string, value: T) => (_call: unknown, cb: grpc.sendUnaryData<T>): void => {
    calls.push(name);
    if (answer === 'unavailable') cb({ code: grpc.status.UNAVAILABLE, details: 'etcd is unreachable from this replica' });
    else cb(null, value);
  };
  const server = new grpc.Server();
  server.addService(loadProto().api.cluster.v1.ClusterService.service, {
    listNodes: reply<ListNodesResponse>('ListNodes', { nodes: [{ id: nodeId }] }),
    setLabels: reply<Node>('SetLabels', { id: nodeId }),
  });
  const pki = await testPki();
  const serving = await pki.identity('coordinator', 'replica');
  const creds = serverCredentials({ caPem: pki.caPem, certPem: serving.certPem, keyPem: serving.keyPem });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { address: `127.0.0.1:${port}`, calls, server };
}

describe('coordinator client: which calls move to the next replica (real gRPC servers)', () => {
  const started: Replica[] = [];
  const clients: CoordinatorClient[] = [];
  let credentials: Credentials;
  before(async () => {
    const pki = await testPki();
    const admin = await pki.identity('admin');
    credentials = { coordinator: [], user: 'admin', role: 'admin', ca: pki.caPem, certificate: admin.certPem, key: admin.keyPem };
  });
  const make = (replicas: Replica[]): CoordinatorClient => {
    const c = new CoordinatorClient({ endpoints: replicas.map((r) => r.address), timeoutMs: 3000, credentials, credentialsFile: 'admin.yaml' });
    clients.push(c);
    return c;
  };

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const r of started.splice(0)) r.server.forceShutdown();
  });

  it('a read answered UNAVAILABLE is asked again of the next replica', async () => {
    const [a, b] = [await replica('unavailable'), await replica('ok', 'from-b')];
    started.push(a, b);
    const nodes = await make([a, b]).listNodes();
    expect(nodes.map((n) => n.id)).to.deep.equal(['from-b']);
    expect([a.calls, b.calls]).to.deep.equal([['ListNodes'], ['ListNodes']]);
  });

  it('a write answered UNAVAILABLE is not sent again: the first answer is the error', async () => {
    const [a, b] = [await replica('unavailable'), await replica('ok')];
    started.push(a, b);
    let caught: unknown;
    try {
      await make([a, b]).setLabels('n1', { x: '1' }, []);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UnavailableError);
    expect((caught as Error).message).to.equal('etcd is unreachable from this replica');
    expect([a.calls, b.calls]).to.deep.equal([['SetLabels'], []]);
  });

  it('a read that every replica answers UNAVAILABLE names them all', async () => {
    const [a, b] = [await replica('unavailable'), await replica('unavailable')];
    started.push(a, b);
    const client = make([a, b]);
    let caught: unknown;
    try {
      await client.listNodes();
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).to.equal(`etcd is unreachable from this replica (tried ${a.address}, ${b.address})`);
    expect([a.calls.length, b.calls.length]).to.deep.equal([1, 1]);
  });

  it('a write goes to the next replica when the first refuses the connection (it was never sent)', async () => {
    const [a, b] = [await replica('ok', 'a'), await replica('ok', 'from-b')];
    started.push(b);
    a.server.forceShutdown();
    const node = await make([a, b]).setLabels('n1', { x: '1' }, []);
    expect(node.id).to.equal('from-b');
    expect(b.calls).to.deep.equal(['SetLabels']);
  });
});
