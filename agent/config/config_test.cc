#include "agent/config/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace coherefs::agent::config {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coherefs-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(ConfigTest, FlagsAloneMakeOneVolumeAndOneGuest) {
  FlagOverrides flags;
  flags.shared_dir = dir_;
  flags.socket_paths = {dir_ + "/vm.sock"};
  flags.cache = "always";
  auto config = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(Validate(*config).ok()) << Validate(*config);
  ASSERT_EQ(config->volumes_size(), 1);
  EXPECT_EQ(config->volumes(0).name(), "default");
  EXPECT_EQ(config->volumes(0).cache(), CACHE_ALWAYS);
  EXPECT_TRUE(config->volumes(0).xattr());
  ASSERT_EQ(config->guests_size(), 1);
  EXPECT_EQ(config->guests(0).volume(), "default");
  EXPECT_EQ(config->guests(0).name(), "vm");
}

TEST_F(ConfigTest, AdminListenFromFileOrFlag) {
  auto parsed = ParseConfigJson(R"({"admin_listen": "127.0.0.1:7430"})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->admin_listen(), "127.0.0.1:7430");
  FlagOverrides flags;
  auto kept = ApplyFlags(*parsed, flags);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->admin_listen(), "127.0.0.1:7430");  // no flag: the file's value
  flags.admin_listen = "[::1]:0";
  auto overridden = ApplyFlags(*parsed, flags);
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->admin_listen(), "[::1]:0");
}

TEST_F(ConfigTest, JsonWithManyGuestsParsesAndValidates) {
  std::string json = R"({"volumes": [{"name": "a", "shared_dir": ")" + dir_ +
                     R"(", "cache": "CACHE_NONE", "xattr": false}],
    "guests": [{"name": "vm1", "socket_path": ")" + dir_ + R"(/1.sock"},
               {"socketPath": ")" + dir_ + R"(/2.sock", "volume": "a"}],
    "thread_pool_size": 4})";
  auto parsed = ParseConfigJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto config = ApplyFlags(*parsed, FlagOverrides());
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(Validate(*config).ok()) << Validate(*config);
  EXPECT_EQ(config->guests(0).volume(), "a");  // implied: the only volume
  EXPECT_EQ(config->guests(1).name(), "2");
  EXPECT_FALSE(config->volumes(0).xattr());
  EXPECT_EQ(config->thread_pool_size(), 4u);
}

TEST_F(ConfigTest, MalformedJsonAndUnknownFieldsAreInvalidArgument) {
  EXPECT_EQ(ParseConfigJson("{").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseConfigJson(R"({"volumez": []})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseConfigJson(R"({"thread_pool_size": "lots"})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadConfigFile(dir_ + "/nope.json").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigTest, LoadsAFile) {
  std::ofstream(dir_ + "/c.json") << R"({"log_level": "debug"})";
  auto config = LoadConfigFile(dir_ + "/c.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_level(), "debug");
}

// Each case: a config that must be refused, and the field the error names.
TEST_F(ConfigTest, ValidateNamesTheBadField) {
  struct Case {
    std::string json;
    std::string field;
  };
  std::string ok_vol = R"({"name": "v", "shared_dir": ")" + dir_ + R"("})";
  std::string ok_guest = R"({"socket_path": ")" + dir_ + R"(/g.sock", "volume": "v"})";
  std::vector<Case> cases = {
      {R"({"guests": [)" + ok_guest + "]}", "volumes"},
      {R"({"volumes": [)" + ok_vol + "]}", "guests"},
      {R"({"volumes": [{"name": "b@d", "shared_dir": "/"}], "guests": [)" + ok_guest + "]}",
       "volumes[0].name"},
      {R"({"volumes": [)" + ok_vol + "," + ok_vol + R"(], "guests": [)" + ok_guest + "]}",
       "volumes[1].name"},
      {R"({"volumes": [{"name": "v", "shared_dir": "rel"}], "guests": [)" + ok_guest + "]}",
       "volumes[0].shared_dir"},
      {R"({"volumes": [{"name": "v", "shared_dir": ")" + dir_ +
           R"(/missing"}], "guests": [)" + ok_guest + "]}",
       "volumes[0].shared_dir"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [{"socket_path": "rel.sock"}]})",
       "guests[0].socket_path"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [{"socket_path": "/nonexistent/dir/x.sock"}]})",
       "guests[0].socket_path"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [)" + ok_guest + "," + ok_guest + "]}",
       "guests[1].socket_path"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [{"socket_path": ")" + dir_ +
           R"(/x.sock", "volume": "w"}]})",
       "guests[0].volume"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [)" + ok_guest +
           R"(], "thread_pool_size": 1000})",
       "thread_pool_size"},
      {R"({"volumes": [)" + ok_vol + R"(], "guests": [)" + ok_guest + R"(], "log_level": "loud"})",
       "log_level"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseConfigJson(c.json);
    ASSERT_TRUE(parsed.ok()) << c.json << ": " << parsed.status();
    auto config = ApplyFlags(*parsed, FlagOverrides());
    ASSERT_TRUE(config.ok()) << config.status();
    absl::Status s = Validate(*config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_EQ(std::string(s.message()).rfind(c.field + ":", 0), 0u)
        << "want field " << c.field << ", got: " << s.message();
  }
}

