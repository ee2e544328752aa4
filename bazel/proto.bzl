"""C++ code for protos and gRPC services from Debian's protoc and grpc_cpp_plugin.

Bazel 4's native cc_proto_library and gRPC's cc_grpc_library both want
downloads; this runs /usr/bin/protoc directly.
"""

def cc_grpc_proto_library(name, srcs, deps = [], grpc = True, **kwargs):
    """Generates <base>.pb.{h,cc} (and .grpc.pb.{h,cc}) and a cc_library `name`.

    Args:
      name: the cc_library.
      srcs: .proto files in this package.
      deps: other cc_grpc_proto_library targets the protos import.
      grpc: also run the gRPC plugin.
      **kwargs: passed to the cc_library.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    plugin = "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin --grpc_out=$(GENDIR)" if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = "/usr/bin/protoc -I. -I$(GENDIR) --cpp_out=$(GENDIR) %s %s" % (
            plugin,
            " ".join(["$(location %s)" % s for s in srcs]),
        ),
    )
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs,
        visibility = ["//visibility:public"],
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@sys//:protobuf", "@sys//:grpc"],
        **kwargs
    )
