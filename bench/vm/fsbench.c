// fsbench: times file-system workloads on one directory and prints one JSON
// line per workload. Built statically into the benchmark guests' initramfs
// (bench/vm/bench.py) and also for the host (//bench/vm:fsbench), where
// bench.py runs `fsbench setup` to populate the share before the guest looks.
//
//   fsbench [flags] WORKLOAD...      (workloads run in the order given)
//
// Workloads (DIR = --dir):
//   setup         create DIR/flat/f00000.. (--files empty files) and the tree
//                 DIR/tree/dNN/sNN/fNN (--tree=D,S,F): D dirs x S subdirs x F
//                 files. Prints "setup_create".
//   stat          drop caches; stat() every flat file once ("stat_cold"),
//                 then --warm-passes more times ("stat_warm"). Relative
//                 paths from inside DIR/flat: one lookup per call.
//   readdir       --warm-passes getdents64 loops over DIR/flat ("readdir",
//                 ops = entries returned, "." and ".." included).
//   readdir_stat  --warm-passes of readdir + fstatat(AT_SYMLINK_NOFOLLOW)
//                 of each entry, like `ls -l` ("readdir_stat").
//   walk          drop caches; one recursive walk of DIR/tree with lstat of
//                 every entry, like `ls -lR` ("walk_cold"), then
//                 --warm-passes more ("walk_warm"). ops = entries.
//   create_unlink create --create files in DIR/cu ("create": open
//                 O_CREAT|O_EXCL + close), then unlink them ("unlink").
//   seq_write     write DIR/data (--seq-mib MiB) in --block-size writes,
//                 fsync, close ("seq_write"; the fsync is timed).
//   seq_read      drop caches; read DIR/data in --block-size reads
//                 ("seq_read"); every block's stamp is checked.
//   rand_write    --rand-ops pwrite()s of one block at random block-aligned
//                 offsets in DIR/data (xorshift64, --seed), fsync, close.
//   rand_read     drop caches; --rand-ops pread()s at random offsets (seed
//                 + 1), stamps checked.
//   all           every workload above except setup, in this order.
//
// Workloads for bench/coherence (not part of `all`), over the tree of
// `setup` (DIR/tree/dNN/sNN/fNN):
//   tree_stat_cold   drop caches; one pass of: for every subdir, open it
//                    O_PATH (a path walk from DIR/tree), then fstatat()
//                    each file by name: one lookup + getattr per file.
//                    ops = files. "tree_stat_cold".
//   tree_stat_warm   --warm-passes such passes, nothing dropped, and more
//                    until --warm-seconds have passed since the first began
//                    (default 0: exactly --warm-passes); one line per pass,
//                    each named "tree_stat_warm".
//   tree_stat        tree_stat_cold, then tree_stat_warm.
//   tree_readdir_cold, tree_readdir_warm, tree_readdir
//                    the same shape for listings: open + getdents64 loop +
//                    close of DIR/tree and every dNN and dNN/sNN directory
//                    (`ls -f` of each). ops = entries ("." and ".." included).
//   shared_write     for --seconds: cycle over DIR/shared/f0..f<K-1>
//                    (--shared-files=K; missing files are created first,
//                    untimed), op i on file (i/3)%K: chmod (0600/0644
//                    alternating per visit), utimensat(now), append one byte
//                    (open O_APPEND, write, close). Several clients may run
//                    it on the same files at once. One line per kind
//                    ("shared_chmod", "shared_touch", "shared_append") and
//                    "shared_write" for all, each also with "lat_p50_us",
//                    "lat_p99_us", "lat_max_us" (per-op latency); "seconds"
//                    is the whole loop's time in every line.
//
// Output, one line per timed phase, on stdout:
//   {"name":"stat_warm","ops":10000,"bytes":0,"seconds":1.234567,
//    "ops_per_s":8100.2,"mib_per_s":0.0,"dropped_caches":false}
// Data workloads fill "bytes" and "mib_per_s". The clock is
// CLOCK_MONOTONIC around the timed loop only (opening DIR/flat's fd for
// stat, dropping caches: outside). Errors go to stderr; the exit status is 1
// on the first failing syscall or bad stamp, 2 on bad usage.
//
// "Drop caches" = sync(); echo 3 > /proc/sys/vm/drop_caches, skipped with
// --drop-caches=0 (host runs: it would empty the whole host's caches). Each
// block written carries its block index in its first 8 bytes, so reads
// prove they got the data the writes put there.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct Options {
  const char* dir;
  long files;
  long tree_dirs, tree_subdirs, tree_files;
  long create;
  long seq_mib;
  long rand_ops;
  long block_size;
  long warm_passes;
  uint64_t seed;
  bool drop_caches;
  long seconds;
  long shared_files;
  long warm_seconds;
};

