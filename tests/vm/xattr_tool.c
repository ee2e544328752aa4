// xattr: a tiny static stand-in for setfattr/getfattr (busybox has
// neither) for the VM workout. Built by tests/vm/build_initramfs.py.
//
//   xattr set PATH NAME VALUE     setxattr, flags 0
//   xattr get PATH NAME           prints the value, no newline added
//   xattr list PATH               prints the names, one a line, sorted
//   xattr remove PATH NAME
//
// On failure prints "xattr: OP: ERRNAME" (e.g. ENODATA) to stdout, so the
// caller can assert the exact errno, and exits 1. Usage errors exit 2.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static int Fail(const char* op) {
  const char* name = strerrorname_np(errno);
  printf("xattr: %s: %s\n", op, name ? name : "?");
  return 1;
}

static int CompareNames(const void* a, const void* b) {
  return strcmp(*(char* const*)a, *(char* const*)b);
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "set") == 0) {
    if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) {
      return Fail("set");
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "get") == 0) {
    char value[65536];
    ssize_t n = getxattr(argv[2], argv[3], value, sizeof(value));
    if (n < 0) return Fail("get");
    fwrite(value, 1, (size_t)n, stdout);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "list") == 0) {
    static char names[65536];
    ssize_t n = listxattr(argv[2], names, sizeof(names));
    if (n < 0) return Fail("list");
    char* sorted[4096];
    size_t count = 0;
    for (char* p = names; p < names + n && count < 4096; p += strlen(p) + 1) {
      sorted[count++] = p;
    }
    qsort(sorted, count, sizeof(sorted[0]), CompareNames);
    for (size_t i = 0; i < count; ++i) printf("%s\n", sorted[i]);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "remove") == 0) {
    if (removexattr(argv[2], argv[3]) != 0) return Fail("remove");
    return 0;
  }
  fprintf(stderr,
          "usage: xattr set PATH NAME VALUE | get PATH NAME | list PATH |"
          " remove PATH NAME\n");
  return 2;
}
