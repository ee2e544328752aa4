// Transport security for every gRPC edge (coordinator, agent -> coordinator,
// agent admin service, coherectl): mutual TLS from three PEM files, or
// plaintext only when the operator said --insecure.
//
// One CA signs every party (coordinator, agents, operators); each side
// presents its certificate and checks the peer's against the CA, so a
// server requires and verifies a client certificate. The identity of a
// peer is its certificate's CN and DNS subject alternative names; the
// coordinator binds an agent id to it.
//
// Errors are for people: InvalidArgument names the flag and the file
// ("--tls-key /etc/x.pem: no such file", "--tls-key ... does not match the
// certificate in --tls-cert ..."), so a program can print the message and
// exit 2. Pure functions; thread-safe.
#ifndef COHEREFS_COMMON_TLS_H_
#define COHEREFS_COMMON_TLS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace coherefs {

// What the command line (or the agent's config file) asked for.
struct TransportSecurity {
  std::string ca_file;    // --tls-ca: PEM CA certificate(s) peers chain to
  std::string cert_file;  // --tls-cert: PEM certificate (chain), leaf first
  std::string key_file;   // --tls-key: PEM private key of that certificate
  bool insecure = false;  // --insecure: plaintext, no authentication

  bool tls() const { return !insecure; }
};

// The one-line usage error when neither the three files nor --insecure
// were given (or both were, or only some of the files): InvalidArgument.
absl::Status CheckTransportSecurity(const TransportSecurity& security);

// The PEM files, read and checked: each parses, the key matches the
// certificate, and the certificate chains to the CA and is valid now.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // CN and DNS subject alternative names of the certificate (ours).
  std::vector<std::string> identities;
};

// InvalidArgument (naming flag and file) for a missing, unreadable or
// malformed file, a key that does not match the certificate, or a
// certificate the CA did not sign or that is expired / not yet valid.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TransportSecurity& security);

// Server credentials: with TLS, the server presents its certificate and
// requires a client certificate signed by the CA; with --insecure,
// plaintext. Errors as LoadTlsMaterial.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TransportSecurity& security);

// Channel credentials: with TLS, the client checks the server's
// certificate against the CA and the target's host name, and presents its
// own; with --insecure, plaintext. Errors as LoadTlsMaterial.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TransportSecurity& security);

// The verified identities of a call's peer: its certificate's CN, then its
// DNS subject alternative names. Empty for a plaintext peer.
std::vector<std::string> PeerIdentities(const grpc::AuthContext& context);

// True if `identity` is one of `identities`.
bool HasIdentity(const std::vector<std::string>& identities, absl::string_view identity);

// For a failed call (UNAVAILABLE / DEADLINE_EXCEEDED): "" when the peer
// simply could not be reached, else ": <what went wrong with TLS>" (a TLS
// handshake failure, or a plaintext client talking to a TLS server).
// `insecure`: the caller used plaintext.
std::string TransportFailureHint(const absl::Status& status, bool insecure);

// The warning a program logs at start with --insecure, for `what` (e.g.
// "coordinator gRPC").
std::string InsecureWarning(absl::string_view what);

}  // namespace coherefs

#endif  // COHEREFS_COMMON_TLS_H_
