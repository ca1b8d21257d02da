/**
 * The coordinator's edge (coordinator/call-guard.ts) against a real coordinator process and
 * real gRPC: a status message holding a lone surrogate or terminal escapes leaves safe and
 * the process lives on (it used to exit on grpc-js's URIError); bytes that are not a message
 * are INVALID_ARGUMENT, not INTERNAL, and so is a request over the size bound (plain or
 * gzip-inflated; grpc-js says RESOURCE_EXHAUSTED); and, on a real in-process server, one client's flood of
 * calls is refused beyond its limit while another client is still served.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { e2eSuite } from '../e2e/e2e-suite';
import { contractMethods, RawClient, type RawMethod } from './raw-client';
import { callGuard } from '../../coordinator/call-guard';
import { createLogger } from '../../shared';
import { waitFor } from '../helpers';
import { MAX_GRPC_REQUEST_BYTES } from '../../shared/grpc-limits';

function method(path: string): RawMethod {
  const m = contractMethods().find((x) => x.path === path);
  if (!m) throw new Error(`no method ${path}`);
  return m;
}

describe('edge: the call guard', function () {
  this.timeout(120_000);
  const suite = e2eSuite('call-guard');

  it('a lone surrogate or a terminal escape in an echoed name: a safe message, the coordinator alive; junk bytes: INVALID_ARGUMENT', async () => {
    const cluster = await suite.startCluster({ name: 'call-guard' });
    const raw = new RawClient(cluster.coordinatorAddress, cluster.adminCredentials);
    try {
      const coordinator = cluster.coordinators[0];
      // The group name is echoed in the refusal (no such bundle); a lone high surrogate in it.
      // Written as YAML escapes: the parser makes the lone surrogate, as a fuzzer's input did.
      for (const name of ['bad\\uD800name', 'esc\\e[31mred', '\\uDC00']) {
        const document = `groups:\n  "${name}":\n    bundle: nosuch@1\n`;
        for (const path of ['/cluster.v1.DeclarativeService/Plan', '/cluster.v1.DeclarativeService/Apply']) {
          const a = await raw.call(method(path), { document, sourceName: 'cluster.yaml' });
          expect(a.code, `${path} ${JSON.stringify(name)}: ${a.details}`).to.equal(grpc.status.INVALID_ARGUMENT);
          // eslint-disable-next-line no-control-regex
          expect(a.details).to.not.match(/[\u0000-\u0008\u000B-\u001F\u007F]/);
          expect(a.details).to.not.match(/[\uD800-\uDFFF]/);
          expect(coordinator.proc.alive, 'coordinator alive').to.equal(true);
        }
      }
      // Bytes no protobuf decoder accepts: the client's mistake, said as such.
      for (const path of ['/cluster.v1.JobService/StartJob', '/cluster.v1.ConfigService/PushBundle', '/cluster.v1.ClusterService/WatchNodes']) {
        const a = await raw.call(method(path), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
        expect(a.code, `${path}: ${a.details}`).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(a.details).to.match(/not a valid .* message/);
      }
      // Over the request size bound: refused before decoding, the connection still usable.
      const huge = await raw.call(method('/cluster.v1.ConfigService/PushBundle'), Buffer.alloc(9 * 1024 * 1024, 0x41));
      expect(huge.code, huge.details).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(huge.details).to.equal(`the request is larger than the limit of ${MAX_GRPC_REQUEST_BYTES} bytes (8 MiB)`);
      // A gzip-compressed request under the bound on the wire that inflates past it: the same.
      const gzip = new RawClient(cluster.coordinatorAddress, cluster.adminCredentials, { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip });
      try {
        const bomb = await gzip.call(method('/cluster.v1.ConfigService/PushBundle'), Buffer.alloc(9 * 1024 * 1024, 0x41));
        expect(bomb.code, bomb.details).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(bomb.details).to.match(/^the request is larger than the limit of \d+ bytes/);
      } finally {
        gzip.close();
      }
      // Still serving.
      const ok = await raw.call(method('/cluster.v1.ClusterService/GetStatus'), {});
      expect(ok.code, ok.details).to.equal(grpc.status.OK);
      expect(coordinator.proc.alive).to.equal(true);
    } finally {
      raw.close();
    }
  });

  it('one client with its limit of calls in flight is refused RESOURCE_EXHAUSTED at once; another client is served', async () => {
    // A real server with the guard and one method whose calls wait until the test releases them.
    const gate: Array<() => void> = [];
    const definition: grpc.ServiceDefinition = {
      Wait: {
        path: '/test.Gate/Wait', requestStream: false, responseStream: false,
        requestSerialize: (v: Buffer) => v, requestDeserialize: (b: Buffer) => b,
        responseSerialize: (v: Buffer) => v, responseDeserialize: (b: Buffer) => b,
      },
    };
    const server = new grpc.Server({ interceptors: [callGuard({ logger: createLogger({ level: 'error' }), maxCallsPerPeer: 4 })] });
    server.addService(definition, {
      Wait: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { gate.push(() => cb(null, Buffer.alloc(0))); },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const a = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const b = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const call = (c: grpc.Client): Promise<grpc.status> => new Promise((res) => {
      c.makeUnaryRequest('/test.Gate/Wait', (v: Buffer) => v, (x: Buffer) => x, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err) => res(err ? err.code : grpc.status.OK));
    });
    try {
      const held = [call(a), call(a), call(a), call(a)];
      await waitFor('4 calls in flight', () => gate.length === 4, { timeoutMs: 20_000 });
      expect(await call(a)).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      const fromB = call(b);
      await waitFor('b is served', () => gate.length === 5, { timeoutMs: 20_000 });
      for (const release of gate.splice(0)) release();
      expect(await Promise.all(held)).to.deep.equal([0, 0, 0, 0]);
      expect(await fromB).to.equal(grpc.status.OK);
      // Released: a is served again.
      const again = call(a);
      await waitFor('a is served again', () => gate.length === 1, { timeoutMs: 20_000 });
      gate.splice(0)[0]();
      expect(await again).to.equal(grpc.status.OK);
    } finally {
      a.close();
      b.close();
      server.forceShutdown();
    }
  });

  it('one client with its limit of expensive calls in flight is refused RESOURCE_EXHAUSTED naming the limit; its cheap calls and another client\'s expensive ones are served', async () => {
    const gate: Array<() => void> = [];
    const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
      path, requestStream: false, responseStream: false,
      requestSerialize: (v: Buffer) => v, requestDeserialize: (b: Buffer) => b, responseSerialize: (v: Buffer) => v, responseDeserialize: (b: Buffer) => b,
    });
    // The guard names methods by their short form: a ListNodes of any package is expensive, a GetNode is not.
    const definition: grpc.ServiceDefinition = { ListNodes: method('/cluster.v1.ClusterService/ListNodes'), GetNode: method('/cluster.v1.ClusterService/GetNode') };
    const hold = (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void => { gate.push(() => cb(null, Buffer.alloc(0))); };
    const server = new grpc.Server({ interceptors: [callGuard({ logger: createLogger({ level: 'error' }), maxCallsPerPeer: 8, maxExpensivePerPeer: 2 })] });
    server.addService(definition, { ListNodes: hold, GetNode: hold });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const a = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const b = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const call = (c: grpc.Client, path: string): Promise<{ code: grpc.status; details: string }> => new Promise((res) => {
      c.makeUnaryRequest(path, (v: Buffer) => v, (x: Buffer) => x, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 },
        (err) => res(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }));
    });
    const list = '/cluster.v1.ClusterService/ListNodes';
    try {
      const held = [call(a, list), call(a, list)];
      await waitFor('2 expensive calls in flight', () => gate.length === 2, { timeoutMs: 20_000 });
      expect(await call(a, list)).to.deep.equal({
        code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many expensive calls (ClusterService/ListNodes and the like) in flight from this client (limit 2); retry later',
      });
      const cheap = call(a, '/cluster.v1.ClusterService/GetNode');
      const fromB = call(b, list);
      await waitFor('a\'s cheap call and b\'s expensive one served', () => gate.length === 4, { timeoutMs: 20_000 });
      for (const release of gate.splice(0)) release();
      expect((await Promise.all([...held, cheap, fromB])).map((r) => r.code)).to.deep.equal([0, 0, 0, 0]);
      // Released: a's expensive calls are served again.
      const again = call(a, list);
      await waitFor('a is served again', () => gate.length === 1, { timeoutMs: 20_000 });
      gate.splice(0)[0]();
      expect((await again).code).to.equal(grpc.status.OK);
    } finally {
      a.close();
      b.close();
      server.forceShutdown();
    }
  });
});
