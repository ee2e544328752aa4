// coherefs-table, guest build: the table commands only (standard library,
// links statically into a busybox initramfs). See coherefs_table_tool.h.
#include "client/coherefs_table_tool.h"

int main(int argc, char** argv) {
  return coherefs::client::TableToolMain(argc, argv, nullptr);
}
