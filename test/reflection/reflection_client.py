#!/usr/bin/python3
"""A third-party gRPC client driven only by server reflection (Debian's python3-grpcio and
python3-protobuf, the C++ protobuf runtime). It knows nothing of cluster.proto: it lists the
services, fetches their file descriptors, loads them into a protobuf DescriptorPool (which
rejects what protoc would: wrong map entry names, unresolvable type names), builds a message
class for every method's input and output type, and makes one unary call.

Usage: reflection_client.py HOST:PORT CA CERT KEY SERVICE/METHOD
Prints one JSON object: {"services": [...], "methods": N, "call": {...}} or exits 1 with the error.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def message_class(desc):
    """The message class of a descriptor (protobuf 4.21, Debian 12, has no GetMessageClass yet)."""
    get = getattr(message_factory, "GetMessageClass", None)
    return get(desc) if get else message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


def reflection_messages():
    """The reflection protocol's own messages (grpc.reflection.v1), declared here by hand:
    Debian ships no grpcio-reflection, and they are the one thing a client must know."""
    f = descriptor_pb2.FileDescriptorProto(name="reflection_client/reflection.proto", package="grpc.reflection.v1", syntax="proto3")
    S, M, R = descriptor_pb2.FieldDescriptorProto.TYPE_STRING, descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    OPT, REP = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

    def msg(name, *fields):
        m = f.message_type.add(name=name)
        for (fname, num, typ, label, tname) in fields:
            fd = m.field.add(name=fname, number=num, type=typ, label=label)
            if tname:
                fd.type_name = tname
        return m

    msg("ServerReflectionRequest", ("host", 1, S, OPT, None), ("file_by_filename", 3, S, OPT, None), ("file_containing_symbol", 4, S, OPT, None), ("list_services", 7, S, OPT, None))
    msg("FileDescriptorResponse", ("file_descriptor_proto", 1, R, REP, None))
    msg("ServiceResponse", ("name", 1, S, OPT, None))
    msg("ListServiceResponse", ("service", 1, M, REP, ".grpc.reflection.v1.ServiceResponse"))
    msg("ErrorResponse", ("error_code", 1, descriptor_pb2.FieldDescriptorProto.TYPE_INT32, OPT, None), ("error_message", 2, S, OPT, None))
    msg("ServerReflectionResponse",
        ("file_descriptor_response", 4, M, OPT, ".grpc.reflection.v1.FileDescriptorResponse"),
        ("list_services_response", 6, M, OPT, ".grpc.reflection.v1.ListServiceResponse"),
        ("error_response", 7, M, OPT, ".grpc.reflection.v1.ErrorResponse"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = lambda n: message_class(pool.FindMessageTypeByName("grpc.reflection.v1." + n))
    return get("ServerReflectionRequest"), get("ServerReflectionResponse")


def connect(target, ca, cert, key):
    """A mutual-TLS channel to TARGET and `ask(**request_fields)`, one reflection request → its response."""
    read = lambda p: open(p, "rb").read()
    creds = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
    channel = grpc.secure_channel(target, creds)
    Req, Resp = reflection_messages()
    info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                 request_serializer=Req.SerializeToString, response_deserializer=Resp.FromString)

    def ask(**kw):
        (resp,) = list(info(iter([Req(**kw)]), timeout=10))
        if resp.HasField("error_response"):
            raise RuntimeError(f"reflection error for {kw}: {resp.error_response.error_message}")
        return resp
    return channel, ask


def main():
    target, ca, cert, key, call = sys.argv[1:6]
    channel, ask = connect(target, ca, cert, key)

    services = sorted(s.name for s in ask(list_services="*").list_services_response.service)
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add_files(blobs):
        # Dependencies first: the pool refuses a file whose imports it has not seen.
        files = {}
        for b in blobs:
            fd = descriptor_pb2.FileDescriptorProto.FromString(b)
            files[fd.name] = fd

        def add(name):
            if name in added or name not in files:
                return
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            added.add(name)
        for n in files:
            add(n)

    methods = 0
    for svc in services:
        if svc == "grpc.reflection.v1.ServerReflection" or svc == "grpc.reflection.v1alpha.ServerReflection":
            continue
        add_files(ask(file_containing_symbol=svc).file_descriptor_response.file_descriptor_proto)
        sd = pool.FindServiceByName(svc)
        for m in sd.methods:
            message_class(m.input_type)
            message_class(m.output_type)
            methods += 1

    svc_name, method_name = call.split("/")
    md = pool.FindServiceByName(svc_name).methods_by_name[method_name]
    In, Out = message_class(md.input_type), message_class(md.output_type)
    rpc = channel.unary_unary(f"/{svc_name}/{method_name}", request_serializer=In.SerializeToString, response_deserializer=Out.FromString)
    reply = rpc(In(), timeout=10)
    print(json.dumps({"services": services, "methods": methods,
                      "call": json_format.MessageToDict(reply, preserving_proto_field_name=True)}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the test to show
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
