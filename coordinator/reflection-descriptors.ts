/**
 * File descriptors for server reflection that protoc-built clients accept.
 *
 * @grpc/proto-loader builds its descriptors with protobufjs, which names a map field's entry
 * type after the field (`Labels`, where protoc names it `LabelsEntry`) and writes type names
 * relative to the referring scope (`NodeRecord`, where protoc writes `.cluster.v1.NodeRecord`).
 * A strict descriptor pool (the C++ runtime behind Python's protobuf, grpcurl's) refuses such
 * a file, so reflection was useless to them. This rewrites each file the way protoc would: map
 * entries `<CamelCaseField>Entry` and every field, method input and output type fully qualified.
 */
import * as protoLoader from '@grpc/proto-loader';
import {
  FileDescriptorProto, type IDescriptorProto, type IFileDescriptorProto, type IFieldDescriptorProto,
} from 'protobufjs/ext/descriptor';

/** protoc's name for the entry type of map field `name`: node_counts_by_state → NodeCountsByStateEntry. */
export function mapEntryName(fieldName: string): string {
  const camel = fieldName.replace(/_+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase()).replace(/_/g, '');
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

/** Every message and enum of `files`, fully qualified with a leading dot. */
function symbolsOf(files: readonly IFileDescriptorProto[]): Set<string> {
  const out = new Set<string>();
  const walk = (prefix: string, m: IDescriptorProto): void => {
    const fqn = `${prefix}.${m.name ?? ''}`;
    out.add(fqn);
    for (const e of m.enumType ?? []) out.add(`${fqn}.${e.name ?? ''}`);
    for (const n of m.nestedType ?? []) walk(fqn, n);
  };
  for (const f of files) {
    const pkg = f.package ? `.${f.package}` : '';
    for (const e of f.enumType ?? []) out.add(`${pkg}.${e.name ?? ''}`);
    for (const m of f.messageType ?? []) walk(pkg, m);
  }
  return out;
}

/** Resolves `ref` from `scope` (".a.b.Msg") outwards, as protoc does; absolute names stay. */
function qualify(ref: string, scope: string, symbols: ReadonlySet<string>): string {
  if (ref === '' || ref.startsWith('.')) return ref;
  const parts = scope.split('.').filter((p) => p !== '');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = `.${[...parts.slice(0, i), ref].join('.')}`;
    if (symbols.has(candidate)) return candidate;
  }
  throw new Error(`reflection: type ${ref} referenced from ${scope} resolves to nothing`);
}

function fixMessage(m: IDescriptorProto, scope: string, symbols: Set<string>): void {
  const fqn = `${scope}.${m.name ?? ''}`;
  const nested = m.nestedType ?? [];
  // Rename the map entries first (and register their new names) so references resolve.
  for (const field of m.field ?? []) {
    const entry = nested.find((n) => n.options?.mapEntry === true && n.name === field.typeName);
    if (!entry || !field.name) continue;
    symbols.delete(`${fqn}.${entry.name ?? ''}`);
    entry.name = mapEntryName(field.name);
    field.typeName = `${fqn}.${entry.name}`;
    symbols.add(field.typeName);
  }
  for (const n of nested) fixMessage(n, fqn, symbols);
  const fixField = (f: IFieldDescriptorProto): void => {
    if (f.typeName) f.typeName = qualify(f.typeName, fqn, symbols);
  };
  (m.field ?? []).forEach(fixField);
  (m.extension ?? []).forEach(fixField);
}

/** One file rewritten as protoc would have written it (`symbols`: every type of the set). */
function fixFile(file: IFileDescriptorProto, symbols: Set<string>): IFileDescriptorProto {
  const pkg = file.package ? `.${file.package}` : '';
  for (const m of file.messageType ?? []) fixMessage(m, pkg, symbols);
  for (const s of file.service ?? []) {
    for (const method of s.method ?? []) {
      if (method.inputType) method.inputType = qualify(method.inputType, pkg, symbols);
      if (method.outputType) method.outputType = qualify(method.outputType, pkg, symbols);
    }
  }
  return file;
}

type Entry = protoLoader.PackageDefinition[string];

/** The file descriptors a message or enum entry carries (services carry none). */
function protosOf(obj: Entry): readonly Buffer[] | undefined {
  return 'fileDescriptorProtos' in obj && Array.isArray(obj.fileDescriptorProtos) ? (obj.fileDescriptorProtos) : undefined;
}

/**
 * The package definition with every object's `fileDescriptorProtos` replaced by protoc-style
 * encodings (what @grpc/reflection serves); all other fields are kept.
 */
export function protocStyleDescriptors(definition: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  const decoded = new Map<string, IFileDescriptorProto>();
  for (const obj of Object.values(definition)) {
    for (const bin of protosOf(obj) ?? []) {
      const file = FileDescriptorProto.toObject(FileDescriptorProto.decode(bin), { defaults: false }) as IFileDescriptorProto;
      if (file.name && !decoded.has(file.name)) decoded.set(file.name, file);
    }
  }
  const files = [...decoded.values()];
  const symbols = symbolsOf(files);
  const encoded = new Map<string, Buffer>();
  for (const file of files) {
    fixFile(file, symbols);
    encoded.set(file.name ?? '', Buffer.from(FileDescriptorProto.encode(FileDescriptorProto.fromObject(file)).finish()));
  }
  const out: protoLoader.PackageDefinition = {};
  for (const [name, obj] of Object.entries(definition)) {
    const protos = protosOf(obj);
    if (!protos) {
      out[name] = obj;
      continue;
    }
    const fixed = protos.map((bin) => encoded.get((FileDescriptorProto.decode(bin) as IFileDescriptorProto).name ?? '') ?? bin);
    out[name] = { ...obj, fileDescriptorProtos: fixed } as typeof obj;
  }
  return out;
}
