// conformance: coherefs's own POSIX conformance suite for a mounted file
// system. Runs unchanged in a test guest over virtio-fs (the VM harness
// builds it with gcc -static and puts it in the initramfs) and on a host
// directory, e.g. a /dev/fuse mount of coherefs.
//
//   conformance DIR [--other DIR2] [--keep]
//
// Works in a fresh DIR/conformance.PID (removed at the end unless --keep).
// --other names a directory on a DIFFERENT file system, for the EXDEV
// checks; without it (or if it is on the same device) those are skipped.
//
// What it checks, each with the exact errno Linux gives on a local file
// system: ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EXDEV, EINVAL, ELOOP,
// ENAMETOOLONG, EBADF, EPERM; permissions (umask, modes, setgid
// directories, chown) and, when run as root, EACCES/EPERM as uid 65534 in a
// forked child (so DIR and its ancestors must be searchable by 65534; a
// /dev/fuse mount needs allow_other); timestamps (mtime/ctime on write,
// truncate, chmod, create, unlink, rename, link; exact utimensat; atime on
// read unless the mount is noatime).
//
// Prints "PASS name" / "FAIL name: why" / "SKIP name: why" lines, then
// "N passed, N failed" (and "N skipped"). Exit status 0 iff nothing failed.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kNobody = 65534 };

// Counters live in a shared mapping so the uid-65534 child's results count.
static struct Counts {
  int passed, failed, skipped;
} * counts;

static char root[PATH_MAX];  // DIR/conformance.PID

static const char* ErrName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "?";
}

static void Pass(const char* name) {
  counts->passed++;
  printf("PASS %s\n", name);
}

