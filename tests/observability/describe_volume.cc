// Asks the coordinator to describe a volume and prints the gRPC status code
// name (e.g. "NOT_FOUND"). The observability test uses it to make the
// coordinator count one failed RPC, so the RPC-error panel has a series.
//   describe_volume --coordinator=127.0.0.1:PORT --volume=NAME
// Exit code: 0 when the call was answered (whatever the code), 1 when the
// coordinator could not be reached.
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/coordinator_client.h"

ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator.");
ABSL_FLAG(std::string, volume, "", "Volume to describe.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto client = coherefs::client::CoordinatorClient::Create(absl::GetFlag(FLAGS_coordinator));
  absl::Status connected = client->WaitForConnected(absl::Seconds(5));
  if (!connected.ok()) {
    std::cerr << "describe_volume: " << connected << "\n";
    return 1;
  }
  auto volume = client->DescribeVolume(absl::GetFlag(FLAGS_volume));
  std::cout << (volume.ok() ? "OK" : absl::StatusCodeToString(volume.status().code())) << "\n";
  return 0;
}
