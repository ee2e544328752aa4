/* bar_poke: guest helper for table_vm_test. Maps an ivshmem BAR (argv[1],
 * e.g. /sys/bus/pci/devices/BDF/resource2) READ-WRITE, as a hostile guest
 * would, stores 0xdeadbeef into slot 0 (offset 128), and prints the value
 * read back. With argv[2] "fill" it instead overwrites the whole first page
 * (header and the first slots) with 0xa5 bytes (agent_table_vm_test).
 * The host checks its table did not change. Exit 0 if the store was
 * attempted, 1 if the mapping failed. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) return 2;
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) { perror("open"); return 1; }
  void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  if (argc == 3) {
    volatile uint64_t* page = (volatile uint64_t*)p;
    for (int i = 0; i < 4096 / 8; ++i) page[i] = 0xa5a5a5a5a5a5a5a5ull;
    printf("filled readback=%llx\n", (unsigned long long)page[16]);
    return 0;
  }
  volatile uint64_t* slot0 = (volatile uint64_t*)((char*)p + 128);
  *slot0 = 0xdeadbeefull;
  printf("readback=%llu\n", (unsigned long long)*slot0);
  return 0;
}