static struct Options opt = {
    .dir = NULL,
    .files = 10000,
    .tree_dirs = 10,
    .tree_subdirs = 10,
    .tree_files = 20,
    .create = 1000,
    .seq_mib = 16,
    .rand_ops = 1024,
    .block_size = 4096,
    .warm_passes = 2,
    .seed = 1,
    .drop_caches = true,
    .seconds = 10,
    .shared_files = 4,
    .warm_seconds = 0,
};

static bool last_drop_ok = false;  // whether the last drop really happened

static void Die(const char* what, const char* path) {
  fprintf(stderr, "fsbench: %s %s: %s\n", what, path ? path : "",
          strerror(errno));
  exit(1);
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// `extra` is "" or more JSON members, each starting with a comma.
static void ReportWith(const char* name, long ops, long long bytes,
                       double secs, const char* extra) {
  if (secs <= 0) secs = 1e-9;
  printf("{\"name\":\"%s\",\"ops\":%ld,\"bytes\":%lld,\"seconds\":%.6f,"
         "\"ops_per_s\":%.1f,\"mib_per_s\":%.3f,\"dropped_caches\":%s%s}\n",
         name, ops, bytes, secs, ops / secs, bytes / secs / (1024.0 * 1024.0),
         last_drop_ok ? "true" : "false", extra);
  fflush(stdout);
}

static void Report(const char* name, long ops, long long bytes, double secs) {
  ReportWith(name, ops, bytes, secs, "");
}

// Cold phases call this first; it records whether caches were dropped so
// the JSON says what was measured.
static void DropCaches(void) {
  last_drop_ok = false;
  if (!opt.drop_caches) return;
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) {
    fprintf(stderr, "fsbench: cannot drop caches: %s\n", strerror(errno));
    return;
  }
  last_drop_ok = write(fd, "3\n", 2) == 2;
  close(fd);
}

static char* PathJoin(const char* a, const char* b) {
  char* out;
  if (asprintf(&out, "%s/%s", a, b) < 0) Die("asprintf", NULL);
  return out;
}

static void MkdirP(const char* path) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) Die("mkdir", path);
}

static void CreateEmpty(int dirfd, const char* name) {
  int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) Die("create", name);
  if (close(fd) != 0) Die("close", name);
}

static int OpenDir(const char* path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) Die("open dir", path);
  return fd;
}

// --- setup ---------------------------------------------------------------

static void Setup(void) {
  MkdirP(opt.dir);
  char* flat = PathJoin(opt.dir, "flat");
  char* tree = PathJoin(opt.dir, "tree");
  MkdirP(flat);
  MkdirP(tree);
  double t0 = Now();
  long ops = 0;
  int flat_fd = OpenDir(flat);
  for (long i = 0; i < opt.files; i++, ops++) {
    char name[32];
    snprintf(name, sizeof(name), "f%05ld", i);
    CreateEmpty(flat_fd, name);
  }
  close(flat_fd);
  for (long d = 0; d < opt.tree_dirs; d++) {
    char dname[4096];
    snprintf(dname, sizeof(dname), "%s/d%02ld", tree, d);
    MkdirP(dname);
    ops++;
    for (long s = 0; s < opt.tree_subdirs; s++) {
      char sname[4200];
      snprintf(sname, sizeof(sname), "%s/s%02ld", dname, s);
      MkdirP(sname);
      ops++;
      int sfd = OpenDir(sname);
      for (long f = 0; f < opt.tree_files; f++, ops++) {
        char fname[32];
        snprintf(fname, sizeof(fname), "f%02ld", f);
        CreateEmpty(sfd, fname);
      }
      close(sfd);
    }
  }
  Report("setup_create", ops, 0, Now() - t0);
  free(flat);
  free(tree);
}

