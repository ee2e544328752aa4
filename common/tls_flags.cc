#include "common/tls_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate(s) that peers' certificates must chain to (mutual TLS).");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate (chain) this program presents.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert.");
ABSL_FLAG(bool, insecure, false,
          "Plaintext gRPC without authentication (tests, debugging); a warning is logged.");

namespace coherefs {

TransportSecurity TransportSecurityFromFlags() {
  TransportSecurity t;
  t.ca_file = absl::GetFlag(FLAGS_tls_ca);
  t.cert_file = absl::GetFlag(FLAGS_tls_cert);
  t.key_file = absl::GetFlag(FLAGS_tls_key);
  t.insecure = absl::GetFlag(FLAGS_insecure);
  return t;
}

}  // namespace coherefs
