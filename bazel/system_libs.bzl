"""A repository of cc_library targets over Debian's system libraries.

Each library's flags come from pkg-config at fetch time (`local = True`,
`configure = True`), so an apt upgrade is picked up after `bazel clean`.
Headers stay in /usr/include; Bazel does not track them.
"""

# target name -> (pkg-config modules, extra link options)
_LIBS = {
    "absl": ([
        "absl_base",
        "absl_flags",
        "absl_flags_parse",
        "absl_flags_usage",
        "absl_flags_marshalling",
        "absl_status",
        "absl_statusor",
        "absl_strings",
        "absl_str_format",
        "absl_synchronization",
        "absl_time",
        "absl_hash",
        "absl_raw_hash_set",
        "absl_random_random",
        "absl_cord",
    ], []),
    "protobuf": (["protobuf"], []),
    "grpc": (["grpc++", "grpc"], ["-lgrpc++_reflection"]),
    "rocksdb": (["rocksdb"], []),
    "prometheus": (["prometheus-cpp-core", "prometheus-cpp-pull"], []),
    "gtest": (["gtest", "gmock"], []),
    "gtest_main": (["gtest_main"], []),
    "fuse3": (["fuse3"], []),
    "seccomp": (["libseccomp"], []),
    "libcrypto": (["libcrypto"], []),
}

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed: %s (run scripts/install-deps.sh)" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, extra) in _LIBS.items():
        libs = _pkg_config(ctx, ["--libs"] + modules).split(" ")
        cflags = _pkg_config(ctx, ["--cflags"] + modules).split(" ")
        defines = [f[2:] for f in cflags if f.startswith("-D")]
        copts = [f for f in cflags if f and not f.startswith("-D") and not f.startswith("-I/usr/include")]
        linkopts = [f for f in libs if f] + extra
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    linkopts = %r," % linkopts)
        build.append("    defines = %r," % defines)
        build.append("    copts = %r," % copts)
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    configure = True,
    environ = ["PKG_CONFIG_PATH"],
)
