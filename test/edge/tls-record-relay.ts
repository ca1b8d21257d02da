/**
 * A loopback TCP relay that moves whole TLS records and lets a test decide, record by record,
 * what the network does with each: forward it, hold it back (as a frozen peer's socket buffer
 * holds it), or drop it (as a connection that dies before the bytes arrive). It cannot read a
 * record (mutual TLS is end to end); it sees each record's content type and length, which is
 * enough to tell the handshake from application data and a gRPC request (HEADERS with the
 * method path and metadata, then DATA) from the small HTTP/2 control frames around it.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** `up`: client → server; `down`: server → client. */
export type Direction = 'up' | 'down';
export type RecordAction = 'forward' | 'hold' | 'drop';

/** TLS content type 23: application data (in TLS 1.3 also the encrypted handshake after ServerHello). */
export const APPLICATION_DATA = 23;

export interface RelayedRecord {
  direction: Direction;
  /** TLS content type (20 change_cipher_spec, 21 alert, 22 handshake, 23 application data). */
  type: number;
  /** Bytes of the record's body (without the 5-byte header). */
  length: number;
  /** Records of this direction on this connection before this one. */
  index: number;
  /** Milliseconds since the connection was accepted. */
  atMs: number;
}

export interface RelayConnection {
  readonly id: number;
  readonly client: Socket;
  readonly upstream: Socket;
  /** Every record seen so far, in order. */
  readonly records: RelayedRecord[];
  /** Held records per direction, in order. */
  readonly held: Record<Direction, Buffer[]>;
}

type Decide = (record: RelayedRecord, connection: RelayConnection) => RecordAction;

export class TlsRecordRelay {
  readonly connections: RelayConnection[] = [];

  private constructor(private readonly server: Server, readonly port: number) {}

  /** Listens on 127.0.0.1 (a free port) and relays to `target` (HOST:PORT), asking `decide` about every record. */
  static async start(target: string, decide: Decide): Promise<TlsRecordRelay> {
    const i = target.lastIndexOf(':');
    const to = { host: target.slice(0, i), port: Number(target.slice(i + 1)) };
    const ref: { relay?: TlsRecordRelay } = {};
    const server = createServer((client) => ref.relay?.accept(client, to, decide));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('relay: no port');
    ref.relay = new TlsRecordRelay(server, address.port);
    return ref.relay;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Sends what was held in `direction` on `connection`, in order; later records are decided as before. */
  release(connection: RelayConnection, direction: Direction): void {
    const to = direction === 'up' ? connection.upstream : connection.client;
    for (const b of connection.held[direction].splice(0)) to.write(b);
  }

  /** Ends one connection the hard way (RST to the client), as a peer that died would. */
  reset(connection: RelayConnection): void {
    connection.client.resetAndDestroy();
    connection.upstream.destroy();
  }

  async close(): Promise<void> {
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, to: { host: string; port: number }, decide: Decide): void {
    const upstream = connect(to.port, to.host);
    const conn: RelayConnection = { id: this.connections.length + 1, client, upstream, records: [], held: { up: [], down: [] } };
    this.connections.push(conn);
    const t0 = Date.now();
    const counts: Record<Direction, number> = { up: 0, down: 0 };
    const pipe = (from: Socket, dest: Socket, direction: Direction): void => {
      let buffered = Buffer.alloc(0);
      from.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 5) {
          const length = buffered.readUInt16BE(3);
          if (buffered.length < 5 + length) break;
          const bytes = buffered.subarray(0, 5 + length);
          buffered = buffered.subarray(5 + length);
          const record: RelayedRecord = { direction, type: bytes[0], length, index: counts[direction]++, atMs: Date.now() - t0 };
          conn.records.push(record);
          const decided = decide(record, conn);
          // Nothing overtakes a held record: TLS numbers its records, a gap or a swap ends the session.
          const action = decided === 'forward' && conn.held[direction].length > 0 ? 'hold' : decided;
          if (action === 'forward') dest.write(bytes);
          else if (action === 'hold') conn.held[direction].push(Buffer.from(bytes));
        }
      });
    };
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
    // A side that ends is not passed on: the test decides what the other side sees.
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
  }
}
