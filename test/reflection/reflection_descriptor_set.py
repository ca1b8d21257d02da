#!/usr/bin/python3
"""Fetches every file descriptor the server serves by reflection (the files of every listed
service and, by file name, every file they import) and writes them, unchanged and without
loading them into any pool, as one FileDescriptorSet for protoc to check.

Usage: reflection_descriptor_set.py HOST:PORT CA CERT KEY OUT
Prints one JSON object: {"files": [names, dependencies first]} or exits 1 with the error.
"""
import json
import sys

from google.protobuf import descriptor_pb2

from reflection_client import connect


def main():
    target, ca, cert, key, out = sys.argv[1:6]
    _channel, ask = connect(target, ca, cert, key)

    files = {}

    def take(blobs):
        for b in blobs:
            fd = descriptor_pb2.FileDescriptorProto.FromString(b)
            files.setdefault(fd.name, fd)

    for s in ask(list_services="*").list_services_response.service:
        if s.name.startswith("grpc.reflection."):
            continue
        take(ask(file_containing_symbol=s.name).file_descriptor_response.file_descriptor_proto)
    # Imports the server did not send with a service's file: ask for them by name.
    missing = [d for f in list(files.values()) for d in f.dependency if d not in files]
    while missing:
        take(ask(file_by_filename=missing.pop()).file_descriptor_response.file_descriptor_proto)
        missing = [d for f in list(files.values()) for d in f.dependency if d not in files]

    ordered, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for dep in files[name].dependency:
            visit(dep)
        ordered.append(files[name])
    for n in sorted(files):
        visit(n)
    with open(out, "wb") as f:
        f.write(descriptor_pb2.FileDescriptorSet(file=ordered).SerializeToString())
    print(json.dumps({"files": [f.name for f in ordered]}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the test to show
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
