import { expect } from 'chai';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type AddressInfo } from 'node:net';
import { runProbe } from '../../agent/units/verify-probes';
import { freePort } from '../helpers';
import { tempNode, type TempNode } from './unit-test-context';

describe('verify probes (real sockets on 127.0.0.1, real processes)', () => {
  let node: TempNode;
  let http: Server;
  let tcp: TcpServer;
  before(async () => {
    http = createHttpServer((req, res) => { res.statusCode = req.url === '/ok' ? 200 : 503; res.end(); });
    tcp = createTcpServer((s) => s.end());
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise((r) => http.close(r));
    await new Promise((r) => tcp.close(r));
  });
  beforeEach(() => { node = tempNode('probes'); });
  afterEach(() => node.cleanup());

  it('tcp: open port passes, closed port fails with the reason', async () => {
    const open = await runProbe({ id: 't', tcp: `127.0.0.1:${(tcp.address() as AddressInfo).port}` }, node.ctx());
    expect(open).to.include({ ok: true });
    const closed = await runProbe({ id: 't', tcp: `127.0.0.1:${await freePort()}` }, node.ctx());
    expect(closed.ok).to.equal(false);
    expect(closed.detail).to.match(/ECONNREFUSED/);
  });

  it('http: status compared with expectStatus (default 2xx/3xx)', async () => {
    const port = (http.address() as AddressInfo).port;
    expect((await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/ok` }, node.ctx())).ok).to.equal(true);
    const bad = await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/down` }, node.ctx());
    expect(bad.detail).to.equal(`http http://127.0.0.1:${port}/down: status 503 (want 2xx or 3xx)`);
    expect((await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/down`, expectStatus: 503 }, node.ctx())).ok).to.equal(true);
  });

  it('command: exit code; a hung command is stopped at the probe timeout; retry waits for a late service', async () => {
    expect((await runProbe({ id: 'c', command: 'exit 4', expectExit: 4 }, node.ctx())).ok).to.equal(true);
    const started = Date.now();
    const hung = await runProbe({ id: 'c', command: 'sleep 30', timeoutMs: 300 }, node.ctx());
    expect(hung.ok).to.equal(false);
    expect(Date.now() - started).to.be.below(5000);
    // A port that opens 500 ms later: one try fails, retrying within the timeout passes.
    const port = await freePort();
    const late = createTcpServer((s) => s.end());
    const t = setTimeout(() => late.listen(port, '127.0.0.1'), 500);
    try {
      expect((await runProbe({ id: 'l', tcp: `127.0.0.1:${port}`, timeoutMs: 4000 }, node.ctx())).ok).to.equal(false);
      expect((await runProbe({ id: 'l', tcp: `127.0.0.1:${port}`, timeoutMs: 4000 }, node.ctx(), { retry: true })).ok).to.equal(true);
    } finally {
      clearTimeout(t);
      await new Promise((r) => late.close(r));
    }
  });
});
