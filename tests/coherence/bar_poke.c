/* bar_poke: guest helper for table_vm_test. Maps an ivshmem BAR (argv[1],
 * e.g. /sys/bus/pci/devices/BDF/resource2) READ-WRITE, as a hostile guest
 * would, stores 0xdeadbeef into slot 0 (offset 128), and prints the value
 * read back. The host checks its table did not change. Exit 0 if the store
 * was attempted, 1 if the mapping failed. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) { perror("open"); return 1; }
  void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  volatile uint64_t* slot0 = (volatile uint64_t*)((char*)p + 128);
  *slot0 = 0xdeadbeefull;
  printf("readback=%llu\n", (unsigned long long)*slot0);
  return 0;
}
