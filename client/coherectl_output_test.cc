#include "client/coherectl_output.h"

#include "gtest/gtest.h"

namespace coherefs::client {
namespace {

TEST(JsonWriterTest, NestedValues) {
  JsonWriter w;
  w.BeginObject().Key("a").Uint(18446744073709551615ull).Key("b").BeginArray();
  w.String("x").Bool(true).Null().BeginObject().EndObject().EndArray();
  w.Key("c").String("q\"\\\n\x01").EndObject();
  EXPECT_EQ(w.str(),
            "{\"a\":18446744073709551615,\"b\":[\"x\",true,null,{}],"
            "\"c\":\"q\\\"\\\\\\n\\u0001\"}");
}

TEST(TextTableTest, PadsColumnsWithoutTrailingSpaces) {
  TextTable t({"NAME", "N"});
  t.AddRow({"a", "12345"});
  t.AddRow({"longer", ""});
  EXPECT_EQ(t.Render("  "),
            "  NAME    N\n"
            "  a       12345\n"
            "  longer\n");
}

}  // namespace
}  // namespace coherefs::client
