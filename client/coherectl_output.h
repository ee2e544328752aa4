// Output helpers for coherectl: a minimal JSON writer (objects, arrays,
// strings, numbers, booleans; keys in insertion order, no whitespace) and a
// plain-text table with padded columns. Not thread-safe; one per output.
#ifndef COHEREFS_CLIENT_COHERECTL_OUTPUT_H_
#define COHEREFS_CLIENT_COHERECTL_OUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coherefs::client {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Inside an object: the next value's key.
  JsonWriter& Key(const std::string& key);
  JsonWriter& String(const std::string& value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  std::string out_;
  // Per open container: whether it already holds a value.
  std::vector<bool> has_value_;
  bool after_key_ = false;
};

// A JSON string literal of `s` (quotes included), escaping per RFC 8259.
std::string JsonQuote(const std::string& s);

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns separated by two spaces, each padded to its widest cell; every
  // line prefixed by `indent`; no trailing spaces.
  std::string Render(const std::string& indent = "") const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_COHERECTL_OUTPUT_H_