// --- metadata --------------------------------------------------------------

static long StatPass(void) {
  struct stat st;
  for (long i = 0; i < opt.files; i++) {
    char name[32];
    snprintf(name, sizeof(name), "f%05ld", i);
    if (stat(name, &st) != 0) Die("stat", name);
  }
  return opt.files;
}

static void StatFiles(void) {
  char* flat = PathJoin(opt.dir, "flat");
  char cwd[4096];
  if (!getcwd(cwd, sizeof(cwd))) Die("getcwd", NULL);
  DropCaches();
  if (chdir(flat) != 0) Die("chdir", flat);
  double t0 = Now();
  long ops = StatPass();
  Report("stat_cold", ops, 0, Now() - t0);
  t0 = Now();
  ops = 0;
  for (long p = 0; p < opt.warm_passes; p++) ops += StatPass();
  Report("stat_warm", ops, 0, Now() - t0);
  if (chdir(cwd) != 0) Die("chdir", cwd);
  free(flat);
}

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Calls fn(dirfd, name, d_type, arg) for every entry but "." and "..";
// returns the number of entries getdents64 returned (all of them).
static long ForEachEntry(int dirfd, void (*fn)(int, const char*, unsigned char,
                                               void*),
                         void* arg) {
  char buf[32768] __attribute__((aligned(8)));
  long entries = 0;
  if (lseek(dirfd, 0, SEEK_SET) != 0) Die("lseek dir", NULL);
  for (;;) {
    long n = syscall(SYS_getdents64, dirfd, buf, sizeof(buf));
    if (n < 0) Die("getdents64", NULL);
    if (n == 0) break;
    for (long off = 0; off < n;) {
      struct linux_dirent64* d = (struct linux_dirent64*)(buf + off);
      off += d->d_reclen;
      entries++;
      if (fn && strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
        fn(dirfd, d->d_name, d->d_type, arg);
    }
  }
  return entries;
}

static void StatEntry(int dirfd, const char* name, unsigned char type,
                      void* arg) {
  (void)type;
  (void)arg;
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) Die("fstatat", name);
}

static void Readdir(bool with_stat) {
  char* flat = PathJoin(opt.dir, "flat");
  long ops = 0;
  double t0 = Now();
  for (long p = 0; p < opt.warm_passes; p++) {
    // Opened per pass: `ls` opens the directory each time it runs.
    int fd = OpenDir(flat);
    ops += ForEachEntry(fd, with_stat ? StatEntry : NULL, NULL);
    close(fd);
  }
  Report(with_stat ? "readdir_stat" : "readdir", ops, 0, Now() - t0);
  free(flat);
}

// Recursive `ls -lR`: lstat every entry; descend into directories (by the
// lstat result, not d_type: that is what ls -l needs anyway).
static void WalkEntry(int dirfd, const char* name, unsigned char type,
                      void* arg) {
  (void)type;
  long* count = arg;
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) Die("fstatat", name);
  ++*count;
  if (S_ISDIR(st.st_mode)) {
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sub < 0) Die("openat dir", name);
    ForEachEntry(sub, WalkEntry, arg);
    close(sub);
  }
}

static long WalkPass(const char* root) {
  long count = 0;
  int fd = OpenDir(root);
  ForEachEntry(fd, WalkEntry, &count);
  close(fd);
  return count;
}

static void Walk(void) {
  char* tree = PathJoin(opt.dir, "tree");
  DropCaches();
  double t0 = Now();
  long ops = WalkPass(tree);
  Report("walk_cold", ops, 0, Now() - t0);
  ops = 0;
  t0 = Now();
  for (long p = 0; p < opt.warm_passes; p++) ops += WalkPass(tree);
  Report("walk_warm", ops, 0, Now() - t0);
  free(tree);
}