TEST_F(ConfigTest, BadCacheFlagIsRefused) {
  FlagOverrides flags;
  flags.cache = "sometimes";
  EXPECT_EQ(ApplyFlags(AgentConfig(), flags).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseCacheMode("NEVER"), CACHE_NONE);
}

TEST_F(ConfigTest, SandboxFromFileOrFlagAndBadValuesAreRefused) {
  auto parsed = ParseConfigJson(R"({"sandbox": "SANDBOX_NONE", "seccomp_action": "SECCOMP_LOG"})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->sandbox(), SANDBOX_NONE);
  EXPECT_EQ(parsed->seccomp_action(), SECCOMP_LOG);
  EXPECT_EQ(AgentConfig().sandbox(), SANDBOX_UNSPECIFIED);
  EXPECT_EQ(SandboxModeName(SANDBOX_UNSPECIFIED), "namespace");
  EXPECT_EQ(SeccompActionName(SECCOMP_UNSPECIFIED), "kill");
  FlagOverrides flags;
  flags.sandbox = "namespace";
  flags.seccomp_action = "errno";
  auto config = ApplyFlags(*parsed, flags);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sandbox(), SANDBOX_NAMESPACE);
  EXPECT_EQ(config->seccomp_action(), SECCOMP_ERRNO);
  flags.sandbox = "chroot";
  EXPECT_EQ(ApplyFlags(AgentConfig(), flags).status().code(),
            absl::StatusCode::kInvalidArgument);
  flags.sandbox = "";
  flags.seccomp_action = "trap";
  EXPECT_EQ(ApplyFlags(AgentConfig(), flags).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ConfigTest, HostMountOverlappingASharedDirIsRefused) {
  ASSERT_EQ(mkdir((dir_ + "/share").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir_ + "/share/mnt").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir_ + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(symlink((dir_ + "/share/mnt").c_str(), (dir_ + "/alias").c_str()), 0);
  FlagOverrides flags;
  flags.shared_dir = dir_ + "/share";
  for (const char* bad : {"/share/mnt", "/alias", "/share"}) {
    flags.host_mount = dir_ + bad;
    auto config = ApplyFlags(AgentConfig(), flags);
    ASSERT_TRUE(config.ok());
    const absl::Status s = Validate(*config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("serve its own mount"), absl::string_view::npos) << s;
  }
  flags.host_mount = dir_ + "/mnt";
  auto config = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(Validate(*config).ok()) << Validate(*config);
}

TEST_F(ConfigTest, CoherenceDefaultsToStrictWithACoordinatorAndOffWithout) {
  FlagOverrides flags;
  flags.shared_dir = dir_;
  flags.socket_paths = {dir_ + "/vm.sock"};
  auto alone = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->volumes(0).coherence(), COHERENCE_OFF);
  EXPECT_EQ(alone->volumes(0).cache(), CACHE_AUTO);
  EXPECT_EQ(alone->volumes(0).lease_max_ms(), 0u);

  flags.coordinator = "127.0.0.1:7420";
  flags.transport.insecure = true;
  auto followed = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(followed.ok()) << followed.status();
  ASSERT_TRUE(Validate(*followed).ok()) << Validate(*followed);
  const Volume& v = followed->volumes(0);
  EXPECT_EQ(v.coherence(), COHERENCE_STRICT);
  EXPECT_EQ(v.cache(), CACHE_ALWAYS);  // leases decide how long guests cache
  EXPECT_EQ(v.lease_max_ms(), 5000u);
  EXPECT_EQ(v.lease_margin_ms(), 100u);
  EXPECT_TRUE(v.host_watch());

  flags.coherence = "bounded";
  flags.lease_max_ms = 750;
  flags.lease_margin_ms = 0;
  flags.no_host_watch = true;
  flags.cache = "auto";
  auto tuned = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_EQ(tuned->volumes(0).coherence(), COHERENCE_BOUNDED);
  EXPECT_EQ(tuned->volumes(0).cache(), CACHE_AUTO);
  EXPECT_EQ(tuned->volumes(0).lease_max_ms(), 750u);
  EXPECT_EQ(tuned->volumes(0).lease_margin_ms(), 0u);
  EXPECT_FALSE(tuned->volumes(0).host_watch());
}

TEST_F(ConfigTest, CoherenceWithoutACoordinatorAndBadValuesAreRefused) {
  FlagOverrides flags;
  flags.shared_dir = dir_;
  flags.socket_paths = {dir_ + "/vm.sock"};
  flags.coherence = "strict";
  auto config = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(config.ok());
  absl::Status s = Validate(*config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "volumes[0].coherence: strict needs a coordinator (--coordinator=HOST:PORT)");

  flags.coherence = "sometimes";
  EXPECT_EQ(ApplyFlags(AgentConfig(), flags).status().message(),
            "coherence: \"sometimes\" is not one of strict, bounded, off");

  flags.coherence = "";
  flags.coordinator = "127.0.0.1:1";
  flags.lease_max_ms = 86400 * 1000 + 1;
  config = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(Validate(*config).message(), "volumes[0].lease_max_ms: 86400001 is over one day");

  flags.lease_max_ms = -1;
  flags.table_export_dir = "relative/dir";
  config = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(Validate(*config).message(),
            "table_export_dir: \"relative/dir\" is not an existing absolute directory");
}

// A coordinator link or an admin endpoint needs transport security; the
// file can set it (ConfigMaps) and the command line replaces it as a whole.
TEST_F(ConfigTest, TransportSecurityIsRequiredForGrpcAndFlagsReplaceTheFile) {
  FlagOverrides flags;
  flags.shared_dir = dir_;
  flags.socket_paths = {dir_ + "/vm.sock"};
  auto alone = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(alone.ok());
  EXPECT_TRUE(Validate(*alone).ok()) << "no gRPC endpoint, nothing to secure";

  flags.admin_listen = "127.0.0.1:0";
  auto admin = ApplyFlags(AgentConfig(), flags);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(Validate(*admin).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Validate(*admin).message(),
            "no transport security: pass --tls-ca, --tls-cert and --tls-key (mutual TLS), or "
            "--insecure for plaintext");

  auto file = ParseConfigJson(
      R"({"coordinator": "127.0.0.1:7420", "tls_ca": "/etc/ca.pem",
          "tls_cert": "/etc/a.pem", "tls_key": "/etc/a.key"})");
  ASSERT_TRUE(file.ok()) << file.status();
  flags.admin_listen.clear();
  auto from_file = ApplyFlags(*file, flags);
  ASSERT_TRUE(from_file.ok());
  EXPECT_TRUE(Validate(*from_file).ok()) << Validate(*from_file);
  EXPECT_EQ(TransportOf(*from_file).cert_file, "/etc/a.pem");
  EXPECT_FALSE(TransportOf(*from_file).insecure);

  flags.transport.insecure = true;
  auto plain = ApplyFlags(*file, flags);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(Validate(*plain).ok()) << Validate(*plain);
  EXPECT_TRUE(TransportOf(*plain).insecure);
  EXPECT_EQ(TransportOf(*plain).ca_file, "");

  flags.transport = TransportSecurity();
  flags.transport.ca_file = "/etc/ca.pem";  // only one of the three files
  auto partial = ApplyFlags(*file, flags);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(Validate(*partial).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coherefs::agent::config
