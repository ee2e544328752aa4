// The credentials helper against real PEM files made by
// scripts/make-test-ca.sh (openssl), and a real gRPC server on loopback.
#include "common/tls.h"

#include <stdlib.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace coherefs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = getenv("TEST_TMPDIR");
    dir_ = new std::string(absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tls_test"));
    const std::string script =
        absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                     "/scripts/make-test-ca.sh");
    ASSERT_EQ(system(("bash " + script + " " + *dir_ + "/ca host-a >/dev/null").c_str()), 0);
    ASSERT_EQ(system(("bash " + script + " " + *dir_ + "/other host-a >/dev/null").c_str()), 0);
    std::ofstream(*dir_ + "/junk.pem") << "not a certificate\n";
  }

  static TransportSecurity Files(const std::string& ca_dir, const std::string& name) {
    TransportSecurity t;
    t.ca_file = *dir_ + "/" + ca_dir + "/ca.pem";
    t.cert_file = *dir_ + "/" + ca_dir + "/" + name + ".pem";
    t.key_file = *dir_ + "/" + ca_dir + "/" + name + ".key";
    return t;
  }

  static std::string* dir_;
};
std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, OneOfMutualTlsOrInsecureIsRequired) {
  TransportSecurity none;
  absl::Status s = CheckTransportSecurity(none);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "no transport security: pass --tls-ca, --tls-cert and --tls-key (mutual TLS), or "
            "--insecure for plaintext");
  TransportSecurity partial;
  partial.ca_file = "/ca.pem";
  EXPECT_THAT(CheckTransportSecurity(partial).message(), HasSubstr("needs all of"));
  TransportSecurity both = Files("ca", "operator");
  both.insecure = true;
  EXPECT_THAT(CheckTransportSecurity(both).message(), HasSubstr("exclude each other"));
  TransportSecurity insecure;
  insecure.insecure = true;
  EXPECT_TRUE(CheckTransportSecurity(insecure).ok());
  EXPECT_TRUE(CheckTransportSecurity(Files("ca", "operator")).ok());
  EXPECT_EQ(MakeChannelCredentials(none).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(*MakeServerCredentials(insecure), nullptr);
}

TEST_F(TlsTest, LoadsMatchingFilesAndReadsTheIdentities) {
  auto m = LoadTlsMaterial(Files("ca", "agent-host-a"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->identities, ElementsAre("host-a", "host-a", "localhost"));  // CN, DNS SANs
  EXPECT_TRUE(HasIdentity(m->identities, "host-a"));
  EXPECT_FALSE(HasIdentity(m->identities, "host-b"));
  EXPECT_TRUE(absl::StartsWith(m->ca_pem, "-----BEGIN CERTIFICATE-----"));
  EXPECT_NE(*MakeServerCredentials(Files("ca", "coordinator")), nullptr);
  EXPECT_NE(*MakeChannelCredentials(Files("ca", "operator")), nullptr);
}

TEST_F(TlsTest, BadFilesAreNamedWithTheirFlag) {
  TransportSecurity t = Files("ca", "operator");
  t.cert_file = *dir_ + "/missing.pem";
  absl::Status s = LoadTlsMaterial(t).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), absl::StrCat("--tls-cert ", t.cert_file, ": no such file"));

  t = Files("ca", "operator");
  t.key_file = *dir_;  // a directory
  EXPECT_THAT(LoadTlsMaterial(t).status().message(),
              HasSubstr(absl::StrCat("--tls-key ", *dir_, ": cannot read")));

  t = Files("ca", "operator");
  t.ca_file = *dir_ + "/junk.pem";
  EXPECT_EQ(LoadTlsMaterial(t).status().message(),
            absl::StrCat("--tls-ca ", t.ca_file, ": no PEM certificate in the file"));

  t = Files("ca", "operator");
  t.key_file = *dir_ + "/junk.pem";
  EXPECT_THAT(LoadTlsMaterial(t).status().message(),
              HasSubstr("no unencrypted PEM private key in the file"));
}

TEST_F(TlsTest, AKeyOfAnotherCertificateAndAForeignCaAreRefused) {
  TransportSecurity t = Files("ca", "operator");
  t.key_file = *dir_ + "/ca/agent-host-a.key";
  EXPECT_EQ(LoadTlsMaterial(t).status().message(),
            absl::StrCat("--tls-key ", t.key_file, " does not match the certificate in --tls-cert ",
                         t.cert_file));
  t = Files("ca", "operator");
  t.ca_file = *dir_ + "/other/ca.pem";
  absl::Status s = LoadTlsMaterial(t).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), absl::StrCat("--tls-cert ", t.cert_file, " does not verify against --tls-ca ",
                                      t.ca_file, ": unable to get local issuer certificate"));
}

// The credentials work with gRPC: a TLS server accepts a client with a
// certificate of its CA, and a plaintext client cannot connect to it.
TEST_F(TlsTest, CredentialsConnectOverLoopback) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", *MakeServerCredentials(Files("ca", "coordinator")),
                           &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string target = absl::StrCat("localhost:", port);
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(5); };
  auto tls = grpc::CreateChannel(target, *MakeChannelCredentials(Files("ca", "operator")));
  EXPECT_TRUE(tls->WaitForConnected(deadline()));
  TransportSecurity insecure;
  insecure.insecure = true;
  auto plain = grpc::CreateChannel(target, *MakeChannelCredentials(insecure));
  EXPECT_FALSE(plain->WaitForConnected(std::chrono::system_clock::now() +
                                       std::chrono::seconds(2)));
  server->Shutdown();
}

TEST_F(TlsTest, FailureHintsNameTheTlsProblem) {
  EXPECT_EQ(TransportFailureHint(absl::UnavailableError("ipv4:1.2.3.4:5: Connection refused"),
                                 false),
            "");
  EXPECT_THAT(TransportFailureHint(absl::UnavailableError("Socket closed"), true),
              HasSubstr("probably requires TLS"));
  EXPECT_THAT(TransportFailureHint(absl::UnavailableError("Socket closed"), false),
              HasSubstr("did not accept this client certificate"));
  EXPECT_THAT(TransportFailureHint(
                  absl::UnavailableError("Ssl handshake failed: x: certificate verify failed"),
                  false),
              HasSubstr("does not verify against --tls-ca"));
  EXPECT_THAT(TransportFailureHint(absl::UnavailableError("Ssl handshake failed: "
                                                          "wrong version number"),
                                   false),
              HasSubstr("the server speaks plaintext"));
}

}  // namespace
}  // namespace coherefs