static void Fail(const char* name, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  counts->failed++;
  printf("FAIL %s: ", name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static void Skip(const char* name, const char* why) {
  counts->skipped++;
  printf("SKIP %s: %s\n", name, why);
}

static void Check(const char* name, bool ok, const char* fmt, ...) {
  if (ok) {
    Pass(name);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  counts->failed++;
  printf("FAIL %s: ", name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

// rc is the call's result with errno as the call left it.
static void ExpectErrno(const char* name, long rc, int want) {
  int e = errno;
  if (rc == -1 && e == want) {
    Pass(name);
  } else if (rc == -1) {
    Fail(name, "errno %s, want %s", ErrName(e), ErrName(want));
  } else {
    Fail(name, "succeeded (%ld), want %s", rc, ErrName(want));
  }
}

static bool ExpectOk(const char* name, long rc) {
  if (rc != -1) {
    Pass(name);
    return true;
  }
  Fail(name, "failed: %s", ErrName(errno));
  return false;
}

// open() that closes what it opened, for errno checks.
static long OpenClose(const char* path, int flags, mode_t mode) {
  int fd = open(path, flags, mode);
  if (fd < 0) return -1;
  close(fd);
  return fd;
}

static const char* P(const char* rel) {  // root/rel; rotating buffers
  static char bufs[8][PATH_MAX + 64];
  static int next;
  char* b = bufs[next++ % 8];
  snprintf(b, sizeof(bufs[0]), "%s/%s", root, rel);
  return b;
}

static void Setup(const char* what, long rc) {
  if (rc == -1) {
    printf("conformance: setup %s failed: %s\n", what, ErrName(errno));
    exit(2);
  }
}

static void MakeFile(const char* rel, mode_t mode, const char* data) {
  int fd = open(P(rel), O_CREAT | O_WRONLY | O_TRUNC, mode);
  Setup(rel, fd);
  if (data) Setup(rel, write(fd, data, strlen(data)));
  close(fd);
  Setup(rel, chmod(P(rel), mode));
}

static void MakeDir(const char* rel, mode_t mode) {
  Setup(rel, mkdir(P(rel), mode));
  Setup(rel, chmod(P(rel), mode));
}

static struct stat St(const char* path) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  if (lstat(path, &st) != 0) st.st_ino = 0;
  return st;
}

static int64_t Ns(struct timespec t) {
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void Nap(void) {
  // Longer than the coarse clock tick file systems stamp times with.
  struct timespec d = {0, 50 * 1000 * 1000};
  nanosleep(&d, NULL);
}

static const struct timespec kOld[2] = {{1000000000, 0}, {1000000000, 0}};

// ---------------------------------------------------------------- errnos

static void TestEnoent(void) {
  ExpectErrno("enoent.open", OpenClose(P("missing"), O_RDONLY, 0), ENOENT);
  struct stat st;
  ExpectErrno("enoent.stat", stat(P("missing"), &st), ENOENT);
  ExpectErrno("enoent.lstat", lstat(P("missing"), &st), ENOENT);
  ExpectErrno("enoent.unlink", unlink(P("missing")), ENOENT);
  ExpectErrno("enoent.rmdir", rmdir(P("missing")), ENOENT);
  ExpectErrno("enoent.rename_src", rename(P("missing"), P("x")), ENOENT);
  ExpectErrno("enoent.link_src", link(P("missing"), P("x")), ENOENT);
  ExpectErrno("enoent.chmod", chmod(P("missing"), 0644), ENOENT);
  ExpectErrno("enoent.truncate", truncate(P("missing"), 0), ENOENT);
  char buf[16];
  ExpectErrno("enoent.readlink", readlink(P("missing"), buf, sizeof(buf)),
              ENOENT);
  ExpectErrno("enoent.create_in_missing_dir",
              OpenClose(P("nodir/f"), O_CREAT | O_WRONLY, 0644), ENOENT);
  ExpectErrno("enoent.mkdir_in_missing_dir", mkdir(P("nodir/d"), 0755),
              ENOENT);
  Setup("dangling", symlink("nowhere", P("dangling")));
  ExpectErrno("enoent.open_dangling_symlink",
              OpenClose(P("dangling"), O_RDONLY, 0), ENOENT);
  ExpectOk("enoent.lstat_dangling_symlink_ok", lstat(P("dangling"), &st));
  ExpectErrno("eexist.create_excl_through_dangling_symlink",
              OpenClose(P("dangling"), O_CREAT | O_EXCL | O_WRONLY, 0644),
              EEXIST);
}

static void TestEexistEnotempty(void) {
  MakeFile("file", 0644, "data");
  MakeDir("dir", 0755);
  ExpectErrno("eexist.create_excl",
              OpenClose(P("file"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  ExpectErrno("eexist.mkdir_over_dir", mkdir(P("dir"), 0755), EEXIST);
  ExpectErrno("eexist.mkdir_over_file", mkdir(P("file"), 0755), EEXIST);
  ExpectErrno("eexist.link_over_file", link(P("file"), P("file")), EEXIST);
  ExpectErrno("eexist.symlink_over_file", symlink("x", P("file")), EEXIST);

  MakeDir("full", 0755);
  MakeFile("full/f", 0644, NULL);
  MakeDir("empty", 0755);
  ExpectErrno("enotempty.rmdir", rmdir(P("full")), ENOTEMPTY);
  ExpectErrno("enotempty.rename_over_nonempty_dir",
              rename(P("empty"), P("full")), ENOTEMPTY);
  MakeDir("empty2", 0755);
  ExpectOk("rename.dir_over_empty_dir_ok", rename(P("empty2"), P("empty")));
  struct stat st;
  ExpectErrno("rename.dir_over_empty_dir_source_gone", lstat(P("empty2"), &st),
              ENOENT);
}

static void TestEisdirEnotdir(void) {
  ExpectErrno("eisdir.open_wronly", OpenClose(P("dir"), O_WRONLY, 0), EISDIR);
  ExpectErrno("eisdir.open_rdwr", OpenClose(P("dir"), O_RDWR, 0), EISDIR);
  ExpectErrno("eisdir.open_creat",
              OpenClose(P("dir"), O_CREAT | O_WRONLY, 0644), EISDIR);
  ExpectErrno("eisdir.unlink_dir", unlink(P("dir")), EISDIR);
  ExpectErrno("eisdir.rename_file_over_dir", rename(P("file"), P("dir")),
              EISDIR);
  ExpectErrno("eisdir.truncate_dir", truncate(P("dir"), 0), EISDIR);
  int fd = open(P("dir"), O_RDONLY | O_DIRECTORY);
  char buf[16];
  ExpectErrno("eisdir.read_dir_fd", fd < 0 ? -1 : read(fd, buf, sizeof(buf)),
              EISDIR);
  if (fd >= 0) close(fd);

  struct stat st;
  ExpectErrno("enotdir.open_under_file", OpenClose(P("file/x"), O_RDONLY, 0),
              ENOTDIR);
  ExpectErrno("enotdir.stat_file_trailing_slash", stat(P("file/"), &st),
              ENOTDIR);
  ExpectErrno("enotdir.mkdir_under_file", mkdir(P("file/d"), 0755), ENOTDIR);
  ExpectErrno("enotdir.rmdir_file", rmdir(P("file")), ENOTDIR);
  ExpectErrno("enotdir.rename_dir_over_file", rename(P("dir"), P("file")),
              ENOTDIR);
  ExpectErrno("enotdir.open_file_o_directory",
              OpenClose(P("file"), O_RDONLY | O_DIRECTORY, 0), ENOTDIR);
  Setup("link_to_file", symlink("file", P("link_to_file")));
  ExpectErrno("enotdir.o_directory_through_symlink_to_file",
              OpenClose(P("link_to_file"), O_RDONLY | O_DIRECTORY, 0),
              ENOTDIR);
}

static void TestEinvalEbadfEperm(void) {
  MakeDir("parent", 0755);
  MakeDir("parent/child", 0755);
  ExpectErrno("einval.rename_dir_into_own_subdir",
              rename(P("parent"), P("parent/child/p")), EINVAL);
  ExpectErrno("einval.rmdir_dot", rmdir(P("dir/.")), EINVAL);
  char buf[16];
  ExpectErrno("einval.readlink_regular_file",
              readlink(P("file"), buf, sizeof(buf)), EINVAL);

  int fd = open(P("file"), O_RDONLY);
  ExpectErrno("ebadf.write_rdonly_fd", fd < 0 ? -1 : write(fd, "x", 1), EBADF);
  if (fd >= 0) close(fd);
  fd = open(P("file"), O_WRONLY);
  ExpectErrno("ebadf.read_wronly_fd", fd < 0 ? -1 : read(fd, buf, 1), EBADF);
  if (fd >= 0) close(fd);

  ExpectErrno("eperm.hard_link_to_dir", link(P("dir"), P("dirlink")), EPERM);
}

static void TestEloop(void) {
  Setup("loop_a", symlink("loop_b", P("loop_a")));
  Setup("loop_b", symlink("loop_a", P("loop_b")));
  Setup("loop_self", symlink("loop_self", P("loop_self")));
  struct stat st;
  ExpectErrno("eloop.open_mutual_loop", OpenClose(P("loop_a"), O_RDONLY, 0),
              ELOOP);
  ExpectErrno("eloop.stat_mutual_loop", stat(P("loop_a"), &st), ELOOP);
  ExpectErrno("eloop.stat_self_loop", stat(P("loop_self"), &st), ELOOP);
  ExpectErrno("eloop.open_o_nofollow_symlink",
              OpenClose(P("link_to_file"), O_RDONLY | O_NOFOLLOW, 0), ELOOP);
  // Linux follows at most 40 links in one lookup: chain_0 -> ... -> file.
  char name[32], target[32];
  for (int i = 0; i <= 40; ++i) {
    snprintf(name, sizeof(name), "chain_%d", i);
    if (i == 40) {
      snprintf(target, sizeof(target), "file");
    } else {
      snprintf(target, sizeof(target), "chain_%d", i + 1);
    }
    Setup(name, symlink(target, P(name)));
  }
  ExpectOk("eloop.chain_of_40_links_ok", OpenClose(P("chain_1"), O_RDONLY, 0));
  ExpectErrno("eloop.chain_of_41_links", OpenClose(P("chain_0"), O_RDONLY, 0),
              ELOOP);
}

static void TestNameTooLong(void) {
  char name[300];
  memset(name, 'n', 255);
  name[255] = '\0';
  ExpectOk("enametoolong.name_255_ok",
           OpenClose(P(name), O_CREAT | O_WRONLY, 0644));
  struct stat st;
  ExpectOk("enametoolong.stat_255_ok", stat(P(name), &st));
  ExpectOk("enametoolong.unlink_255_ok", unlink(P(name)));
  memset(name, 'n', 256);
  name[256] = '\0';
  ExpectErrno("enametoolong.create_256",
              OpenClose(P(name), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  ExpectErrno("enametoolong.mkdir_256", mkdir(P(name), 0755), ENAMETOOLONG);
  ExpectErrno("enametoolong.stat_256", stat(P(name), &st), ENAMETOOLONG);
  static char path[PATH_MAX + 200];
  size_t n = (size_t)snprintf(path, sizeof(path), "%s", root);
  while (n < PATH_MAX + 100) {
    path[n++] = '/';
    path[n++] = 'd';
  }
  path[n] = '\0';
  ExpectErrno("enametoolong.path_over_path_max", stat(path, &st),
              ENAMETOOLONG);
}

static void TestExdev(const char* other) {
  struct stat a, b;
  if (!other) {
    Skip("exdev.rename", "no --other DIR given");
    Skip("exdev.link", "no --other DIR given");
    return;
  }
  if (stat(root, &a) != 0 || stat(other, &b) != 0 || a.st_dev == b.st_dev) {
    Skip("exdev.rename", "--other is not on a different file system");
    Skip("exdev.link", "--other is not on a different file system");
    return;
  }
  char dst[PATH_MAX];
  snprintf(dst, sizeof(dst), "%s/conformance-exdev.%d", other, (int)getpid());
  ExpectErrno("exdev.rename", rename(P("file"), dst), EXDEV);
  ExpectErrno("exdev.link", link(P("file"), dst), EXDEV);
  unlink(dst);
}

// ------------------------------------------------------------ file basics

static void TestFileSemantics(void) {
  int fd = open(P("io"), O_CREAT | O_RDWR | O_TRUNC, 0644);
  Setup("io", fd);
  Setup("io", write(fd, "hello world", 11));
  char buf[64] = {0};
  ssize_t n = pread(fd, buf, 5, 6);
  Check("io.pread_at_offset", n == 5 && memcmp(buf, "world", 5) == 0,
        "got %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
  Setup("io", pwrite(fd, "W", 1, 6));
  Setup("io", ftruncate(fd, 16));
  memset(buf, 'x', sizeof(buf));
  n = pread(fd, buf, sizeof(buf), 0);
  Check("io.ftruncate_extends_with_zeros",
        n == 16 && memcmp(buf, "hello World\0\0\0\0\0", 16) == 0,
        "got %zd bytes", n);
  Check("io.lseek_end", lseek(fd, 0, SEEK_END) == 16, "wrong size");
  ExpectOk("io.fsync", fsync(fd));
  ExpectOk("io.fdatasync", fdatasync(fd));
  close(fd);

  fd = open(P("io"), O_WRONLY | O_APPEND);
  Setup("io append", fd);
  Setup("io append", lseek(fd, 0, SEEK_SET));
  Setup("io append", write(fd, "!", 1));
  close(fd);
  struct stat st = St(P("io"));
  Check("io.o_append_writes_at_end", st.st_size == 17, "size %lld",
        (long long)st.st_size);
  fd = open(P("io"), O_WRONLY | O_TRUNC);
  if (fd >= 0) close(fd);
  st = St(P("io"));
  Check("io.o_trunc_empties", st.st_size == 0, "size %lld",
        (long long)st.st_size);

  // Hard links share one inode; the count follows link and unlink.
  MakeFile("hl", 0644, "shared");
  ExpectOk("link.create", link(P("hl"), P("hl2")));
  struct stat s1 = St(P("hl")), s2 = St(P("hl2"));
  Check("link.same_inode_nlink_2",
        s1.st_ino == s2.st_ino && s1.st_nlink == 2 && s2.st_nlink == 2,
        "ino %llu/%llu nlink %lu/%lu", (unsigned long long)s1.st_ino,
        (unsigned long long)s2.st_ino, (unsigned long)s1.st_nlink,
        (unsigned long)s2.st_nlink);
  // rename between two names of one file does nothing (POSIX).
  ExpectOk("rename.between_hard_links_ok", rename(P("hl"), P("hl2")));
  s1 = St(P("hl"));
  Check("rename.between_hard_links_keeps_both",
        s1.st_ino != 0 && St(P("hl2")).st_ino != 0, "a name vanished");
  Setup("unlink hl2", unlink(P("hl2")));
  s1 = St(P("hl"));
  Check("link.unlink_drops_nlink_to_1", s1.st_nlink == 1, "nlink %lu",
        (unsigned long)s1.st_nlink);

  // Rename over an existing file replaces it.
  MakeFile("victim", 0644, "old");
  MakeFile("winner", 0644, "new");
  ExpectOk("rename.over_file_ok", rename(P("winner"), P("victim")));
  fd = open(P("victim"), O_RDONLY);
  memset(buf, 0, sizeof(buf));
  n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
  if (fd >= 0) close(fd);
  Check("rename.over_file_replaces_contents", n == 3 && !strcmp(buf, "new"),
        "read %zd '%s'", n, buf);

  // An unlinked file stays readable through an open descriptor.
  MakeFile("doomed", 0644, "still here");
  fd = open(P("doomed"), O_RDONLY);
  Setup("doomed", fd);
  Setup("doomed", unlink(P("doomed")));
  memset(buf, 0, sizeof(buf));
  n = pread(fd, buf, sizeof(buf), 0);
  Check("unlink.open_file_still_readable", n == 10 && !strcmp(buf, "still here"),
        "read %zd", n);
  fstat(fd, &st);
  Check("unlink.open_file_nlink_0", st.st_nlink == 0, "nlink %lu",
        (unsigned long)st.st_nlink);
  close(fd);

  // readdir shows exactly what is there.
  MakeDir("rd", 0755);
  MakeFile("rd/a", 0644, NULL);
  MakeFile("rd/b", 0644, NULL);
  MakeDir("rd/c", 0755);
  Setup("rd/b", unlink(P("rd/b")));
  DIR* d = opendir(P("rd"));
  int seen = 0, dots = 0, extra = 0;
  struct dirent* e;
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
      dots++;
    } else if (!strcmp(e->d_name, "a") || !strcmp(e->d_name, "c")) {
      seen++;
    } else {
      extra++;
    }
  }
  if (d) closedir(d);
  Check("readdir.exact_entries", seen == 2 && dots == 2 && extra == 0,
        "named %d dots %d unexpected %d", seen, dots, extra);
}

// ------------------------------------------------------------ permissions

static void TestModes(void) {
  umask(022);
  Setup("m644", OpenClose(P("m644"), O_CREAT | O_WRONLY, 0666));
  Setup("m755", mkdir(P("m755"), 0777));
  umask(0);
  Setup("m666", OpenClose(P("m666"), O_CREAT | O_WRONLY, 0666));
  Check("mode.umask_022_file", (St(P("m644")).st_mode & 07777) == 0644,
        "mode %o", St(P("m644")).st_mode & 07777);
  Check("mode.umask_022_dir", (St(P("m755")).st_mode & 07777) == 0755,
        "mode %o", St(P("m755")).st_mode & 07777);
  Check("mode.umask_0_file", (St(P("m666")).st_mode & 07777) == 0666,
        "mode %o", St(P("m666")).st_mode & 07777);
  ExpectOk("mode.chmod_640", chmod(P("m666"), 0640));
  Check("mode.chmod_640_seen", (St(P("m666")).st_mode & 07777) == 0640,
        "mode %o", St(P("m666")).st_mode & 07777);
  ExpectOk("mode.chmod_1777_dir", chmod(P("m755"), 01777));
  Check("mode.sticky_bit_kept", (St(P("m755")).st_mode & 07777) == 01777,
        "mode %o", St(P("m755")).st_mode & 07777);
  Check("mode.file_type_regular", S_ISREG(St(P("m644")).st_mode), "not S_IFREG");
  Check("mode.file_type_symlink", S_ISLNK(St(P("link_to_file")).st_mode),
        "not S_IFLNK");
  if (geteuid() == 0) {
    ExpectErrno("access.root_x_ok_needs_an_x_bit", access(P("m644"), X_OK),
                EACCES);
  } else {
    Skip("access.root_x_ok_needs_an_x_bit", "not root");
  }
}

static void TestOwnership(void) {
  if (geteuid() != 0) {
    Skip("chown.*", "not root");
    return;
  }
  MakeFile("owned", 0644, "x");
  ExpectOk("chown.uid_gid", chown(P("owned"), 1234, 5678));
  struct stat st = St(P("owned"));
  Check("chown.uid_gid_seen", st.st_uid == 1234 && st.st_gid == 5678,
        "%u:%u", st.st_uid, st.st_gid);
  ExpectOk("chown.uid_only", chown(P("owned"), 4321, (gid_t)-1));
  st = St(P("owned"));
  Check("chown.uid_only_keeps_gid", st.st_uid == 4321 && st.st_gid == 5678,
        "%u:%u", st.st_uid, st.st_gid);
  Setup("suid", chmod(P("owned"), 04755));
  Check("mode.setuid_set", (St(P("owned")).st_mode & 07777) == 04755, "mode %o",
        St(P("owned")).st_mode & 07777);
  ExpectOk("chown.of_setuid_file", chown(P("owned"), 1234, (gid_t)-1));
  Check("chown.clears_setuid", (St(P("owned")).st_mode & 07777) == 0755,
        "mode %o", St(P("owned")).st_mode & 07777);

  // A setgid directory hands its group (and the bit, to subdirs) down.
  MakeDir("sgid", 0755);
  Setup("sgid", chown(P("sgid"), 0, 5678));
  Setup("sgid", chmod(P("sgid"), 02775));
  MakeFile("sgid/f", 0644, NULL);
  Setup("sgid/d", mkdir(P("sgid/d"), 0755));
  Check("sgid.file_inherits_group", St(P("sgid/f")).st_gid == 5678, "gid %u",
        St(P("sgid/f")).st_gid);
  st = St(P("sgid/d"));
  Check("sgid.subdir_inherits_group_and_bit",
        st.st_gid == 5678 && (st.st_mode & S_ISGID), "gid %u mode %o",
        st.st_gid, st.st_mode & 07777);
}

// Runs as uid/gid 65534 (forked from root): what an ordinary user hits.
static void TestAsNobody(void) {
  struct stat st;
  ExpectOk("nobody.can_stat_test_dir", stat(root, &st));
  ExpectOk("nobody.create_in_0777_dir",
           OpenClose(P("open/mine"), O_CREAT | O_WRONLY, 0644));
  ExpectOk("nobody.read_0644_root_file",
           OpenClose(P("pub"), O_RDONLY, 0));
  ExpectErrno("eacces.read_0600_root_file",
              OpenClose(P("secret"), O_RDONLY, 0), EACCES);
  ExpectErrno("eacces.write_0644_root_file", OpenClose(P("pub"), O_WRONLY, 0),
              EACCES);
  ExpectErrno("eacces.truncate_0644_root_file", truncate(P("pub"), 0), EACCES);
  ExpectErrno("eacces.create_in_0755_root_dir",
              OpenClose(P("closed/new"), O_CREAT | O_WRONLY, 0644), EACCES);
  ExpectErrno("eacces.mkdir_in_0755_root_dir", mkdir(P("closed/d"), 0755),
              EACCES);
  ExpectErrno("eacces.unlink_in_0755_root_dir", unlink(P("closed/f")), EACCES);
  ExpectErrno("eacces.rename_in_0755_root_dir",
              rename(P("closed/f"), P("closed/g")), EACCES);
  ExpectErrno("eacces.search_0700_dir", stat(P("private/f"), &st), EACCES);
  ExpectErrno("eacces.list_0311_dir",
              OpenClose(P("nolist"), O_RDONLY | O_DIRECTORY, 0), EACCES);
  ExpectOk("eacces.lookup_in_0311_dir_ok", stat(P("nolist/f"), &st));
  ExpectErrno("eacces.access_r_ok_0600", access(P("secret"), R_OK), EACCES);
  Setup("mine", chmod(P("open/mine"), 0));
  ExpectErrno("eacces.owner_mode_000", OpenClose(P("open/mine"), O_RDONLY, 0),
              EACCES);
  ExpectOk("nobody.owner_may_chmod", chmod(P("open/mine"), 0600));
  ExpectErrno("eperm.chmod_not_owner", chmod(P("pub"), 0777), EPERM);
  ExpectErrno("eperm.chown_not_root", chown(P("open/mine"), 0, 0), EPERM);
  struct timespec t[2] = {{1, 0}, {1, 0}};
  ExpectErrno("eperm.utimensat_explicit_not_owner",
              utimensat(AT_FDCWD, P("open/rootfile"), t, 0), EPERM);
  ExpectOk("nobody.utimensat_now_writable_ok",
           utimensat(AT_FDCWD, P("open/rootfile"), NULL, 0));
  ExpectErrno("eperm.sticky_dir_unlink_others_file",
              unlink(P("sticky/rootfile")), EPERM);
  ExpectOk("nobody.sticky_dir_unlink_own_file",
           OpenClose(P("sticky/mine"), O_CREAT | O_WRONLY, 0644) == -1
               ? -1
               : unlink(P("sticky/mine")));
  // Writing a setuid file one does not own clears the bit.
  int fd = open(P("open/suid"), O_WRONLY);
  ExpectOk("nobody.write_world_writable_setuid_file",
           fd < 0 ? -1 : write(fd, "x", 1));
  if (fd >= 0) close(fd);
  Check("killpriv.write_clears_setuid",
        (St(P("open/suid")).st_mode & 07777) == 0777, "mode %o",
        St(P("open/suid")).st_mode & 07777);
}

static void TestNonRoot(void) {
  if (geteuid() != 0) {
    Skip("nobody.*", "not root: cannot switch to uid 65534");
    return;
  }
  MakeFile("pub", 0644, "public");
  MakeFile("secret", 0600, "secret");
  MakeDir("closed", 0755);
  MakeFile("closed/f", 0644, NULL);
  MakeDir("private", 0700);
  MakeFile("private/f", 0644, NULL);
  MakeDir("nolist", 0311);
  MakeFile("nolist/f", 0644, NULL);
  MakeDir("open", 0777);
  MakeFile("open/rootfile", 0666, NULL);
  MakeFile("open/suid", 04777, NULL);
  MakeDir("sticky", 01777);
  MakeFile("sticky/rootfile", 0666, NULL);

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setgid(kNobody) != 0 ||
        setuid(kNobody) != 0) {
      printf("FAIL nobody.setuid: %s\n", ErrName(errno));
      counts->failed++;
      _exit(1);
    }
    TestAsNobody();
    fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Check("nobody.child_exited_cleanly",
        WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

// ------------------------------------------------------------- timestamps

static bool MountIsNoatime(const char* path) {
  // The longest mount point that prefixes path decides.
  FILE* f = fopen("/proc/self/mounts", "r");
  if (!f) return false;
  char dev[512], mnt[PATH_MAX], type[64], opts[1024];
  size_t best = 0;
  bool noatime = false;
  while (fscanf(f, "%511s %4095s %63s %1023s %*d %*d", dev, mnt, type, opts) ==
         4) {
    size_t n = strlen(mnt);
    bool prefix = strncmp(path, mnt, n) == 0 &&
                  (path[n] == '/' || path[n] == '\0' || n == 1);
    if (prefix && n >= best) {
      best = n;
      noatime = strstr(opts, "noatime") != NULL;
    }
  }
  fclose(f);
  return noatime;
}

static void TestTimes(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  // Not MakeFile: its chmod would move ctime past the creation stamp.
  Setup("t_new", OpenClose(P("t_new"), O_CREAT | O_EXCL | O_WRONLY, 0644));
  struct stat st = St(P("t_new"));
  int64_t skew = Ns(st.st_mtim) - Ns(now);
  Check("time.create_sets_now", skew > -10000000000LL && skew < 10000000000LL,
        "mtime off by %lld ms from this clock", (long long)(skew / 1000000));
  Check("time.create_atime_mtime_ctime_equal",
        Ns(st.st_atim) == Ns(st.st_mtim) && Ns(st.st_ctim) == Ns(st.st_mtim),
        "a %lld m %lld c %lld", (long long)Ns(st.st_atim),
        (long long)Ns(st.st_mtim), (long long)Ns(st.st_ctim));

  const struct timespec exact[2] = {{1234567890, 123456789},
                                    {1234567891, 987654321}};
  ExpectOk("time.utimensat_exact", utimensat(AT_FDCWD, P("t_new"), exact, 0));
  st = St(P("t_new"));
  Check("time.utimensat_exact_seen",
        Ns(st.st_atim) == Ns(exact[0]) && Ns(st.st_mtim) == Ns(exact[1]),
        "atime %lld mtime %lld", (long long)Ns(st.st_atim),
        (long long)Ns(st.st_mtim));
  const struct timespec omit[2] = {{0, UTIME_OMIT}, {1300000000, 0}};
  ExpectOk("time.utimensat_omit_atime",
           utimensat(AT_FDCWD, P("t_new"), omit, 0));
  st = St(P("t_new"));
  Check("time.utime_omit_keeps_atime",
        Ns(st.st_atim) == Ns(exact[0]) && st.st_mtim.tv_sec == 1300000000,
        "atime %lld mtime %lld", (long long)Ns(st.st_atim),
        (long long)Ns(st.st_mtim));
  ExpectOk("time.utimensat_now", utimensat(AT_FDCWD, P("t_new"), NULL, 0));
  clock_gettime(CLOCK_REALTIME, &now);
  skew = Ns(St(P("t_new")).st_mtim) - Ns(now);
  Check("time.utimensat_now_seen",
        skew > -10000000000LL && skew < 10000000000LL, "off by %lld ms",
        (long long)(skew / 1000000));

  // write: mtime and ctime move.
  Setup("t_new old", utimensat(AT_FDCWD, P("t_new"), kOld, 0));
  struct stat before = St(P("t_new"));
  Nap();
  int fd = open(P("t_new"), O_WRONLY);
  Setup("t_new write", fd < 0 ? -1 : write(fd, "abc", 3));
  close(fd);
  st = St(P("t_new"));
  Check("time.write_updates_mtime", Ns(st.st_mtim) > Ns(before.st_mtim),
        "mtime %lld", (long long)Ns(st.st_mtim));
  Check("time.write_updates_ctime", Ns(st.st_ctim) > Ns(before.st_ctim),
        "ctime %lld -> %lld", (long long)Ns(before.st_ctim),
        (long long)Ns(st.st_ctim));

  // truncate: mtime and ctime move.
  Setup("t_new old", utimensat(AT_FDCWD, P("t_new"), kOld, 0));
  before = St(P("t_new"));
  Nap();
  Setup("t_new truncate", truncate(P("t_new"), 1));
  st = St(P("t_new"));
  Check("time.truncate_updates_mtime_ctime",
        Ns(st.st_mtim) > Ns(before.st_mtim) &&
            Ns(st.st_ctim) > Ns(before.st_ctim),
        "mtime %lld ctime %lld", (long long)Ns(st.st_mtim),
        (long long)Ns(st.st_ctim));

  // chmod: ctime moves, mtime stays.
  Setup("t_new old", utimensat(AT_FDCWD, P("t_new"), kOld, 0));
  before = St(P("t_new"));
  Nap();
  Setup("t_new chmod", chmod(P("t_new"), 0600));
  st = St(P("t_new"));
  Check("time.chmod_updates_ctime", Ns(st.st_ctim) > Ns(before.st_ctim),
        "ctime unchanged");
  Check("time.chmod_keeps_mtime", Ns(st.st_mtim) == Ns(before.st_mtim),
        "mtime %lld -> %lld", (long long)Ns(before.st_mtim),
        (long long)Ns(st.st_mtim));

  // link: the file's ctime moves.
  before = St(P("t_new"));
  Nap();
  Setup("t_link", link(P("t_new"), P("t_link")));
  st = St(P("t_new"));
  Check("time.link_updates_ctime", Ns(st.st_ctim) > Ns(before.st_ctim),
        "ctime unchanged");

  // create / unlink / rename: the parents' mtime and ctime move.
  MakeDir("tp", 0755);
  MakeDir("tq", 0755);
  Setup("tp old", utimensat(AT_FDCWD, P("tp"), kOld, 0));
  before = St(P("tp"));
  Nap();
  MakeFile("tp/f", 0644, NULL);
  st = St(P("tp"));
  Check("time.create_updates_parent_mtime_ctime",
        Ns(st.st_mtim) > Ns(before.st_mtim) &&
            Ns(st.st_ctim) > Ns(before.st_ctim),
        "parent mtime %lld", (long long)Ns(st.st_mtim));
  Setup("tp old", utimensat(AT_FDCWD, P("tp"), kOld, 0));
  Setup("tq old", utimensat(AT_FDCWD, P("tq"), kOld, 0));
  struct stat moved = St(P("tp/f"));
  Nap();
  Setup("rename tp/f", rename(P("tp/f"), P("tq/f")));
  st = St(P("tp"));
  struct stat q = St(P("tq"));
  Check("time.rename_updates_both_parents_mtime",
        st.st_mtim.tv_sec > kOld[1].tv_sec && q.st_mtim.tv_sec > kOld[1].tv_sec,
        "from %lld to %lld", (long long)st.st_mtim.tv_sec,
        (long long)q.st_mtim.tv_sec);
  Check("time.rename_updates_moved_file_ctime",
        Ns(St(P("tq/f")).st_ctim) > Ns(moved.st_ctim), "ctime unchanged");
  Setup("tq old", utimensat(AT_FDCWD, P("tq"), kOld, 0));
  Nap();
  Setup("unlink tq/f", unlink(P("tq/f")));
  Check("time.unlink_updates_parent_mtime",
        St(P("tq")).st_mtim.tv_sec > kOld[1].tv_sec, "parent mtime unchanged");

  // read: atime as the mount allows; mtime never.
  MakeFile("t_read", 0644, "some bytes");
  Setup("t_read old", utimensat(AT_FDCWD, P("t_read"), kOld, 0));
  fd = open(P("t_read"), O_RDONLY);
  Setup("t_read", fd);
  // Drop cached pages so the read reaches the file system (a page-cache
  // hit is not an access the file system sees).
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  char buf[32];
  Setup("t_read read", read(fd, buf, sizeof(buf)));
  close(fd);
  st = St(P("t_read"));
  if (MountIsNoatime(root)) {
    Check("time.read_keeps_atime_on_noatime_mount",
          Ns(st.st_atim) == Ns(kOld[0]), "atime %lld",
          (long long)Ns(st.st_atim));
  } else {
    Check("time.read_updates_old_atime_relatime",
          st.st_atim.tv_sec > kOld[0].tv_sec, "atime still %lld",
          (long long)st.st_atim.tv_sec);
  }
  Check("time.read_keeps_mtime", Ns(st.st_mtim) == Ns(kOld[1]), "mtime %lld",
        (long long)Ns(st.st_mtim));
}

// ------------------------------------------------------------------- main

static int RemoveOne(const char* path, const struct stat* st, int flag,
                     struct FTW* ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP) return rmdir(path) == 0 ? 0 : (perror(path), 0);
  return unlink(path) == 0 ? 0 : (perror(path), 0);
}

int main(int argc, char** argv) {
  const char* dir = NULL;
  const char* other = NULL;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--other") && i + 1 < argc) {
      other = argv[++i];
    } else if (!strcmp(argv[i], "--keep")) {
      keep = true;
    } else if (!dir && argv[i][0] != '-') {
      dir = argv[i];
    } else {
      dir = NULL;
      break;
    }
  }
  if (!dir) {
    fprintf(stderr, "usage: conformance DIR [--other DIR2] [--keep]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (counts == MAP_FAILED) return 2;
  char* real = realpath(dir, NULL);
  if (!real) {
    fprintf(stderr, "conformance: %s: %s\n", dir, strerror(errno));
    return 2;
  }
  snprintf(root, sizeof(root), "%s/conformance.%d", real, (int)getpid());
  free(real);
  umask(022);
  Setup(root, mkdir(root, 0755));
  Setup(root, chmod(root, 0755));  // searchable by the uid-65534 child

  TestEnoent();
  TestEexistEnotempty();
  TestEisdirEnotdir();
  TestEinvalEbadfEperm();
  TestEloop();
  TestNameTooLong();
  TestExdev(other);
  TestFileSemantics();
  TestModes();
  TestOwnership();
  TestNonRoot();
  TestTimes();

  if (!keep) nftw(root, RemoveOne, 16, FTW_DEPTH | FTW_PHYS);
  struct stat st;
  if (!keep) {
    Check("cleanup.tree_removed", lstat(root, &st) != 0 && errno == ENOENT,
          "%s still there", root);
  }
  if (counts->skipped) printf("%d skipped\n", counts->skipped);
  printf("%d passed, %d failed\n", counts->passed, counts->failed);
  return counts->failed == 0 ? 0 : 1;
}