static void CreateUnlink(void) {
  char* cu = PathJoin(opt.dir, "cu");
  MkdirP(cu);
  int fd = OpenDir(cu);
  char name[32];
  double t0 = Now();
  for (long i = 0; i < opt.create; i++) {
    snprintf(name, sizeof(name), "c%06ld", i);
    CreateEmpty(fd, name);
  }
  Report("create", opt.create, 0, Now() - t0);
  t0 = Now();
  for (long i = 0; i < opt.create; i++) {
    snprintf(name, sizeof(name), "c%06ld", i);
    if (unlinkat(fd, name, 0) != 0) Die("unlink", name);
  }
  Report("unlink", opt.create, 0, Now() - t0);
  close(fd);
  free(cu);
}

// --- the tree, pass by pass (bench/coherence) --------------------------------

static void SubdirName(char* buf, size_t size, long d, long s) {
  snprintf(buf, size, "d%02ld/s%02ld", d, s);
}

static long TreeStatPass(int tree_fd) {
  struct stat st;
  for (long d = 0; d < opt.tree_dirs; d++) {
    for (long s = 0; s < opt.tree_subdirs; s++) {
      char sub[48];
      SubdirName(sub, sizeof(sub), d, s);
      // O_PATH: a lookup of the path only, no OPENDIR on FUSE.
      int fd = openat(tree_fd, sub, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) Die("openat", sub);
      for (long f = 0; f < opt.tree_files; f++) {
        char name[32];
        snprintf(name, sizeof(name), "f%02ld", f);
        if (fstatat(fd, name, &st, 0) != 0) Die("fstatat", name);
      }
      close(fd);
    }
  }
  return opt.tree_dirs * opt.tree_subdirs * opt.tree_files;
}

static long ListAt(int dirfd, const char* name) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) Die("openat dir", name);
  long entries = ForEachEntry(fd, NULL, NULL);
  close(fd);
  return entries;
}

static long TreeReaddirPass(int tree_fd) {
  long entries = ListAt(tree_fd, ".");
  for (long d = 0; d < opt.tree_dirs; d++) {
    char dname[32];
    snprintf(dname, sizeof(dname), "d%02ld", d);
    entries += ListAt(tree_fd, dname);
    for (long s = 0; s < opt.tree_subdirs; s++) {
      char sub[48];
      SubdirName(sub, sizeof(sub), d, s);
      entries += ListAt(tree_fd, sub);
    }
  }
  return entries;
}

// One cold pass (caches dropped) and/or --warm-passes warm ones, each
// reported on its own line.
static void TreePasses(long (*pass)(int), const char* cold_name,
                       const char* warm_name, bool cold, bool warm) {
  char* tree = PathJoin(opt.dir, "tree");
  if (cold) {
    DropCaches();
    double t0 = Now();
    int fd = OpenDir(tree);
    long ops = pass(fd);
    close(fd);
    Report(cold_name, ops, 0, Now() - t0);
  }
  if (warm) {
    last_drop_ok = false;
    double start = Now();
    for (long p = 0; p < opt.warm_passes || Now() - start < opt.warm_seconds;
         p++) {
      double t0 = Now();
      int fd = OpenDir(tree);
      long ops = pass(fd);
      close(fd);
      Report(warm_name, ops, 0, Now() - t0);
    }
  }
  free(tree);
}

// --- write-shared (bench/coherence) ----------------------------------------

struct Latencies {
  double* us;
  long n, cap;
};

static void AddLatency(struct Latencies* l, double us) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 1024;
    l->us = realloc(l->us, l->cap * sizeof(double));
    if (!l->us) {
      fprintf(stderr, "fsbench: out of memory\n");
      exit(1);
    }
  }
  l->us[l->n++] = us;
}

static int CompareDoubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

