/**
 * shared/proto.ts loadServiceClient against loadProto: the client class the agent makes from the
 * parsed .proto alone must be the one proto-loader and grpc-js make (same paths, streaming, method
 * names and codecs), or the generated types would lie. Checked for every service of cluster.proto,
 * with messages that set every field, every member of every oneof and every enum value, for every
 * request and response.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { Enum, MapField, Namespace, Root, Service, Type, type Field } from 'protobufjs';
import { LOADER_OPTIONS, loadProto, loadServiceClient, protoPath, type ServiceName } from '../../shared/proto';

const root = new Root().loadSync(protoPath(), LOADER_OPTIONS);
root.resolveAll();

/** A value for one (non-repeated) field; `depth` bounds recursive messages. */
function scalar(field: Field, depth: number, pick: number): unknown {
  const t = field.resolvedType;
  if (t instanceof Enum) return Object.keys(t.values)[pick % Object.keys(t.values).length];
  if (t instanceof Type) return sample(t, pick, depth + 1);
  switch (field.type) {
    case 'string': return `${field.name}-\u00e9`;
    case 'bytes': return Buffer.from([1, 2, 255]);
    case 'bool': return true;
    case 'double': case 'float': return 1.5;
    case 'int64': case 'sint64': case 'sfixed64': return '-9007199254740993';
    case 'uint64': case 'fixed64': return '18446744073709551615';
    case 'int32': case 'sint32': case 'sfixed32': return -7;
    default: return 7;
  }
}

/**
 * A message of `type` with every field set, but of each oneof (here and in the messages inside)
 * only its `pick`-th member (modulo its size): picks 0..VARIANTS-1 set every member of every oneof.
 */
function sample(type: Type, pick: number, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (depth > 5) return out;
  for (const field of type.fieldsArray) {
    field.resolve();
    const members = field.partOf?.fieldsArray;
    if (members && members[pick % members.length] !== field) continue;
    if (field instanceof MapField) out[field.name] = { k1: scalar(field, depth, pick) };
    else out[field.name] = field.repeated ? [scalar(field, depth, pick), scalar(field, depth, pick + 1)] : scalar(field, depth, pick);
  }
  return out;
}

/** The largest oneof and the largest enum of the file: enough picks to set each member and value. */
const VARIANTS = Math.max(
  ...allOf(root, Type).flatMap((t) => t.oneofsArray.map((o) => o.fieldsArray.length)),
  ...allOf(root, Enum).map((e) => Object.keys(e.values).length),
);

function allOf<T>(ns: Namespace, kind: new (...args: never[]) => T): T[] {
  return ns.nestedArray.flatMap((o) => [...(o instanceof kind ? [o] : []), ...(o instanceof Namespace ? allOf(o, kind) : [])]);
}

/** Every service of cluster.proto, as the parsed file has them. */
const SERVICES = (root.lookup('cluster.v1') as Namespace).nestedArray.filter((o) => o instanceof Service).map((o) => o.name as ServiceName);

describe('shared/proto loadServiceClient', () => {
  const v1 = loadProto().api.cluster.v1;

  it('the generated types and the parsed file name the same services', () => {
    expect(SERVICES).to.include.members(['AgentService', 'PkiService']);
    expect(Object.keys(v1).filter((k) => 'service' in v1[k as keyof typeof v1]).sort()).to.deep.equal([...SERVICES].sort());
  });

  for (const name of SERVICES) {
    it(`${name}: the same methods, paths, streaming, names and codecs as proto-loader's`, () => {
      const light = (loadServiceClient(name) as unknown as grpc.ServiceClientConstructor).service;
      const full = v1[name].service as grpc.ServiceDefinition;
      expect(Object.keys(light)).to.deep.equal(Object.keys(full));
      for (const [method, def] of Object.entries(full)) {
        const ours = light[method];
        expect({ path: ours.path, requestStream: ours.requestStream, responseStream: ours.responseStream, originalName: ours.originalName }, method)
          .to.deep.equal({ path: def.path, requestStream: def.requestStream, responseStream: def.responseStream, originalName: def.originalName });
        const svc = root.lookupService(`cluster.v1.${name}`).methods[method];
        for (const [side, type] of [['request', svc.resolvedRequestType], ['response', svc.resolvedResponseType]] as const) {
          if (!type) throw new Error(`${method}: unresolved ${side} type`);
          const serialize = side === 'request' ? [ours.requestSerialize, def.requestSerialize] : [ours.responseSerialize, def.responseSerialize];
          const deserialize = side === 'request' ? [ours.requestDeserialize, def.requestDeserialize] : [ours.responseDeserialize, def.responseDeserialize];
          for (const value of [{}, ...Array.from({ length: VARIANTS }, (_, pick) => sample(type, pick))]) {
            const bytes = serialize[0](value);
            expect(bytes.equals(serialize[1](value)), `${method} ${side} bytes`).to.equal(true);
            expect(deserialize[0](bytes), `${method} ${side} decoded`).to.deep.equal(deserialize[1](bytes));
          }
          expect(() => serialize[0]([])).to.throw(/expected object/);
        }
      }
    });
  }

  it('makes each class once (simulated fleets make thousands of clients)', () => {
    expect(loadServiceClient('AgentService')).to.equal(loadServiceClient('AgentService'));
  });
});
