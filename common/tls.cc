#include "common/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace coherefs {
namespace {

// The DNS subject alternative names of the peer (gRPC's TSI property).
constexpr char kPeerDnsProperty[] = "peer_dns";

template <typename T, void (*Free)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

void FreeX509Stack(STACK_OF(X509) * stack) { sk_X509_pop_free(stack, X509_free); }
using X509StackPtr =
    std::unique_ptr<STACK_OF(X509), OpenSslDeleter<STACK_OF(X509), FreeX509Stack>>;

// "--tls-cert /etc/x.pem"
std::string Name(absl::string_view flag, const std::string& path) {
  return absl::StrCat("--", flag, " ", path);
}

// OpenSSL's most recent error as text, and clears the queue so it does not
// leak into the next caller's report.
std::string OpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  std::string text = reason != nullptr ? reason
                     : code != 0       ? absl::StrCat("error ", code)
                                       : "unknown error";
  ERR_clear_error();
  return text;
}

absl::StatusOr<std::string> ReadFile(absl::string_view flag, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty"));
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) {
    int err = errno;
    return absl::InvalidArgumentError(absl::StrCat(
        Name(flag, path), ": ", err == ENOENT ? "no such file" : strerror(err)));
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  bool failed = ferror(f) != 0;
  int err = errno;
  fclose(f);
  if (failed) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(flag, path), ": cannot read: ", strerror(err)));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(Name(flag, path), ": empty file"));
  return out;
}

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in `pem`, in order; InvalidArgument if none parses.
absl::StatusOr<X509StackPtr> ParseCerts(absl::string_view flag, const std::string& path,
                                        const std::string& pem) {
  X509StackPtr certs(sk_X509_new_null());
  BioPtr bio = MemBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(certs.get(), cert);
  }
  ERR_clear_error();  // the read that ended the loop
  if (sk_X509_num(certs.get()) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(flag, path), ": no PEM certificate in the file"));
  }
  return certs;
}

// Never prompts for a pass phrase (a daemon has no terminal).
int NoPassphrase(char*, int, int, void*) { return -1; }

std::vector<std::string> CertIdentities(X509* cert) {
  std::vector<std::string> out;
  char cn[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  if (n > 0) out.emplace_back(cn, n);
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       ASN1_STRING_length(dns));
    }
    GENERAL_NAMES_free(names);
  }
  return out;
}

}  // namespace