// Nearest rank: the smallest value with at least q of the values <= it.
static double Percentile(const double* sorted, long n, double q) {
  if (n == 0) return 0;
  long rank = (long)(q * n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static void ReportLatencies(const char* name, struct Latencies* l,
                            double secs) {
  qsort(l->us, l->n, sizeof(double), CompareDoubles);
  char extra[160];
  snprintf(extra, sizeof(extra),
           ",\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_max_us\":%.1f",
           Percentile(l->us, l->n, 0.50), Percentile(l->us, l->n, 0.99),
           l->n ? l->us[l->n - 1] : 0.0);
  ReportWith(name, l->n, 0, secs, extra);
}

static void SharedWrite(void) {
  char* dir = PathJoin(opt.dir, "shared");
  MkdirP(dir);
  char** paths = calloc(opt.shared_files, sizeof(char*));
  if (!paths) Die("calloc", NULL);
  for (long k = 0; k < opt.shared_files; k++) {
    char name[32];
    snprintf(name, sizeof(name), "f%ld", k);
    paths[k] = PathJoin(dir, name);
    // Not O_EXCL: another client may be creating the same file right now.
    int fd = open(paths[k], O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) Die("create", paths[k]);
    close(fd);
  }
  static const char* kKinds[] = {"shared_chmod", "shared_touch",
                                 "shared_append"};
  struct Latencies by_kind[3] = {{0}}, all = {0};
  last_drop_ok = false;
  double t0 = Now(), end = t0 + opt.seconds, now = t0;
  for (long i = 0; now < end; i++) {
    int kind = i % 3;
    long visit = i / 3;
    const char* path = paths[visit % opt.shared_files];
    double s = Now();
    if (kind == 0) {
      mode_t mode = (visit / opt.shared_files) % 2 ? 0600 : 0644;
      if (chmod(path, mode) != 0) Die("chmod", path);
    } else if (kind == 1) {
      if (utimensat(AT_FDCWD, path, NULL, 0) != 0) Die("utimensat", path);
    } else {
      int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) Die("open", path);
      if (write(fd, "x", 1) != 1) Die("append", path);
      if (close(fd) != 0) Die("close", path);
    }
    now = Now();
    AddLatency(&by_kind[kind], (now - s) * 1e6);
    AddLatency(&all, (now - s) * 1e6);
  }
  double secs = now - t0;
  for (int k = 0; k < 3; k++) {
    ReportLatencies(kKinds[k], &by_kind[k], secs);
    free(by_kind[k].us);
  }
  ReportLatencies("shared_write", &all, secs);
  free(all.us);
  for (long k = 0; k < opt.shared_files; k++) free(paths[k]);
  free(paths);
  free(dir);
}

// --- data ------------------------------------------------------------------

static long Blocks(void) {
  return opt.seq_mib * 1024 * 1024 / opt.block_size;
}

static void Stamp(char* buf, uint64_t block) {
  memcpy(buf, &block, sizeof(block));
}

static void CheckStamp(const char* buf, uint64_t block) {
  uint64_t got;
  memcpy(&got, buf, sizeof(got));
  if (got != block) {
    fprintf(stderr, "fsbench: block %" PRIu64 " holds stamp %" PRIu64 "\n",
            block, got);
    exit(1);
  }
}

static uint64_t Xorshift(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static char* NewBlock(void) {
  char* buf;
  if (posix_memalign((void**)&buf, 4096, opt.block_size) != 0) {
    fprintf(stderr, "fsbench: out of memory\n");
    exit(1);
  }
  for (long i = 0; i < opt.block_size; i++) buf[i] = (char)(i * 7 + 1);
  return buf;
}

static void SeqWrite(void) {
  char* path = PathJoin(opt.dir, "data");
  char* buf = NewBlock();
  long blocks = Blocks();
  last_drop_ok = false;
  double t0 = Now();
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) Die("open", path);
  for (long b = 0; b < blocks; b++) {
    Stamp(buf, b);
    if (write(fd, buf, opt.block_size) != opt.block_size) Die("write", path);
  }
  if (fsync(fd) != 0) Die("fsync", path);
  if (close(fd) != 0) Die("close", path);
  Report("seq_write", blocks, (long long)blocks * opt.block_size, Now() - t0);
  free(buf);
  free(path);
}

static void SeqRead(void) {
  char* path = PathJoin(opt.dir, "data");
  char* buf = NewBlock();
  long blocks = Blocks();
  DropCaches();
  double t0 = Now();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open", path);
  long b = 0;
  for (;; b++) {
    ssize_t n = read(fd, buf, opt.block_size);
    if (n < 0) Die("read", path);
    if (n == 0) break;
    if (n != opt.block_size) {
      fprintf(stderr, "fsbench: short read %zd at block %ld\n", n, b);
      exit(1);
    }
    CheckStamp(buf, b);
  }
  close(fd);
  double secs = Now() - t0;
  if (b != blocks) {
    fprintf(stderr, "fsbench: %s has %ld blocks, want %ld\n", path, b, blocks);
    exit(1);
  }
  Report("seq_read", b, (long long)b * opt.block_size, secs);
  free(buf);
  free(path);
}

static void RandIo(bool write_side) {
  char* path = PathJoin(opt.dir, "data");
  char* buf = NewBlock();
  long blocks = Blocks();
  uint64_t state = opt.seed * 0x9E3779B97F4A7C15ull + (write_side ? 0 : 1);
  if (state == 0) state = 1;  // xorshift's one fixed point
  if (write_side) {
    last_drop_ok = false;
  } else {
    DropCaches();
  }
  double t0 = Now();
  int fd = open(path, (write_side ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) Die("open", path);
  for (long i = 0; i < opt.rand_ops; i++) {
    uint64_t b = Xorshift(&state) % (uint64_t)blocks;
    off_t off = (off_t)b * opt.block_size;
    if (write_side) {
      Stamp(buf, b);
      if (pwrite(fd, buf, opt.block_size, off) != opt.block_size)
        Die("pwrite", path);
    } else {
      if (pread(fd, buf, opt.block_size, off) != opt.block_size)
        Die("pread", path);
      CheckStamp(buf, b);
    }
  }
  if (write_side && fsync(fd) != 0) Die("fsync", path);
  if (close(fd) != 0) Die("close", path);
  Report(write_side ? "rand_write" : "rand_read", opt.rand_ops,
         (long long)opt.rand_ops * opt.block_size, Now() - t0);
  free(buf);
  free(path);
}

// --- command line ----------------------------------------------------------

static void Usage(void) {
  fprintf(stderr,
          "usage: fsbench --dir=DIR [--files=N] [--tree=D,S,F] [--create=N]\n"
          "         [--seq-mib=N] [--rand-ops=N] [--block-size=N]\n"
          "         [--warm-passes=N] [--seed=N] [--drop-caches=0|1]\n"
          "         [--seconds=N] [--shared-files=N] [--warm-seconds=N]\n"
          "         WORKLOAD...   (setup stat readdir readdir_stat walk\n"
          "                        create_unlink seq_write seq_read\n"
          "                        rand_write rand_read all;\n"
          "                        tree_stat[_cold|_warm]\n"
          "                        tree_readdir[_cold|_warm] shared_write)\n");
  exit(2);
}

static long ParseLong(const char* flag, const char* s, long min) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0' || v < min) {
    fprintf(stderr, "fsbench: bad value for %s: '%s' (min %ld)\n", flag, s, min);
    exit(2);
  }
  return v;
}

