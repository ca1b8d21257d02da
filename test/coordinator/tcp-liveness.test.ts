/**
 * The kernel's TCP liveness on a connection (coordinator/tcp-liveness.ts and its addon,
 * native/tcp_liveness.c): the options it sets, the error when the addon is missing, and what
 * the kernel then does on a real loopback connection cut by nftables (no FIN, no RST, no ACK):
 * the connection fails with ETIMEDOUT about one window after the last packet received, idle or
 * with data waiting for its ACK. The coordinator's use of it, end to end with a real agent, is
 * test/e2e/reachability.test.ts.
 */
import { expect } from 'chai';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { ADDON_FILE, applyTcpLiveness, livenessSettings, loadTcpLiveness, socketFd } from '../../coordinator/tcp-liveness';
import { KernelCut } from '../helpers';

async function connectedPair(): Promise<{ server: Server; accepted: Socket; client: Socket; port: number }> {
  let accepted: Socket | undefined;
  const server = createServer((s) => { accepted = s; });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  const client = connect(address.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
  const deadline = Date.now() + 5000;
  while (!accepted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (!accepted) throw new Error('the server did not accept');
  return { server, accepted, client, port: address.port };
}

/** Resolves with [error code, ms from `from`] when `socket` fails or closes. */
function ended(socket: Socket, from: () => number): Promise<[string, number]> {
  return new Promise((resolve) => {
    let code = 'closed without error';
    socket.on('error', (err: NodeJS.ErrnoException) => { code = err.code ?? err.message; });
    socket.on('close', () => resolve([code, Date.now() - from()]));
  });
}

describe('coordinator: TCP liveness (kernel keepalive + TCP_USER_TIMEOUT)', function () {
  this.timeout(30_000);

  it('a window of W s: probes after ceil(W/2) s, one a second, the connection closed after W s without an answer', () => {
    expect(livenessSettings(3000)).to.deep.equal({ idleS: 2, intervalS: 1, count: 1, userTimeoutMs: 3000 });
    expect(livenessSettings(4000)).to.deep.equal({ idleS: 2, intervalS: 1, count: 2, userTimeoutMs: 4000 });
    expect(livenessSettings(10_000)).to.deep.equal({ idleS: 5, intervalS: 1, count: 5, userTimeoutMs: 10_000 });
    expect(livenessSettings(2000)).to.deep.equal({ idleS: 1, intervalS: 1, count: 1, userTimeoutMs: 2000 });
    // The largest window --tcp-liveness takes stays within the kernel's limits (TCP_KEEPCNT ≤ 127).
    expect(livenessSettings(3_600_000)).to.deep.equal({ idleS: 1800, intervalS: 1, count: 127, userTimeoutMs: 3_600_000 });
  });

  it('without the addon: an error that says how to build it, and how to run without it', () => {
    expect(() => loadTcpLiveness(['/nonexistent/dir/' + ADDON_FILE])).to.throw(/not built: looked in \/nonexistent\/dir\/tcp_liveness\.node; run `npm run build`.*--tcp-liveness 0/);
  });

  it('sets the five options on a connected socket and reads them back; a bad descriptor is refused naming the option', async () => {
    const addon = loadTcpLiveness();
    const { server, accepted, client } = await connectedPair();
    try {
      const fd = socketFd(accepted);
      expect(fd, 'the accepted socket has a descriptor').to.be.a('number');
      expect(addon.get(fd ?? -1)[0], 'SO_KEEPALIVE off before').to.equal(0);
      applyTcpLiveness(addon, fd ?? -1, livenessSettings(3000));
      expect(addon.get(fd ?? -1)).to.deep.equal([1, 2, 1, 1, 3000]);
      expect(() => addon.set(1_000_000, 2, 1, 1, 3000)).to.throw(/setsockopt\(TCP_USER_TIMEOUT\): Bad file descriptor/);
      for (const bad of [['7'], [fd, 2.5, 1, 1, 3000], [fd, -1, 1, 1, 3000], [fd, 2, 1, 1, 2 ** 31], [fd, 2, 1, 1, NaN]]) {
        expect(() => (addon.set as unknown as (...x: unknown[]) => void)(...bad), String(bad)).to.throw(TypeError, /five whole numbers/);
      }
      // The kernel refuses a count of 0 (TCP_KEEPCNT is 1-127): nothing of the window stays set.
      const other = socketFd(client) ?? -1;
      expect(() => addon.set(other, 2, 1, 0, 3000)).to.throw(/setsockopt\(TCP_KEEPCNT\): Invalid argument/);
      const left = addon.get(other);
      expect([left[0], left[4]], 'SO_KEEPALIVE and TCP_USER_TIMEOUT after the refusal').to.deep.equal([0, 0]);
    } finally {
      client.destroy();
      accepted.destroy();
      server.close();
    }
  });

  for (const withData of [false, true]) {
    it(`a kernel cut of ${withData ? 'a connection with data waiting for its ACK' : 'an idle connection'}: ETIMEDOUT about one window (3 s) after the last packet, not the 11 s Node's own keepalive gives`, async function () {
      const addon = loadTcpLiveness();
      const { server, accepted, client, port } = await connectedPair();
      let cut: KernelCut | undefined;
      try {
        cut = await KernelCut.create();
        applyTcpLiveness(addon, socketFd(accepted) ?? -1, livenessSettings(3000));
        client.on('error', () => undefined);
        let cutAt = 0;
        const end = ended(accepted, () => cutAt);
        // Idle for 2.5 s: the first probe (at 2 s idle) was answered about 0.5 s before the cut,
        // and the window counts from that answer.
        await new Promise((r) => setTimeout(r, 2500));
        await cut.cut(port);
        cutAt = Date.now();
        if (withData) accepted.write(Buffer.alloc(1000, 1));
        const [code, afterCut] = await end;
        console.log(`      ${code} ${afterCut} ms after the cut`);
        expect(code).to.equal('ETIMEDOUT');
        // Idle: 3 s from the answer 0.5 s before the cut; with data, the window runs from the
        // unacknowledged send, just after the cut (plus the retransmission timer's rounding).
        expect(afterCut).to.be.within(withData ? 2500 : 1500, withData ? 5000 : 4000);
      } finally {
        await cut?.close();
        client.destroy();
        accepted.destroy();
        server.close();
      }
    });
  }
});
