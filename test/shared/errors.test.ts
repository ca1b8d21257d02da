/**
 * shared/errors.ts: every error class maps to its gRPC status and back to the same class with
 * the same message — first as a table over the pure functions, then across a real gRPC call
 * on 127.0.0.1 (the status metadata must survive the wire, or NotLeaderError would come back
 * as a plain FailedPreconditionError).
 */
import { expect } from 'chai';
import { Server, Client, status as Status, Metadata, type ServiceError, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import {
  ClusterError, InvalidArgumentError, NotFoundError, AlreadyExistsError, FailedPreconditionError, ConflictError,
  UnavailableError, DeadlineExceededError, CancelledError, NotLeaderError, InternalError, UnauthenticatedError, PermissionDeniedError,
  toGrpcStatus, fromGrpcError, isServiceError, errorMessage,
} from '../../shared/errors';
import { serverCredentials } from '../../shared/pki';
import { testPki } from '../helpers/pki';

type ErrorClass = new (message: string) => ClusterError;

const TABLE: { cls: ErrorClass; code: Status; retryable: boolean }[] = [
  { cls: InvalidArgumentError, code: Status.INVALID_ARGUMENT, retryable: false },
  { cls: NotFoundError, code: Status.NOT_FOUND, retryable: false },
  { cls: AlreadyExistsError, code: Status.ALREADY_EXISTS, retryable: false },
  { cls: FailedPreconditionError, code: Status.FAILED_PRECONDITION, retryable: false },
  { cls: ConflictError, code: Status.ABORTED, retryable: true },
  { cls: UnavailableError, code: Status.UNAVAILABLE, retryable: true },
  { cls: DeadlineExceededError, code: Status.DEADLINE_EXCEEDED, retryable: true },
  { cls: CancelledError, code: Status.CANCELLED, retryable: false },
  { cls: NotLeaderError, code: Status.FAILED_PRECONDITION, retryable: true },
  { cls: InternalError, code: Status.INTERNAL, retryable: false },
  { cls: UnauthenticatedError, code: Status.UNAUTHENTICATED, retryable: false },
  { cls: PermissionDeniedError, code: Status.PERMISSION_DENIED, retryable: false },
  { cls: ClusterError, code: Status.UNKNOWN, retryable: false },
];

/** What a grpc-js client hands back for a failed call, built from a server's status. */
function asServiceError(s: ReturnType<typeof toGrpcStatus>): ServiceError {
  const e = new Error(`${s.code}: ${s.details}`) as ServiceError;
  e.code = s.code ?? Status.UNKNOWN;
  e.details = s.details ?? '';
  e.metadata = s.metadata ?? new Metadata();
  return e;
}

describe('shared/errors', () => {
  describe('toGrpcStatus → fromGrpcError round trip (pure)', () => {
    for (const row of TABLE) {
      it(`${row.cls.name} ↔ ${Status[row.code]}`, () => {
        const original = new row.cls(`the ${row.cls.name} message: node n1`);
        expect(original.name).to.equal(row.cls.name);
        expect(original.code).to.equal(row.code);
        expect(original.retryable).to.equal(row.retryable);
        const s = toGrpcStatus(original);
        expect(s.code).to.equal(row.code);
        expect(s.details).to.equal(original.message);
        const back = fromGrpcError(asServiceError(s));
        expect(back).to.be.instanceOf(row.cls);
        expect(back.constructor).to.equal(row.cls);
        expect(back.message).to.equal(original.message);
        expect(back.retryable).to.equal(row.retryable);
      });
    }

    it('a plain Error becomes INTERNAL with the message kept', () => {
      const s = toGrpcStatus(new TypeError('x is undefined'));
      expect(s).to.include({ code: Status.INTERNAL, details: 'internal error: x is undefined' });
      expect(fromGrpcError(asServiceError(s))).to.be.instanceOf(InternalError);
    });
    it('a thrown non-Error becomes INTERNAL', () => {
      expect(toGrpcStatus('boom')).to.include({ code: Status.INTERNAL, details: 'internal error: boom' });
    });
    it('a ClusterError passes through fromGrpcError unchanged', () => {
      const e = new NotFoundError('node n9 not found');
      expect(fromGrpcError(e)).to.equal(e);
    });
    it('an unknown status code becomes a ClusterError with the details', () => {
      const e = fromGrpcError(asServiceError({ code: Status.DATA_LOSS, details: 'lost' }));
      expect(e.constructor).to.equal(ClusterError);
      expect(e.message).to.equal('lost');
    });
    it('a non-gRPC error becomes InternalError', () => {
      const e = fromGrpcError(new Error('socket hang up'));
      expect(e).to.be.instanceOf(InternalError);
      expect(e.message).to.equal('socket hang up');
      expect(isServiceError(new Error('x'))).to.equal(false);
      expect(errorMessage(42)).to.equal('42');
    });
  });

  describe('round trip across a real gRPC call', () => {
    const PATH = '/errors.test.Thrower/Throw';
    const identity = (b: Buffer): Buffer => b;
    let server: Server;
    let client: Client;

    before(async () => {
      // Over the cluster's mutual TLS, as every call travels; the test method is not in the
      // role table, so this server lets any authenticated caller through.
      const pki = await testPki();
      const serving = await pki.identity('coordinator', 'errors-test');
      const creds = serverCredentials({ caPem: pki.caPem, certPem: serving.certPem, keyPem: serving.keyPem, authorizeCall: () => undefined });
      server = new Server();
      server.addService(
        {
          throw: {
            path: PATH, requestStream: false, responseStream: false,
            requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
          },
        },
        {
          // The request names the row of TABLE to throw.
          throw: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
            const row = TABLE[Number(call.request.toString())];
            callback(toGrpcStatus(new row.cls(`wire ${row.cls.name}`)));
          },
        },
      );
      const port = await new Promise<number>((resolve, reject) => {
        server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p)));
      });
      client = new Client(`127.0.0.1:${port}`, await pki.credentials('viewer'));
    });
    after(() => {
      client?.close();
      server?.forceShutdown();
    });

    TABLE.forEach((row, i) => {
      it(`${row.cls.name} arrives as ${row.cls.name}`, async () => {
        const err = await new Promise<unknown>((resolve) => {
          client.makeUnaryRequest(PATH, identity, identity, Buffer.from(String(i)), (e) => resolve(e));
        });
        expect(isServiceError(err)).to.equal(true);
        expect((err as ServiceError).code).to.equal(row.code);
        const back = fromGrpcError(err);
        expect(back.constructor).to.equal(row.cls);
        expect(back.message).to.equal(`wire ${row.cls.name}`);
      });
    });
  });
});