static const char* FlagValue(const char* arg, const char* flag) {
  size_t n = strlen(flag);
  if (strncmp(arg, flag, n) == 0 && arg[n] == '=') return arg + n + 1;
  return NULL;
}

static bool RunWorkload(const char* w) {
  bool all = strcmp(w, "all") == 0;
  bool known = all;
  if (strcmp(w, "setup") == 0) {
    Setup();
    return true;
  }
#define STEP(name, call)                   \
  if (all || strcmp(w, name) == 0) {       \
    call;                                  \
    known = true;                          \
  }
  STEP("stat", StatFiles());
  STEP("readdir", Readdir(false));
  STEP("readdir_stat", Readdir(true));
  STEP("walk", Walk());
  STEP("create_unlink", CreateUnlink());
  STEP("seq_write", SeqWrite());
  STEP("seq_read", SeqRead());
  STEP("rand_write", RandIo(true));
  STEP("rand_read", RandIo(false));
#undef STEP
  if (all) return true;
  // bench/coherence's workloads: by name only, never part of `all`.
  static const struct {
    const char* name;
    long (*pass)(int);
    const char *cold_name, *warm_name;
    bool cold, warm;
  } kTree[] = {
      {"tree_stat", TreeStatPass, "tree_stat_cold", "tree_stat_warm", 1, 1},
      {"tree_stat_cold", TreeStatPass, "tree_stat_cold", NULL, 1, 0},
      {"tree_stat_warm", TreeStatPass, NULL, "tree_stat_warm", 0, 1},
      {"tree_readdir", TreeReaddirPass, "tree_readdir_cold",
       "tree_readdir_warm", 1, 1},
      {"tree_readdir_cold", TreeReaddirPass, "tree_readdir_cold", NULL, 1, 0},
      {"tree_readdir_warm", TreeReaddirPass, NULL, "tree_readdir_warm", 0, 1},
  };
  for (size_t i = 0; i < sizeof(kTree) / sizeof(kTree[0]); i++) {
    if (strcmp(w, kTree[i].name) == 0) {
      TreePasses(kTree[i].pass, kTree[i].cold_name, kTree[i].warm_name,
                 kTree[i].cold, kTree[i].warm);
      return true;
    }
  }
  if (strcmp(w, "shared_write") == 0) {
    SharedWrite();
    return true;
  }
  return known;
}

