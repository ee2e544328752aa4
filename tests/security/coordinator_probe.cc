// One coordinator call with the given transport, for tls_test.py: prints
// the gRPC status code name (and the message after a tab) on stdout, so the
// test can assert exact codes of calls coherectl does not make (an agent's
// RegisterAgent, Bump/Resolve/Subscribe/AckInvalidations with an agent id).
//
//   coordinator_probe --coordinator=HOST:PORT (--tls-ca=.. --tls-cert=.. --tls-key=.. | --insecure)
//       register AGENT_ID [VOLUME...]     (registers, then stays registered: no unregister)
//       bump VOLUME [AGENT_ID]            (resolves key "probe-key" anonymously first)
//       resolve VOLUME [AGENT_ID]
//       subscribe VOLUME [AGENT_ID]       (first message or the stream's status)
//       ack VOLUME AGENT_ID
//       health -                          (grpc.health.v1 Check of ""; prints
//                                          OK<tab>SERVING / NOT_SERVING)
//
// Exit 0 once the call ran (whatever its status), 2 on bad usage.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "common/grpc_status.h"
#include "grpcpp/generic/generic_stub.h"
#include "client/coordinator_client.h"
#include "common/flags.h"
#include "common/tls.h"
#include "common/tls_flags.h"

ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator.");

namespace coherefs {
namespace {

int Print(const absl::Status& s) {
  std::printf("%s\t%s\n", absl::StatusCodeToString(s.code()).c_str(),
              std::string(s.message()).c_str());
  return 0;
}

// grpc.health.v1.Health/Check without the generated stub: the request
// (service "") is empty; the response's field 1 is the status enum.
int Health(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::GenericStub stub(grpc::CreateChannel(target, credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  if (!status.ok()) return Print(FromGrpcStatus(status));
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::printf("OK\t%s\n", bytes == std::string("\x08\x01", 2) ? "SERVING" : "NOT_SERVING");
  return 0;
}

int Usage(const std::string& what) {
  std::fprintf(stderr, "coordinator_probe: %s\n", what.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args = ParseCommandLineOrExit2(argc, argv);
  if (args.size() < 3) return Usage("want COMMAND VOLUME|AGENT_ID ...");
  auto credentials = MakeChannelCredentials(TransportSecurityFromFlags());
  if (!credentials.ok()) return Usage(std::string(credentials.status().message()));
  client::CoordinatorClientOptions options;
  options.deadline = absl::Seconds(5);
  options.credentials = *credentials;
  options.private_connection = true;
  auto c = client::CoordinatorClient::Create(absl::GetFlag(FLAGS_coordinator), options);
  const std::string& command = args[1];
  if (command == "health") return Health(absl::GetFlag(FLAGS_coordinator), *credentials);
  const std::string& first = args[2];
  const std::string agent = args.size() > 3 ? args[3] : "";
  if (command == "register") {
    std::vector<std::string> volumes(args.begin() + 3, args.end());
    return Print(c->RegisterAgent(first, absl::Seconds(30), 0, volumes).status());
  }
  if (command == "resolve") return Print(c->Resolve(first, {"probe-key"}, agent).status());
  if (command == "bump") {
    auto slots = c->Resolve(first, {"probe-key"});
    if (!slots.ok()) return Print(slots.status());
    return Print(c->Bump(first, {slots->slots(0).slot()}, agent).status());
  }
  if (command == "subscribe") {
    auto stream = c->Subscribe(first, 0, agent);
    v1::SubscribeResponse message;
    if (stream->Read(&message)) {  // the first progress mark: the stream is open
      stream->Cancel();
      return Print(absl::OkStatus());
    }
    return Print(stream->Finish());
  }
  if (command == "ack") {
    v1::AckInvalidationsRequest request;
    request.set_agent_id(agent);
    request.set_volume(first);
    request.set_seq(0);
    return Print(c->AckInvalidations(request));
  }
  return Usage("unknown command " + command);
}

}  // namespace
}  // namespace coherefs

int main(int argc, char** argv) { return coherefs::Main(argc, argv); }