absl::Status CheckTransportSecurity(const TransportSecurity& security) {
  int files = !security.ca_file.empty() + !security.cert_file.empty() +
              !security.key_file.empty();
  if (security.insecure && files > 0) {
    return absl::InvalidArgumentError(
        "--insecure and --tls-ca/--tls-cert/--tls-key exclude each other; pass one of them");
  }
  if (security.insecure || files == 3) return absl::OkStatus();
  if (files == 0) {
    return absl::InvalidArgumentError(
        "no transport security: pass --tls-ca, --tls-cert and --tls-key (mutual TLS), or "
        "--insecure for plaintext");
  }
  return absl::InvalidArgumentError(
      "mutual TLS needs all of --tls-ca, --tls-cert and --tls-key (or --insecure for "
      "plaintext)");
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TransportSecurity& security) {
  if (absl::Status s = CheckTransportSecurity(security); !s.ok()) return s;
  if (security.insecure) {
    return absl::InvalidArgumentError("--insecure: there are no TLS files to load");
  }
  TlsMaterial m;
  auto ca = ReadFile("tls-ca", security.ca_file);
  if (!ca.ok()) return ca.status();
  auto cert = ReadFile("tls-cert", security.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile("tls-key", security.key_file);
  if (!key.ok()) return key.status();
  m.ca_pem = std::move(*ca);
  m.cert_pem = std::move(*cert);
  m.key_pem = std::move(*key);

  auto ca_certs = ParseCerts("tls-ca", security.ca_file, m.ca_pem);
  if (!ca_certs.ok()) return ca_certs.status();
  auto chain = ParseCerts("tls-cert", security.cert_file, m.cert_pem);
  if (!chain.ok()) return chain.status();
  // The leaf is first; the rest (intermediates) only help verification.
  X509Ptr leaf(sk_X509_shift(chain->get()));

  BioPtr key_bio = MemBio(m.key_pem);
  KeyPtr pkey(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name("tls-key", security.key_file),
                     ": no unencrypted PEM private key in the file (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(Name("tls-key", security.key_file), " does not match the certificate in ",
                     Name("tls-cert", security.cert_file)));
  }

  StorePtr store(X509_STORE_new());
  for (int i = 0; i < sk_X509_num(ca_certs->get()); ++i) {
    X509_STORE_add_cert(store.get(), sk_X509_value(ca_certs->get(), i));
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), chain->get()) != 1) {
    return absl::InternalError(absl::StrCat("cannot verify the certificate: ", OpenSslError()));
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(Name("tls-cert", security.cert_file),
                                                   " does not verify against ",
                                                   Name("tls-ca", security.ca_file), ": ", why));
  }
  m.identities = CertIdentities(leaf.get());
  return m;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TransportSecurity& security) {
  if (absl::Status s = CheckTransportSecurity(security); !s.ok()) return s;
  if (security.insecure) return grpc::InsecureServerCredentials();
  auto m = LoadTlsMaterial(security);
  if (!m.ok()) return m.status();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = m->ca_pem;
  options.pem_key_cert_pairs.push_back({m->key_pem, m->cert_pem});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TransportSecurity& security) {
  if (absl::Status s = CheckTransportSecurity(security); !s.ok()) return s;
  if (security.insecure) return grpc::InsecureChannelCredentials();
  auto m = LoadTlsMaterial(security);
  if (!m.ok()) return m.status();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = m->ca_pem;
  options.pem_private_key = m->key_pem;
  options.pem_cert_chain = m->cert_pem;
  return grpc::SslCredentials(options);
}

std::vector<std::string> PeerIdentities(const grpc::AuthContext& context) {
  std::vector<std::string> out;
  if (!context.IsPeerAuthenticated()) return out;
  for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, kPeerDnsProperty}) {
    for (const grpc::string_ref& value : context.FindPropertyValues(property)) {
      std::string v(value.data(), value.size());
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
    }
  }
  return out;
}

bool HasIdentity(const std::vector<std::string>& identities, absl::string_view identity) {
  return std::find(identities.begin(), identities.end(), identity) != identities.end();
}

std::string TransportFailureHint(const absl::Status& status, bool insecure) {
  const absl::string_view m = status.message();
  if (absl::StrContains(m, "wrong version number")) {
    return ": TLS handshake failed: the server speaks plaintext (started with --insecure?)";
  }
  if (absl::StrContains(m, "certificate verify failed")) {
    return ": TLS handshake failed: the server's certificate does not verify against --tls-ca "
           "(another CA, expired, or not issued for this host name)";
  }
  if (size_t at = m.find("Ssl handshake failed"); at != absl::string_view::npos) {
    return absl::StrCat(": TLS handshake failed (", m.substr(at + 21), ")");
  }
  // The server ended the connection before any reply: a TLS server reading
  // a plaintext request, or a TLS server that did not accept our
  // certificate (TLS 1.3 reports that only after the handshake).
  if (absl::StrContains(m, "Socket closed") || absl::StrContains(m, "Connection reset")) {
    return insecure ? ": the server closed the plaintext connection; it probably requires TLS "
                      "(--tls-ca, --tls-cert, --tls-key)"
                    : ": the server closed the connection after the TLS handshake; it did not "
                      "accept this client certificate (signed by a CA it does not trust?)";
  }
  return "";
}

std::string InsecureWarning(absl::string_view what) {
  return absl::StrCat("--insecure: plaintext, unauthenticated gRPC for ", what,
                      "; anyone who can reach it can read and change coherence state");
}

}  // namespace coherefs