int main(int argc, char** argv) {
  int first_workload = argc;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v;
    if (a[0] != '-') {
      first_workload = i;
      break;
    }
    if ((v = FlagValue(a, "--dir"))) {
      opt.dir = v;
    } else if ((v = FlagValue(a, "--files"))) {
      opt.files = ParseLong("--files", v, 1);
    } else if ((v = FlagValue(a, "--tree"))) {
      if (sscanf(v, "%ld,%ld,%ld", &opt.tree_dirs, &opt.tree_subdirs,
                 &opt.tree_files) != 3 ||
          opt.tree_dirs < 1 || opt.tree_subdirs < 1 || opt.tree_files < 0 ||
          opt.tree_dirs > 100 || opt.tree_subdirs > 100) {
        fprintf(stderr, "fsbench: --tree wants D,S,F (D,S in 1..100)\n");
        exit(2);
      }
    } else if ((v = FlagValue(a, "--create"))) {
      opt.create = ParseLong("--create", v, 1);
    } else if ((v = FlagValue(a, "--seq-mib"))) {
      opt.seq_mib = ParseLong("--seq-mib", v, 1);
    } else if ((v = FlagValue(a, "--rand-ops"))) {
      opt.rand_ops = ParseLong("--rand-ops", v, 1);
    } else if ((v = FlagValue(a, "--block-size"))) {
      opt.block_size = ParseLong("--block-size", v, 8);
    } else if ((v = FlagValue(a, "--warm-passes"))) {
      opt.warm_passes = ParseLong("--warm-passes", v, 1);
    } else if ((v = FlagValue(a, "--seed"))) {
      opt.seed = (uint64_t)ParseLong("--seed", v, 0);
    } else if ((v = FlagValue(a, "--seconds"))) {
      opt.seconds = ParseLong("--seconds", v, 1);
    } else if ((v = FlagValue(a, "--warm-seconds"))) {
      opt.warm_seconds = ParseLong("--warm-seconds", v, 0);
    } else if ((v = FlagValue(a, "--shared-files"))) {
      opt.shared_files = ParseLong("--shared-files", v, 1);
    } else if ((v = FlagValue(a, "--drop-caches"))) {
      opt.drop_caches = ParseLong("--drop-caches", v, 0) != 0;
    } else {
      fprintf(stderr, "fsbench: unknown flag %s\n", a);
      Usage();
    }
  }
  if (!opt.dir || first_workload >= argc) Usage();
  if (opt.files > 99999) {
    fprintf(stderr, "fsbench: --files at most 99999\n");
    exit(2);
  }
  if ((opt.seq_mib * 1024 * 1024) % opt.block_size != 0) {
    fprintf(stderr, "fsbench: --block-size must divide --seq-mib MiB\n");
    exit(2);
  }
  for (int i = first_workload; i < argc; i++) {
    if (!RunWorkload(argv[i])) {
      fprintf(stderr, "fsbench: unknown workload %s\n", argv[i]);
      Usage();
    }
  }
  return 0;
}
